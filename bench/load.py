"""Open-loop load: POST webhooks at a fixed arrival rate, however slowly the server answers.

    .venv/bin/python bench/load.py --url http://127.0.0.1:8000/webhooks/datadog --rate 1000

Request i is due at start + i/rate whether or not earlier ones were answered, as Datadog's
alerts arrive, so a slow server shows up as latency instead of as fewer requests (the
coordinated omission a closed-loop tool such as wrk has). Latency is measured from the time
a request was due, so time spent queued in this client counts against the server too.

Bounded: rate x duration requests in all, at most --max-inflight at once (arrivals past that
are counted as dropped), each with a timeout. The body is bench/webhook.json with `{{ID}}`
(unique per request and run) and `{{TS}}` (now, epoch milliseconds) filled in. The last
line is `BENCH_JSON {...}` (latencies in microseconds), which bench/run.py reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import aiohttp

PAYLOAD = Path(__file__).resolve().parent / "webhook.json"


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # due -> answered, 2xx only
    lags: list[float] = field(default_factory=list)  # due -> handed to the client
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    inflight: int = 0
    most_inflight: int = 0


def percentile(values: list[float], share: float) -> int | None:
    if not values:
        return None
    rank = max(0, min(len(values) - 1, round(share * len(values) + 0.5) - 1))
    return int(values[rank] * 1e6)


async def send_all(args: argparse.Namespace) -> Tally:
    nonce = f"{int(time.time())}{os.getpid() % 1000:03d}"
    pieces = PAYLOAD.read_text(encoding="utf-8").strip().split("{{ID}}")
    headers = {"Content-Type": "application/json", "X-Responder-Token": args.token}
    tally = Tally()
    total = int(args.rate * args.duration)
    clock = time.perf_counter  # uvloop's own clock has a resolution of 1 ms
    start = clock() + 0.3
    measured_from = start + args.warmup
    tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=args.max_inflight)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as http:

        async def one(index: int, due: float) -> None:
            moment = str(int(time.time() * 1000))
            body = f"{nonce}{index:09d}".join(pieces).replace("{{TS}}", moment).encode()
            handed = clock()
            status = None
            try:
                async with http.post(args.url, data=body) as answer:
                    await answer.read()
                    status = answer.status
            except Exception as exc:  # every failure is a figure of the run
                tally.errors[type(exc).__name__] += 1
            done = clock()
            tally.inflight -= 1
            if due < measured_from or status is None:
                return
            tally.statuses[status] += 1
            if 200 <= status < 300:
                tally.latencies.append(done - due)
                tally.lags.append(handed - due)

        for index in range(total):
            due = start + index / args.rate
            if (wait := due - clock()) > 0:
                await asyncio.sleep(wait)
            if tally.inflight >= args.max_inflight:
                tally.dropped += due >= measured_from
                continue
            tally.inflight += 1
            tally.most_inflight = max(tally.most_inflight, tally.inflight)
            task = asyncio.create_task(one(index, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks), timeout=args.timeout + 2)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=500, help="requests a second")
    parser.add_argument("--duration", type=float, default=10, help="seconds of arrivals")
    parser.add_argument("--warmup", type=float, default=2, help="first seconds not counted")
    parser.add_argument("--token", default="test", help="X-Responder-Token")
    parser.add_argument("--max-inflight", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=10, help="seconds per request")
    args = parser.parse_args()
    host = urlparse(args.url).hostname or ""
    if host not in ("localhost", "::1") and not host.startswith("127."):
        raise SystemExit(f"refusing to send load to {host!r}: loopback only")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    tally = asyncio.run(send_all(args))
    latencies, lags = sorted(tally.latencies), sorted(tally.lags)
    window = max(args.duration - args.warmup, 1e-9)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "offered_rps": args.rate,
        "ok": len(latencies),
        "rps": round(len(latencies) / window, 1),
        "non2xx": sum(n for code, n in tally.statuses.items() if not 200 <= code < 300),
        "statuses": {str(code): n for code, n in tally.statuses.items()},
        "errors": dict(tally.errors),
        "dropped": tally.dropped,
        "max_inflight_seen": tally.most_inflight,
        "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "lat_p50_us": percentile(latencies, 0.50),
        "lat_p99_us": percentile(latencies, 0.99),
        "lat_max_us": int(latencies[-1] * 1e6) if latencies else None,
        "send_lag_p99_us": percentile(lags, 0.99),
    }
    if (out["send_lag_p99_us"] or 0) > 5000:
        message = "WARNING: the generator lagged its schedule (p99 > 5 ms): it may be short of CPU"
        print(message, file=sys.stderr)
    print("BENCH_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

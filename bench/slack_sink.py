"""The Slack fake of the tests (tests/fakes/slack.py) in a process of its own, timing arrivals.

    python bench/slack_sink.py --ready-file R.json --out posts.jsonl [--token T] [--max-seconds N]

Once listening it writes R.json: {"base_url", "token", "channels", "pid"}. Every chat.postMessage
root message gets the wall time (time.time()) at which its request reached the fake, so
run.py can compute webhook-sent -> Slack-received latency across processes. While running it
rewrites `<out>.count` with the number of root posts (run.py waits on it); on SIGTERM or
SIGINT (or after --max-seconds) it writes one JSON line per root message to --out and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
# The fake lives with the tests, which import it as `tests.fakes.slack` from the repo root.
sys.path.insert(0, str(REPO))

from tests.fakes.slack import FakeSlack  # noqa: E402

# Channels any playbook of this repo might post to, in case one names a channel in a way the
# YAML scan below misses (a template, an action we do not know): an unknown channel would be
# channel_not_found and the alert would never "arrive".
GENEROUS = (
    "incidents",
    "alerts",
    "alerts-unrouted",
    "payments-alerts",
    "platform-alerts",
    "security-alerts",
    "checkout-alerts",
    "ops",
    "oncall",
    "general",
)


def playbook_channels(folder: Path) -> set[str]:
    """Every string under a `channel` key in the playbooks' YAML, without the leading '#'."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "channel" and isinstance(value, str):
                    found.add(value.strip().lstrip("#"))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted(folder.glob("*.y*ml")):
        try:
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                walk(doc)
        except (OSError, yaml.YAMLError) as exc:
            print(f"slack_sink: skipping {path}: {exc}", file=sys.stderr)
    return found


def channel_map(names: set[str]) -> dict[str, str]:
    # IDs must look like Slack's (upper case, C + 6 or more) or the client takes them for names.
    return {f"#{name}": f"C0BENCH{i:03d}" for i, name in enumerate(sorted(names))}


class TimedSlack(FakeSlack):
    """FakeSlack that notes when each root message's request arrived."""

    def __init__(self, token: str, channels: dict[str, str]) -> None:
        super().__init__(token=token, channels=channels)
        self.received: dict[tuple[str, str], float] = {}  # (channel, ts) -> time.time()
        self.root_count = 0

    def handle(
        self, method: str, content_type: str, body: bytes, query: str, auth: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        # Taken before parsing and the fake's lock, so neither is counted as service latency.
        arrived = time.time()
        answer = super().handle(method, content_type, body, query, auth)
        status, _, payload = answer
        if method == "chat.postMessage" and status == 200 and payload.get("ok"):
            message = payload.get("message") or {}
            if "thread_ts" not in message:
                with self._lock:
                    self.received[(str(payload["channel"]), str(payload["ts"]))] = arrived
                    self.root_count += 1
        return answer

    def dump(self, out: Path) -> int:
        rows = []
        for message in self.root_messages():
            rows.append(
                {
                    "channel": message.channel,
                    "ts": message.ts,
                    "received_at": self.received.get((message.channel, message.ts)),
                    "text": message.text,
                    "header": _header(message.blocks),
                }
            )
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        tmp.replace(out)  # run.py never reads half a file
        return len(rows)


def _header(blocks: list[dict[str, Any]] | None) -> str | None:
    for block in blocks or []:
        if block.get("type") == "header":
            text = block.get("text")
            if isinstance(text, dict):
                return str(text.get("text"))
    return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--token", default="xoxb-bench-sink")
    parser.add_argument("--playbooks", type=Path, default=REPO / "playbooks")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()

    names = playbook_channels(args.playbooks) | set(GENEROUS)
    channels = channel_map(names)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    fake = TimedSlack(args.token, channels)
    fake.start()
    count_file = args.out.with_suffix(args.out.suffix + ".count")
    try:
        ready = {
            "base_url": fake.base_url,
            "token": fake.token,
            "channels": channels,
            "pid": os.getpid(),
        }
        _write_atomic(args.ready_file, json.dumps(ready))
        deadline = time.monotonic() + args.max_seconds  # never outlive a crashed run.py
        last = -1
        while not stop.wait(0.1) and time.monotonic() < deadline:
            if fake.root_count != last:
                last = fake.root_count
                _write_atomic(count_file, str(last))
    finally:
        fake.stop()
        written = fake.dump(args.out)
        _write_atomic(count_file, str(written))
        print(f"slack_sink: {written} root messages written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

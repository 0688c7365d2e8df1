"""A small disk of the test's own: a tmpfs in a private mount namespace (`unshare -rm`),
which needs no root, only user namespaces, and leaves the machine's mounts alone.

The namespace lives as long as a sleeping holder process. Commands run inside it through
`prefix` (nsenter); the test itself reaches the files through `/proc/<holder>/root`, which
sees the holder's mounts. Where namespaces are not allowed the test is skipped with the
reason, or fails under CI, which must run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class SmallDisk:
    inside: Path  # the mount point, as processes in the namespace see it
    outside: Path  # the same folder, as this process sees it
    prefix: list[str]  # runs a command in the namespace

    def fill(self) -> int:
        """Write a file until the disk is full; returns the bytes it took."""
        written = 0
        with (self.outside / "filler").open("wb") as filler:
            block = b"\0" * 65536
            try:
                while True:
                    written += filler.write(block)
                    filler.flush()
            except OSError as exc:
                if exc.errno != 28:  # ENOSPC
                    raise
        return written

    def query(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        """`sql`'s rows from the SQLite file `database` on this disk, read-only.

        Run inside the namespace: SQLite resolves symbolic links in a path, and the one in
        /proc/<holder>/root leads it back to this namespace's folder, without the tmpfs.
        """
        done = subprocess.run(
            [*self.prefix, sys.executable, "-c", _QUERY, str(self.inside / database), sql],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return [tuple(row) for row in json.loads(done.stdout)]

    def free(self) -> None:
        (self.outside / "filler").unlink()

    def available(self) -> int:
        stats = os.statvfs(self.outside)
        return stats.f_bavail * stats.f_frsize


_QUERY = """
import json, sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(json.dumps(conn.execute(sys.argv[2]).fetchall()))
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[SmallDisk]:
    """A tmpfs of `size` (say "4m") mounted on `folder` in a namespace of this test."""
    if not (shutil.which("unshare") and shutil.which("nsenter")):
        _unavailable("a small disk needs unshare and nsenter (util-linux)")
    folder.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            "unshare",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            f"mount -t tmpfs -o size={size} tmpfs '{folder}' && echo mounted && exec sleep 3600",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        if holder.stdout.readline().strip() != "mounted":
            holder.wait(10)
            assert holder.stderr is not None
            _unavailable(f"cannot mount a tmpfs in a user namespace: {holder.stderr.read()}")
        prefix = ["nsenter", f"--target={holder.pid}", "--user", "--mount"]
        prefix.append("--preserve-credentials")
        yield SmallDisk(folder, Path(f"/proc/{holder.pid}/root{folder}"), prefix)
    finally:
        holder.kill()
        holder.wait(10)

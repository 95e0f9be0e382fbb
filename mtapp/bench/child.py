"""Run a command as a measured child process: wall time, the peak resident memory of its largest
process (`wait4`'s ru_maxrss) and of its whole process tree (sampled twice a second: the sum of
the proportional set sizes of the process and its descendants, e.g. a data-loader worker).

The command is started by a small reaper process (`python -S`, ~10 MB) that waits for it and
reports its ru_maxrss: Linux records the memory of the process that calls exec in the new
program's high-water mark, so a command started straight from this (large, torch-importing)
process would report at least this process's size."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_REAPER = """\
import os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass(frozen=True)
class Command:
    args: list[str]
    log: Path  # stderr, and stdout unless `stdout` is given
    stdin: Path | None = None
    stdout: Path | None = None
    env: dict[str, str] = field(default_factory=dict)  # added to this process's environment
    cwd: Path | None = None


@dataclass(frozen=True)
class Finished:
    status: int  # exit status; negative: killed by that signal
    wall_seconds: float
    peak_rss_mb: float  # the largest single process (it, or a child it waited for)
    tree_peak_mb: float  # the largest sampled sum over the process tree (PSS, shared pages split)
    timed_out: bool


def run(command: Command, timeout: float) -> Finished:
    """Run to the end, or `timeout` seconds; then its process group is terminated."""
    started = time.monotonic()
    rss_file = command.log.with_suffix(".maxrss")
    rss_file.unlink(missing_ok=True)
    with open(command.log, "w") as log, _open(command.stdin, "r") as stdin, _open(command.stdout, "w") as stdout:
        child = subprocess.Popen(
            [sys.executable, "-S", "-c", _REAPER, str(rss_file), *command.args],
            stdin=stdin or subprocess.DEVNULL,
            stdout=stdout or log,
            stderr=log,
            env={**os.environ, **command.env},
            cwd=command.cwd,
            start_new_session=True,  # its own process group, to end it and its workers together
        )
        watcher = _Watcher(child.pid, started + timeout)
        watcher.start()
        status = child.wait()
        watcher.stop()
    return Finished(
        status=status,
        wall_seconds=time.monotonic() - started,
        peak_rss_mb=int(rss_file.read_text()) / 1024 if rss_file.exists() else 0.0,  # Linux reports KiB
        tree_peak_mb=watcher.peak_kib / 1024,
        timed_out=watcher.timed_out,
    )


class _Watcher(threading.Thread):
    """Samples the tree's memory; past the deadline, terminates the group (then kills it)."""

    def __init__(self, pid: int, deadline: float):
        super().__init__(daemon=True)
        self.pid, self.deadline = pid, deadline
        self.peak_kib, self.timed_out = 0, False
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.5):
            self.peak_kib = max(self.peak_kib, sum(_pss_kib(p) for p in _tree(self.pid)))
            now = time.monotonic()
            if now > self.deadline:
                self.timed_out = True
                _signal_group(self.pid, signal.SIGTERM if now < self.deadline + 30 else signal.SIGKILL)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _tree(root: int) -> list[int]:
    """`root` and its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
            parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # the group this command's process leads (start_new_session)


def _open(path: Path | None, mode: str):
    return contextlib.nullcontext() if path is None else open(path, mode, encoding="utf-8")

"""Running clients: one interpreter per client and workload, and wrk.

``Child`` talks to ``_clients.py --serve`` over pipes (one JSON line per command);
``run_wrk`` runs wrk once and reaps it with ``os.wait4`` for its CPU time.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _report import DISTURBED, Run, parse_wrk

CLIENT_SCRIPT = Path(__file__).resolve().with_name("_clients.py")


@dataclass
class Entry:
    """One client in one workload."""

    id: str  # what --only matches, e.g. "small/fastreq-curl"
    client: str  # key in _clients.CLIENTS, or "wrk"
    label: str
    n: int
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass
class Workload:
    key: str
    title: str
    entries: list[Entry]
    mbps: bool = False
    growth: bool = False
    connections: bool = False




def _wait4(proc: subprocess.Popen[bytes], timeout: float) -> tuple[Any, bool]:
    """Reap ``proc`` with ``os.wait4`` (its rusage); kill it after ``timeout`` s."""
    box: dict[str, Any] = {}

    def reap() -> None:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        box["usage"] = usage

    thread = threading.Thread(target=reap, daemon=True)
    thread.start()
    timed_out = False
    try:
        thread.join(timeout)
        if thread.is_alive():
            timed_out = True
            proc.kill()
            thread.join(10)
    except BaseException:
        proc.kill()
        thread.join(10)
        raise
    return box.get("usage"), timed_out


def run_child(cmd: list[str], timeout: float) -> tuple[int | None, str, str, Any, bool]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        usage, timed_out = _wait4(proc, timeout)
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), usage, timed_out)


class Child:
    """One client's interpreter for a whole workload (``_clients.py --serve``), pinned with
    ``pin``: it imports and warms up once, then answers one timed run per command."""

    def __init__(self, entry: Entry, pin: list[str]) -> None:
        self.entry = entry
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [*pin, sys.executable, str(CLIENT_SCRIPT), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        self.buf = b""
        self.dead = ""  # why it cannot run any more

    def spec(self, cmd: str) -> dict[str, Any]:
        return {**self.entry.spec, "cmd": cmd, "client": self.entry.client, "n": self.entry.n}

    def send(self, cmd: str) -> bool:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(self.spec(cmd)).encode() + b"\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            self.dead = "crashed: " + self.stderr_tail()
            return False

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next reply, or None (``dead`` says why: timeout, crash)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                self.dead = f"timeout: killed after {timeout:.0f} s"
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(10)
                    self.dead = "crashed: " + self.stderr_tail()
                    return None
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        if "crash" in reply:
            self.dead = "crashed: " + reply["crash"]
            return None
        return reply

    def stderr_tail(self, lines: int = 1) -> str:
        self.err.seek(0)
        text = self.err.read().decode(errors="replace").strip().splitlines()
        return " / ".join(text[-lines:])[:300] or f"exit {self.proc.poll()}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                try:
                    self.proc.stdin.write(b'{"cmd": "quit"}\n')
                    self.proc.stdin.close()
                    self.proc.wait(5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        finally:
            self.kill()
            for f in (self.proc.stdin, self.proc.stdout):
                if f is not None:
                    f.close()
            self.err.close()


def run_wrk(entry: Entry, pin: list[str], timeout: float, wrk: str | None, quick: bool) -> Run:
    if wrk is None:
        return Run.skipped(0, "wrk not installed")
    seconds = 2 if quick else 5
    cmd = [*pin, wrk, "-t1", f"-c{entry.spec['conc']}", f"-d{seconds}s", "--timeout", "10s",
           entry.spec["url"]]
    rc, out, err, usage, timed_out = run_child(cmd, timeout)
    if timed_out or rc != 0:
        return Run.failure(0, "timeout" if timed_out else "crashed", err.strip()[-300:])
    stats = parse_wrk(out)
    cpu = usage.ru_utime + usage.ru_stime if usage else float("nan")
    # no peak RSS: wrk's ru_maxrss would include this (Python) process, which spawned it
    return Run(requests=int(stats["requests"]), wall=stats["seconds"], cpu=cpu,
               rss_peak_kb=0, errors=int(stats["errors"]),
               nbytes=int(stats["bytes"]), loop="C (epoll)", note=f"fixed {seconds} s run")


def run_in(child: Child, timeout: float) -> Run:
    n = child.entry.n
    if child.dead:
        return Run.failure(n, "not run", child.dead)
    data = child.receive(timeout) if child.send("run") else None
    if data is None:
        return Run.failure(n, child.dead.partition(":")[0], child.dead.partition(": ")[2])
    return Run(
        requests=data["requests"], wall=data["wall"], cpu=data["cpu"],
        rss_peak_kb=data["rss_peak_kb"], rss_growth_kb=data.get("rss_growth_kb"),
        errors=data["errors"], nbytes=data["nbytes"], first_error=data.get("first_error", ""),
        connections=data.get("connections"), protocols=data.get("protocols", ""),
        loop=data.get("loop", ""), note=data.get("note", ""),
    )



def start_clients(entries: Sequence[Entry], pin: list[str], deadline: float,
                  timeout: float, log: Callable[[str], None]) -> dict[str, Child]:
    """Start one interpreter per client and warm them all up (in parallel, untimed)."""
    children = {e.id: Child(e, pin) for e in entries if e.client != "wrk"}
    for child in children.values():
        child.send("warm")
    for child in children.values():
        left = min(timeout, deadline - time.monotonic())
        if not child.dead and child.receive(max(left, 1.0)) is None:
            log(f"  {child.entry.label}: warm-up failed: {child.dead}")
    return children


def progress(rep: int, repeat: int, e: Entry, run: Run, mbps: bool) -> None:
    if run.failed:
        print(f"  [{rep + 1}/{repeat}] {e.label:<44} failed: {run.note}; {run.first_error}",
              flush=True)
        return
    speed = f"{run.mbps:9,.0f} MB/s" if mbps else f"{run.rps:9,.0f} req/s"
    extra = f", {run.connections} conns" if run.connections is not None else ""
    disturbed = (f"disturbed: others used {run.others:.0%} of a core"
                 if run.others is not None and run.others > DISTURBED else "")
    why = "; ".join(x for x in (run.note, run.first_error, disturbed) if x)
    print(f"  [{rep + 1}/{repeat}] {e.label:<44} {speed}  "
          f"{run.cpu / max(run.requests, 1) * 1e6:7.1f} µs/req  errors {run.errors}{extra}"
          + (f"  ({why})" if why else ""), flush=True)

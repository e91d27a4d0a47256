"""The machine: pinning, CPU model, versions, and CPU time used on it (``/proc``)."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def pinning() -> tuple[list[str], list[str], str]:
    """(server prefix, client prefix, description)."""
    if shutil.which("taskset") is None:
        return [], [], "not pinned: taskset is not installed (util-linux)"
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return [], [], f"not pinned: only {len(cpus)} CPU available"
    server, client = cpus[0], cpus[1]
    return (["taskset", "-c", str(server)], ["taskset", "-c", str(client)],
            f"nginx pinned to core {server}, each client run to core {client} (taskset)")


def busy_cpu_seconds() -> float | None:
    """CPU time all processes on the machine used so far (``/proc/stat``), seconds."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_seconds() -> float:
    """CPU time of this process and every child it has reaped (clients, wrk, nginx)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> str:
    code = (
        "import importlib.metadata as m, sys\n"
        "out = []\n"
        "for p in ('fastreq', 'pycurl', 'aiohttp', 'uvloop', 'httpx', 'niquests', 'requests',"
        " 'orjson'):\n"
        "    try: out.append(f'{p} {m.version(p)}')\n"
        "    except Exception: out.append(f'{p} missing')\n"
        "try:\n"
        "    import pycurl; out.append(pycurl.version.split()[0])\n"
        "except Exception: pass\n"
        "print(', '.join(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    return proc.stdout.strip()


def fastreq_loop() -> str:
    code = ("from fastreq._sync import new_event_loop\nl = new_event_loop()\n"
            "print(type(l).__module__.split('.')[0]); l.close()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    return proc.stdout.strip() or "unknown (fastreq not importable?)"



def proc_cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a live process (``/proc/<pid>/stat``), seconds."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        rest = text.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 onwards
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Probe:
    """CPU other processes used during one run, as a share of one core.

    Everything the machine did (``/proc/stat``) minus nginx, the client and this process.
    """

    def __init__(self, nginx_pid: int | None, client_pid: int | None = None) -> None:
        self.nginx_pid, self.client_pid = nginx_pid, client_pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float | None, float | None, float, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        return (
            time.monotonic(),
            busy_cpu_seconds(),
            proc_cpu_seconds(self.nginx_pid) if self.nginx_pid else 0.0,
            (proc_cpu_seconds(self.client_pid) or 0.0) if self.client_pid else 0.0,
            me.ru_utime + me.ru_stime,
        )

    def others(self, client_cpu: float | None = None) -> float | None:
        """Share of one core; ``client_cpu`` when the client has exited (wrk)."""
        end = self._sample()
        wall = end[0] - self.start[0]
        if wall <= 0 or None in (self.start[1], end[1], self.start[2], end[2]):
            return None
        busy = end[1] - self.start[1]  # type: ignore[operator]
        nginx = end[2] - self.start[2]  # type: ignore[operator]
        client = client_cpu if client_cpu is not None else end[3] - self.start[3]
        mine = end[4] - self.start[4]
        return max(0.0, busy - nginx - client - mine) / wall

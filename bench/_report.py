"""Pure pieces of the benchmark report: per-client summaries, markdown tables, ratios.

Nothing here starts a process or touches the network, so the smoke test imports it directly.

Example::

    from bench._report import Run, summarize, render_table

    runs = [Run(requests=1000, wall=0.1, cpu=0.05, rss_peak_kb=40_000, errors=0)]
    row = summarize("raw-aiohttp", "raw aiohttp", runs)
    print(render_table([row]))
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MIB = 1024 * 1024
DASH = "\u2013"  # en dash: "no value" and ranges
TIMES = "\u00d7"  # multiplication sign: ratios
#: a run is "disturbed" when other processes used more than this share of one core meanwhile
DISTURBED = 0.10


@dataclass
class Run:
    """One measured run of one client in its own process."""

    requests: int
    wall: float  # seconds, timed section only
    cpu: float  # seconds of user + system CPU in the timed section (all threads)
    rss_peak_kb: int  # ru_maxrss of the client process (KiB on Linux)
    errors: int
    rss_growth_kb: int | None = None  # peak RSS in the timed section minus RSS at its start
    nbytes: int = 0  # body bytes received in the timed section
    first_error: str = ""
    connections: int | None = None  # TCP connections the server saw (TLS workload)
    protocols: str = ""  # e.g. "HTTP/2.0"
    loop: str = ""  # "uvloop", "asyncio", "threads", "C"...
    note: str = ""  # "timeout", "crashed", "skipped"...
    others: float | None = None  # CPU other processes used meanwhile, share of one core

    @property
    def rps(self) -> float:
        return self.requests / self.wall if self.wall > 0 and not self.failed else 0.0

    @property
    def mbps(self) -> float:
        return self.nbytes / MIB / self.wall if self.wall > 0 and not self.failed else 0.0

    @property
    def failed(self) -> bool:
        """The run produced no measurement at all (crash, timeout, skipped)."""
        return math.isnan(self.wall)

    @classmethod
    def skipped(cls, requests: int, why: str) -> Run:
        """Not run (time limit, tool missing): no numbers, and not counted as errors."""
        return cls(requests=requests, wall=float("nan"), cpu=float("nan"), rss_peak_kb=0,
                   errors=0, first_error=why, note="skipped")

    @classmethod
    def failure(cls, requests: int, note: str, detail: str = "") -> Run:
        return cls(requests=requests, wall=float("nan"), cpu=float("nan"), rss_peak_kb=0,
                   errors=requests, first_error=detail, note=note)


@dataclass
class Row:
    """A client's summary over its repetitions."""

    client: str
    label: str
    runs: list[Run] = field(default_factory=list)

    @property
    def ok_runs(self) -> list[Run]:
        return [r for r in self.runs if not r.failed]

    @property
    def requests(self) -> int:
        return self.runs[0].requests if self.runs else 0

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    def _stat(self, values: Sequence[float]) -> tuple[float, float, float]:
        if not values:
            return (math.nan, math.nan, math.nan)
        return (statistics.median(values), min(values), max(values))

    @property
    def rps(self) -> tuple[float, float, float]:
        """(median, min, max) requests per second."""
        return self._stat([r.rps for r in self.ok_runs])

    @property
    def mbps(self) -> tuple[float, float, float]:
        return self._stat([r.mbps for r in self.ok_runs])

    @property
    def cpu_us(self) -> float:
        """Median CPU microseconds per request."""
        values = [r.cpu / r.requests * 1e6 for r in self.ok_runs if r.requests]
        return statistics.median(values) if values else math.nan

    @property
    def rss_mb(self) -> float:
        """Largest peak RSS over the runs, MiB."""
        values = [r.rss_peak_kb / 1024 for r in self.ok_runs if r.rss_peak_kb]
        return max(values) if values else math.nan

    @property
    def rss_growth_mb(self) -> float:
        """Largest growth of peak RSS during the timed section, MiB."""
        values = [r.rss_growth_kb / 1024 for r in self.ok_runs if r.rss_growth_kb is not None]
        return max(values) if values else math.nan

    @property
    def connections(self) -> int | None:
        values = [r.connections for r in self.ok_runs if r.connections is not None]
        return max(values) if values else None

    @property
    def protocols(self) -> str:
        return ", ".join(sorted({p for r in self.ok_runs for p in r.protocols.split(",") if p}))

    @property
    def loop(self) -> str:
        return next((r.loop for r in self.runs if r.loop), "")

    def disturbed(self, threshold: float = DISTURBED) -> int:
        """Runs during which other processes used more than ``threshold`` of a core."""
        return sum(1 for r in self.ok_runs if r.others is not None and r.others > threshold)

    @property
    def notes(self) -> str:
        notes = sorted({r.note for r in self.runs if r.note})
        if self.disturbed():
            notes.append(f"{self.disturbed()}/{len(self.ok_runs)} runs disturbed")
        first = next((r.first_error for r in self.runs if r.first_error), "")
        text = "; ".join(notes)
        if first:
            text = f"{text}; {first}" if text else first
        return text.replace("|", "/").replace("\n", " ")[:160]


def summarize(client: str, label: str, runs: Iterable[Run]) -> Row:
    return Row(client, label, list(runs))


def _num(value: float, fmt: str = ",.0f") -> str:
    return DASH if value is None or math.isnan(value) else format(value, fmt)


def _spread(stat: tuple[float, float, float], fmt: str = ",.0f") -> str:
    med, lo, hi = stat
    if math.isnan(med):
        return DASH
    return f"{_num(med, fmt)} ({_num(lo, fmt)}{DASH}{_num(hi, fmt)})"


def render_table(
    rows: Sequence[Row], *, mbps: bool = False, growth: bool = False, connections: bool = False
) -> str:
    """A markdown table: one line per client."""
    head = ["client", "loop", "requests", f"req/s median (min{DASH}max)"]
    if mbps:
        head.append(f"MB/s median (min{DASH}max)")
    head += ["CPU µs/req", "peak RSS MB"]
    if growth:
        head.append("RSS growth MB")
    if connections:
        head += ["TCP conns", "protocol"]
    head += ["errors", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        cells = [row.label, row.loop or DASH, f"{row.requests:,}", _spread(row.rps)]
        if mbps:
            cells.append(_spread(row.mbps))
        cells += [_num(row.cpu_us, ",.1f"), _num(row.rss_mb, ",.1f")]
        if growth:
            cells.append(_num(row.rss_growth_mb, ",.1f"))
        if connections:
            conns = row.connections
            cells += [DASH if conns is None else str(conns), row.protocols or DASH]
        cells += [str(row.errors), row.notes or ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Ratio:
    """``value`` compared with ``target``; ``higher_is_better`` False for ceilings."""

    name: str
    value: float
    target: float
    higher_is_better: bool = True
    unit: str = TIMES
    by_cpu: float = math.nan  # the same comparison by CPU per request (b's / a's)

    @property
    def verdict(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "n/a"
        ok = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return "PASS" if ok else "FAIL"


def ratio_of(rows: dict[str, Row], a: str, b: str, *, metric: str = "rps") -> float:
    """median(a) / median(b) for ``metric`` (``rps`` or ``mbps``), or for ``cpu`` the inverse
    ratio of CPU µs per request (so above 1 still means a is better); NaN when missing."""
    if a not in rows or b not in rows:
        return math.nan
    if metric == "cpu":
        num, den = rows[b].cpu_us, rows[a].cpu_us
    else:
        num, den = getattr(rows[a], metric)[0], getattr(rows[b], metric)[0]
    if math.isnan(num) or math.isnan(den) or den == 0:
        return math.nan
    return float(num / den)


def render_ratios(ratios: Sequence[Ratio]) -> str:
    lines = ["| ratio | measured | target | verdict | by CPU µs/req |",
             "|---|---|---|---|---|"]
    for r in ratios:
        cmp = "≥" if r.higher_is_better else "≤"
        fmt = ".2f" if r.unit == TIMES else ",.1f"
        value = DASH if math.isnan(r.value) else f"{r.value:{fmt}}{r.unit}"
        cpu = DASH if math.isnan(r.by_cpu) else f"{r.by_cpu:.2f}{TIMES}"
        lines.append(
            f"| {r.name} | {value} | {cmp} {r.target:g}{r.unit} | {r.verdict} | {cpu} |")
    return "\n".join(lines)


def parse_wrk(output: str) -> dict[str, float]:
    """Requests, duration, bytes and error counts from wrk's text output."""
    result = {"requests": 0.0, "seconds": math.nan, "bytes": 0.0, "errors": 0.0}
    units = {"B": 1, "KB": 1024, "MB": MIB, "GB": 1024 * MIB, "TB": 1024 * 1024 * MIB}
    for raw in output.splitlines():
        line = raw.strip()
        if " requests in " in line and line.endswith("read"):
            # "123456 requests in 2.00s, 45.67MB read"
            count, _, rest = line.partition(" requests in ")
            duration, _, size = rest.partition(", ")
            result["requests"] = float(count)
            result["seconds"] = _duration(duration)
            size = size.removesuffix(" read")
            for unit in sorted(units, key=len, reverse=True):
                if size.endswith(unit):
                    result["bytes"] = float(size[: -len(unit)]) * units[unit]
                    break
        elif line.startswith("Non-2xx or 3xx responses:"):
            result["errors"] += float(line.split(":")[1])
        elif line.startswith("Socket errors:"):
            # "Socket errors: connect 0, read 0, write 0, timeout 0"
            for part in line.split(":", 1)[1].split(","):
                result["errors"] += float(part.split()[-1])
    return result


def _duration(text: str) -> float:
    text = text.strip()
    for suffix, scale in (("ms", 1e-3), ("us", 1e-6), ("m", 60.0), ("s", 1.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def count_connections(lines: Iterable[str]) -> tuple[int, str]:
    """Distinct ``$connection`` ids and the protocols in nginx access-log lines written with
    ``log_format conn '$connection $server_protocol $status'``."""
    conns: set[str] = set()
    protocols: set[str] = set()
    for line in lines:
        parts = line.split()
        if len(parts) >= 2:
            conns.add(parts[0])
            protocols.add(parts[1])
    return len(conns), ",".join(sorted(protocols))

"""The report: issue 4's target ratios, the other (diagnostic) ratios, the Markdown report
and its copy in bench/README.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from _report import TIMES, Ratio, Row, ratio_of, render_ratios, render_table
from _runner import Workload

MARK_START, MARK_END = "<!-- bench:latest:start -->", "<!-- bench:latest:end -->"


def ratios(rows: dict[str, Row]) -> list[Ratio]:
    def vs(name: str, a: str, b: str, target: float, metric: str = "rps") -> Ratio:
        return Ratio(name, ratio_of(rows, a, b, metric=metric), target,
                     by_cpu=ratio_of(rows, a, b, metric="cpu"))

    out = [
        vs("small: fastreq(curl) / raw pycurl select loop",
           "small/fastreq-curl", "small/raw-pycurl", 0.75),
        vs("small: fastreq(curl) / raw aiohttp + uvloop",
           "small/fastreq-curl", "small/raw-aiohttp-uvloop", 3.0),
        vs("small: fastreq(aiohttp) / raw aiohttp + uvloop (same loop)",
           "small/fastreq-aiohttp", "small/raw-aiohttp-uvloop", 0.9),
        vs("small: fastreq(niquests) / raw niquests (same loop)",
           "small/fastreq-niquests", "small/raw-niquests", 0.9),
        vs("small: fastreq(httpx) / raw httpx (same loop)",
           "small/fastreq-httpx", "small/raw-httpx", 0.9),
        vs("large: fastreq(curl) MB/s / wrk MB/s",
           "large/fastreq-curl", "large/wrk", 0.9, metric="mbps"),
    ]
    stream = rows.get("large/fastreq-curl-stream")
    out.append(Ratio(
        "large: fastreq(curl) streamed to files, peak RSS growth (flat: < 16 bodies in flight)",
        stream.rss_growth_mb if stream and stream.ok_runs else float("nan"), 16.0,
        higher_is_better=False, unit=" MiB"))
    h2 = rows.get("h2/fastreq-curl-h2")
    conns = h2.connections if h2 else None
    out.append(Ratio(
        "h2: TCP connections for 1,000 requests, fastreq(curl) http2 on",
        float("nan") if conns is None else float(conns), 4, higher_is_better=False,
        unit=" conns"))
    return out


def info_ratios(rows: dict[str, Row]) -> list[tuple[str, float]]:
    return [
        ("small: fastreq(curl) with journal / without (the journal's cost)",
         ratio_of(rows, "small/fastreq-curl-journal", "small/fastreq-curl")),
        ("small: fastreq(curl) lane / general path (the fast lane's gain)",
         ratio_of(rows, "small/fastreq-curl", "small/fastreq-curl-general")),
        ("small: fastreq(curl) / raw pycurl sending fastreq's request",
         ratio_of(rows, "small/fastreq-curl", "small/raw-pycurl-same")),
        ("small: fastreq(curl) / curl backend alone (the pipeline's share)",
         ratio_of(rows, "small/fastreq-curl", "small/backend-curl")),
        ("small: curl backend alone / raw pycurl select loop (the engine's share)",
         ratio_of(rows, "small/backend-curl", "small/raw-pycurl")),
        ("small: fastreq(aiohttp) / aiohttp backend alone (the pipeline's share)",
         ratio_of(rows, "small/fastreq-aiohttp", "small/backend-aiohttp")),
        ("small: aiohttp backend alone / raw aiohttp + uvloop (the adapter's share)",
         ratio_of(rows, "small/backend-aiohttp", "small/raw-aiohttp-uvloop")),
        ("small: fastreq(requests) / requests 64-thread pool",
         ratio_of(rows, "small/fastreq-requests", "small/raw-requests")),
        ("small: raw pycurl / wrk", ratio_of(rows, "small/raw-pycurl", "small/wrk")),
        ("large: raw pycurl MB/s / wrk MB/s",
         ratio_of(rows, "large/raw-pycurl", "large/wrk", metric="mbps")),
        ("large: fastreq(aiohttp) MB/s / raw aiohttp + uvloop MB/s",
         ratio_of(rows, "large/fastreq-aiohttp", "large/raw-aiohttp-uvloop", metric="mbps")),
        ("h2: fastreq(curl) http2 on / http2 off, req/s",
         ratio_of(rows, "h2/fastreq-curl-h2", "h2/fastreq-curl-h1")),
        ("h2: fastreq(curl) http2 on / raw pycurl http2 on, req/s",
         ratio_of(rows, "h2/fastreq-curl-h2", "h2/raw-pycurl-h2")),
    ]


def render_report(workloads: Sequence[Workload], rows: dict[str, Row], header: Sequence[str],
                  footer: Sequence[str]) -> str:
    parts = ["# fastreq benchmark", "", *header, ""]
    for w in workloads:
        parts += [f"## {w.title}", "",
                  render_table([rows[e.id] for e in w.entries], mbps=w.mbps, growth=w.growth,
                               connections=w.connections), ""]
    parts += ["## Ratios (medians; targets from issue 4)", "", render_ratios(ratios(rows)), ""]
    info = [(name, value) for name, value in info_ratios(rows) if value == value]
    if info:
        parts += ["Other ratios (no target):", ""]
        parts += [f"- {name}: {value:.2f}{TIMES}" for name, value in info]
        parts.append("")
    parts += list(footer)
    return "\n".join(parts).rstrip() + "\n"


def update_readme(readme: Path, report: str) -> str:
    """Replace the text between the README's markers with ``report`` (headings one level
    down); returns what was done."""
    text = readme.read_text() if readme.exists() else ""
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start < 0 or end < start:
        return f"{readme} has no {MARK_START} ... {MARK_END} markers: not updated"
    body = "\n".join("#" + line if line.startswith("#") else line
                     for line in report.strip().splitlines())
    readme.write_text(text[: start + len(MARK_START)] + "\n" + body + "\n" + text[end:])
    return f"updated {readme}"

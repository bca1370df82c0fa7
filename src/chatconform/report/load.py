"""A load run in a report directory: `load-summary.json` (issue 5's shape) and per-request JSONL,
turned into tables and matplotlib plots (TTFT and ITL histograms, latency and throughput over time).

The per-request JSONL (`requests.jsonl` of `chatconform load`: `endpoint`, `outcome`, `wall`,
`sent_ms`, `content_ms` [one per content delta], `terminal_ms`) is read tolerantly, one JSON object a
line; other shapes work too. Fields used (first present wins):
- `endpoint` (or `name`);
- outcome: `ok` (bool), else `outcome`/`status` == "ok", else no `error`; `incomplete` / `error`
  records are counted apart and never mixed into latency (as `chatconform load` itself does);
- start time: `start_s` / `t_s` (seconds from the run's start), `start_ms`, or a nanosecond
  timeline (`timeline.intended`/`sent`, or `intended_ns`/`start_ns`/`sent_ns`), made relative to
  the earliest request;
- `ttft_ms`, `e2e_ms`, `itl_ms` (list) directly, or computed from the timeline (`sent`,
  `first_delta`, `deltas` [ns], `terminal`);
- output tokens: `output_tokens` / `tokens` / `deltas` (an int) / the number of delta times.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatconform.report.util import LOAD_SUMMARY_FILE, ReportError, read_json

MAX_SAMPLES = 200_000  # per-request records read for plots (a soak run may write more)


@dataclass
class Sample:
    endpoint: str
    ok: bool
    start_s: float | None
    ttft_ms: float | None
    e2e_ms: float | None
    itl_ms: list[float] = field(default_factory=list)
    tokens: int = 0


@dataclass
class LoadRun:
    summary: dict[str, Any] | None
    samples: list[Sample]
    jsonl: Path | None
    truncated: bool = False

    @property
    def verdict(self) -> str | None:
        return None if self.summary is None else str(self.summary.get("verdict", "?"))


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _first(obj: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in obj and obj[k] is not None:
            return obj[k]
    return None


def parse_sample(obj: dict[str, Any]) -> Sample:
    tl = obj.get("timeline") if isinstance(obj.get("timeline"), dict) else {}
    assert isinstance(tl, dict)
    endpoint = str(_first(obj, "endpoint", "name") or "all")
    if isinstance(obj.get("ok"), bool):
        ok = bool(obj["ok"])
    elif _first(obj, "outcome", "status") is not None and isinstance(
        _first(obj, "outcome", "status"), str
    ):
        ok = str(_first(obj, "outcome", "status")).lower() in ("ok", "success", "pass", "passed")
    else:
        ok = not obj.get("error") and not obj.get("incomplete")
    start_ns = _num(_first(tl, "intended", "sent", "start")) or _num(
        _first(obj, "intended_ns", "start_ns", "sent_ns")
    )
    if isinstance(obj.get("content_ms"), list):  # chatconform load's requests.jsonl
        return _from_ms_timeline(obj, endpoint, ok)
    start_s = _num(_first(obj, "start_s", "t_s", "offset_s"))
    if start_s is None and _num(obj.get("start_ms")) is not None:
        start_s = float(obj["start_ms"]) / 1000
    if start_s is None and start_ns is not None:
        start_s = start_ns / 1e9  # made relative later
    sent = _num(_first(tl, "sent", "intended", "start"))
    deltas = tl.get("deltas") if isinstance(tl.get("deltas"), list) else []
    ttft = _num(obj.get("ttft_ms"))
    first_delta = _num(tl.get("first_delta")) or (_num(deltas[0]) if deltas else None)
    if ttft is None and sent is not None and first_delta is not None:
        ttft = (first_delta - sent) / 1e6
    e2e = _num(obj.get("e2e_ms"))
    if e2e is None and sent is not None and _num(tl.get("terminal")) is not None:
        e2e = (float(tl["terminal"]) - sent) / 1e6
    itl_raw = obj.get("itl_ms")
    if isinstance(itl_raw, list):
        itl = [float(x) for x in itl_raw if _num(x) is not None]
    else:
        times = [float(x) for x in deltas if _num(x) is not None]
        itl = [(b - a) / 1e6 for a, b in itertools.pairwise(times)]
    tok = _first(obj, "output_tokens", "tokens", "deltas")
    tokens = int(tok) if _num(tok) is not None else len(deltas)
    return Sample(endpoint, ok, start_s, ttft, e2e, itl, tokens)


def _from_ms_timeline(obj: dict[str, Any], endpoint: str, ok: bool) -> Sample:
    """A `chatconform load` record: `wall` (epoch s at start), `sent_ms`, `content_ms` (each
    content delta), `terminal_ms`, on one monotonic clock in ms."""
    sent = _num(obj.get("sent_ms"))
    content = [float(x) for x in obj.get("content_ms") or [] if _num(x) is not None]
    terminal = _num(obj.get("terminal_ms"))
    start_s = _num(obj.get("wall"))
    if start_s is None:
        t0 = _num(obj.get("dispatch_ms")) or sent
        start_s = None if t0 is None else t0 / 1000
    ttft = content[0] - sent if content and sent is not None else None
    e2e = terminal - sent if terminal is not None and sent is not None else None
    itl = [b - a for a, b in itertools.pairwise(content)]
    return Sample(endpoint, ok, start_s, ttft, e2e, itl, len(content))


def find_jsonl(report_dir: Path) -> Path | None:
    files = sorted(report_dir.glob("*.jsonl"))
    if not files:
        return None
    for f in files:
        if "request" in f.name:
            return f
    return files[0]


def read_load(report_dir: Path) -> LoadRun | None:
    """The load run in `report_dir`, or None when there is none."""
    summary_path = report_dir / LOAD_SUMMARY_FILE
    summary = read_json(summary_path) if summary_path.exists() else None
    if summary is not None and not isinstance(summary, dict):
        raise ReportError(f"{summary_path} is not a JSON object")
    jsonl = find_jsonl(report_dir)
    if summary is None and jsonl is None:
        return None
    samples: list[Sample] = []
    truncated = False
    if jsonl is not None:
        with jsonl.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if len(samples) >= MAX_SAMPLES:
                    truncated = True
                    break
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    samples.append(parse_sample(obj))
        starts = [s.start_s for s in samples if s.start_s is not None]
        if starts:
            t0 = min(starts)
            for s in samples:
                if s.start_s is not None:
                    s.start_s -= t0
    return LoadRun(summary, samples, jsonl, truncated)


# -- plots ----------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(run: LoadRun) -> list[tuple[str, str]]:
    """(title, base64 PNG) for each plot the samples allow; [] when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    ok = [s for s in run.samples if s.ok]
    if not ok:
        return []
    endpoints = sorted({s.endpoint for s in ok})
    out: list[tuple[str, str]] = []

    def hist(title: str, xlabel: str, values_of: Any) -> None:
        series = {ep: values_of([s for s in ok if s.endpoint == ep]) for ep in endpoints}
        series = {ep: v for ep, v in series.items() if v}
        if not series:
            return
        fig = Figure(figsize=(7.5, 3.2))
        ax = fig.add_subplot()
        for ep, values in series.items():
            ax.hist(values, bins=min(60, max(10, int(math.sqrt(len(values))))), alpha=0.6, label=ep)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        ax.legend()
        ax.grid(alpha=0.3)
        out.append((title, _png(fig)))

    hist(
        "TTFT: time to first content delta",
        "ms",
        lambda ss: [s.ttft_ms for s in ss if s.ttft_ms is not None],
    )
    hist(
        "ITL: gaps between content deltas (pooled)",
        "ms",
        lambda ss: [x for s in ss for x in s.itl_ms],
    )
    timed = [s for s in ok if s.start_s is not None]
    if timed:
        fig = Figure(figsize=(7.5, 3.2))
        ax = fig.add_subplot()
        for ep in endpoints:
            pts = [s for s in timed if s.endpoint == ep]
            if any(s.ttft_ms is not None for s in pts):
                ax.scatter(
                    [s.start_s for s in pts if s.ttft_ms is not None],
                    [s.ttft_ms for s in pts if s.ttft_ms is not None],
                    s=6,
                    label=f"{ep} TTFT",
                )
            if any(s.e2e_ms is not None for s in pts):
                ax.scatter(
                    [s.start_s for s in pts if s.e2e_ms is not None],
                    [s.e2e_ms for s in pts if s.e2e_ms is not None],
                    s=6,
                    marker="x",
                    label=f"{ep} E2E",
                )
        ax.set_title("Latency over time (by request start)")
        ax.set_xlabel("s since start")
        ax.set_ylabel("ms")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
        out.append(("Latency over time", _png(fig)))

        end = max(float(s.start_s or 0) + (s.e2e_ms or 0) / 1000 for s in timed)
        nbins = max(1, math.ceil(end))
        reqs = [0] * nbins
        toks = [0] * nbins
        for s in timed:
            b = min(nbins - 1, int(float(s.start_s or 0) + (s.e2e_ms or 0) / 1000))
            reqs[b] += 1
            toks[b] += s.tokens
        fig = Figure(figsize=(7.5, 3.2))
        ax = fig.add_subplot()
        xs = list(range(nbins))
        ax.plot(xs, reqs, drawstyle="steps-post", label="requests/s completed")
        ax.set_xlabel("s since start")
        ax.set_ylabel("requests/s")
        ax2 = ax.twinx()
        ax2.plot(xs, toks, drawstyle="steps-post", color="tab:orange", label="output tokens/s")
        ax2.set_ylabel("tokens/s")
        ax.set_title("Throughput over time (1 s bins)")
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize="small")
        ax.grid(alpha=0.3)
        out.append(("Throughput over time", _png(fig)))
    return out


# -- tables ---------------------------------------------------------------------------------------
METRICS: tuple[tuple[str, str], ...] = (
    ("ttft_ms", "TTFT ms"),
    ("itl_ms", "ITL ms"),
    ("tpot_ms", "TPOT ms"),
    ("e2e_ms", "E2E ms"),
)
PCTS: tuple[str, ...] = ("p50", "p90", "p95", "p99", "max")


def fmt_num(v: Any, digits: int = 1) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return "–" if v is None else str(v)
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def endpoint_rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    eps = summary.get("endpoints")
    if not isinstance(eps, dict):
        return []
    return [(str(k), v) for k, v in eps.items() if isinstance(v, dict)]


def threshold_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    th = summary.get("thresholds")
    if isinstance(th, list):
        return [t for t in th if isinstance(t, dict)]
    if isinstance(th, dict):
        return [
            {"name": k, **v} if isinstance(v, dict) else {"name": k, "value": v}
            for k, v in th.items()
        ]
    return []


def threshold_text(t: dict[str, Any]) -> tuple[str, str, str, str]:
    """(name, limit, actual, verdict) of one threshold, whatever its exact keys."""
    name = str(_first(t, "name", "metric", "threshold") or "?")
    if t.get("endpoint"):
        name = f"{t['endpoint']}: {name}"
    limit = _first(t, "limit", "max", "threshold_value")
    actual = _first(t, "actual", "observed", "measured", "value")
    ok = _first(t, "ok", "passed", "pass")
    verdict = t.get("verdict")
    if verdict is None:
        verdict = "PASS" if ok is True else "FAIL" if ok is False else "?"
    return name, fmt_num(limit, 2), fmt_num(actual, 2), str(verdict)

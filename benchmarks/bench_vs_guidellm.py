"""chatconform's load client against GuideLLM, measuring the same server with known latencies.

The embedded reference server is started with injected ``--ttft-ms`` / ``--itl-ms`` (the truth)
and ``--calibration``, which records the server's own send times (when each content delta was
handed to the ASGI server): so the table separates the client's error (measured − sent) from the
server's delay (sent − injected). Both tools stream ``POST /api/v1/chat/completions`` in a closed
loop at each concurrency, one after the other against the same server, ``--runs`` times
(interleaved); each cell is the median over runs.

- chatconform: ``python -m chatconform.load --endpoint completions --users N`` in one process
  (``--workers 0``), with the conformance checks on (as shipped; ``--no-checks`` to drop them).
- GuideLLM: ``guidellm run`` (its own venv; never a project dependency) with the ``openai_http``
  backend, a ``concurrent`` profile and synthetic prompts. The synthetic data needs a tokenizer
  from a model hub, which this machine cannot reach: the script saves a byte-level tokenizer
  (``tokenizers`` + ``transformers`` from GuideLLM's venv, no network) and passes its directory.

GuideLLM venv: ``--guidellm PATH`` (its ``guidellm`` executable), else ``$GUIDELLM``, else
``benchmarks/.venv-guidellm``, ``/tmp/venv-guidellm``, ``guidellm`` on PATH; ``--install-guidellm``
creates ``benchmarks/.venv-guidellm`` with ``pip install guidellm`` first (several GB: torch).
Without one, GuideLLM's cells say ``not run: <reason>`` and chatconform's half still runs.

Run: ``python benchmarks/bench_vs_guidellm.py [--seconds 10 --runs 3 --streams 1 50 200]``.
Not a test: figures depend on the machine; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from chatconform.embedded import EmbeddedServer
from chatconform.reference.sendlog import nearest_rank, unix_minus_monotonic

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-guidellm"
CALIBRATION_PATH = "/_calibration/send-times"

TOKENIZER_SCRIPT = """
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(sys.argv[1])
"""


@dataclass
class Cell:
    """One tool's figures of one run (ms); ``error`` says why there are none."""

    ttft_p50: float | None = None
    ttft_p99: float | None = None
    itl_p50: float | None = None  # chatconform: per gap; GuideLLM: per-request mean (all it has)
    # per-request mean gap, (last content − first content) / (deltas − 1), as GuideLLM's ITL
    itl_mean_p50: float | None = None
    requests: int = 0
    concurrency: float | None = None  # achieved, by Little's law: ok req/s × mean E2E
    saturated: bool = False
    read_lag_p99: float | None = None  # chatconform: how late it read what had arrived (ms)
    error: str | None = None
    server: dict[str, Any] = field(default_factory=dict)
    # per request, joined with the server's own log on the response id (wall clock, one host):
    # the tool's first-delta time − the server's hand-over of that delta (the tool's own error),
    # and the server's hand-over − the tool's send − the injected TTFT (the server's delay,
    # the wait to be read included)
    own_p50: float | None = None
    own_p99: float | None = None
    server_delay_p99: float | None = None
    joined: int = 0
    clock_skew_ms: float = 0.0  # the server's (wall − monotonic) − this process's: corrected for
    # (response id, sent, first delta), unix seconds, of the tool's measured requests
    pairs: list[tuple[str, float, float]] = field(default_factory=list, repr=False)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWYTE_", "GUIDELLM__"))}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return env


# -- the server's own send times ---------------------------------------------------------------


class WarmUpReset:
    """Starts the server's send log anew ``warm_up`` s after the tool's first streamed request
    (its run's start, within the 50 ms of a poll), so the server's figures cover the same part of
    the run as the tools' figures, both of which leave out requests sent in the warm-up."""

    def __init__(self, root: str, warm_up: float, ttft_s: float, bound_s: float = 180.0) -> None:
        self.root, self.warm_up, self.bound_s = root, warm_up, bound_s
        self.ttft_s = ttft_s  # the injected TTFT: a first delta's request was sent that long ago
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WarmUpReset:
        send_times(self.root, reset=True)
        if self.warm_up > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def _run(self) -> None:
        deadline = time.monotonic() + self.bound_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            if (send_times(self.root, reset=False).get("ttft_ms") or {}).get("count"):
                break  # a first delta went out: its request was sent a TTFT ago
            self._stop.wait(0.05)
        else:
            return
        # the first request was sent about one injected TTFT before its first delta
        if not self._stop.wait(max(self.warm_up - self.ttft_s, 0.0)):
            send_times(self.root, reset=True)


def send_times(root: str, reset: bool, requests: bool = False) -> dict[str, Any]:
    """The reference's send-time distributions so far (``reset``: and start anew; ``requests``:
    with its per-request log)."""
    params = {"reset": "1"} if reset else {}
    if requests:
        params["requests"] = "1"
    try:
        r = httpx.get(root + CALIBRATION_PATH, params=params, timeout=30)
        r.raise_for_status()
        return dict(r.json())
    except (httpx.HTTPError, ValueError):
        return {}


def join_own(cell: Cell, snap: dict[str, Any], ttft_ms: float) -> None:
    """Per request: the tool's error against the server's own hand-over of the first delta, and
    the server's delay, for the requests both logged (the same response id)."""
    server = {r["id"]: r for r in snap.get("requests") or [] if isinstance(r, dict)}
    # the server's wall-clock times are its monotonic ones + its own (wall − monotonic): should
    # its view of the wall clock differ from this host's (seen after a VM's clock step, by ~1 ms,
    # for minutes), take it out, so that both sides are on one clock
    skew = 0.0
    if isinstance(snap.get("unix_minus_monotonic"), (int, float)):
        skew = float(snap["unix_minus_monotonic"]) - unix_minus_monotonic()
    cell.clock_skew_ms = round(skew * 1000, 3)
    own, delay = [], []
    for rid, sent, first in cell.pairs:
        r = server.get(rid)
        if r is None:
            continue
        handed_over = r["first_sent_unix"] - skew
        own.append((first - handed_over) * 1000)
        delay.append((handed_over - sent) * 1000 - ttft_ms)
    own.sort()
    cell.joined = len(own)
    cell.own_p50, cell.own_p99 = nearest_rank(own, 50), nearest_rank(own, 99)
    cell.server_delay_p99 = nearest_rank(sorted(delay), 99)


# -- chatconform -------------------------------------------------------------------------------


def measured_samples(requests_jsonl: Path) -> list[dict[str, Any]]:
    """The run's completed requests sent after the warm-up, with content."""
    out = []
    for line in requests_jsonl.read_text().splitlines():
        r = json.loads(line)
        if not r.get("warmup") and r.get("outcome") == "ok" and r.get("content_ms"):
            out.append(r)
    return out


def chatconform_pairs(samples: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """(response id, sent, first content delta) in unix seconds, per measured request: the
    sample's times are ms after its start, whose wall-clock time is ``wall``."""
    out = []
    for r in samples:
        if r.get("response_id") and r.get("sent_ms") is not None:
            wall = r["wall"]
            out.append((r["response_id"], wall + r["sent_ms"] / 1000,
                        wall + r["content_ms"][0] / 1000))  # fmt: skip
    return out


def mean_gap_p50(samples: list[dict[str, Any]]) -> float | None:
    """p50 over requests of (last content − first content) / (deltas − 1): GuideLLM's ITL."""
    means = [(r["content_ms"][-1] - r["content_ms"][0]) / (len(r["content_ms"]) - 1)
             for r in samples if len(r["content_ms"]) > 1]  # fmt: skip
    return statistics.median(means) if means else None


def run_chatconform(
    base_url: str, key: str, agent: str, streams: int, seconds: int, checks: bool, warm_up: float
) -> Cell:
    with tempfile.TemporaryDirectory(prefix="bench-cc-") as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYTE_")}
        env |= {"FLOWYTE_API_KEY": key, "FLOWYTE_AGENT_ID": agent}
        cmd = [sys.executable, "-m", "chatconform.load", "--base-url", base_url,
               "--endpoint", "completions", "--users", str(streams), "--spawn-rate", str(streams),
               "--run-time", f"{seconds}s", "--report-dir", d, "--workers", "0",
               "--stream-timeout", "120", "--warm-up", f"{warm_up:g}s"]  # fmt: skip
        if not checks:
            cmd.append("--no-checks")
        try:
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=seconds + 180
            )
        except subprocess.TimeoutExpired:
            return Cell(error=f"chatconform load did not end in {seconds + 180} s")
        path = Path(d) / "load-summary.json"
        if not path.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return Cell(error=f"chatconform load exited {proc.returncode}: {tail[:200]}")
        s = json.loads(path.read_text())
        jsonl = Path(d) / "requests.jsonl"
        samples = measured_samples(jsonl) if jsonl.exists() else []
    ep = s["endpoints"]["completions"]
    t, i, e2e = ep["ttft_ms"], ep["itl_ms"], ep["e2e_ms"]
    conc = ep["requests_per_s"] * e2e["mean"] / 1000.0 if e2e.get("mean") is not None else None
    # requests: the measured ones (warm-up left out), as GuideLLM counts them
    return Cell(t["p50"], t["p99"], i["p50"], mean_gap_p50(samples), t["count"], conc,
                bool(s["client"]["saturated"]), s["client"].get("read_lag_p99_ms"),
                pairs=chatconform_pairs(samples))  # fmt: skip


# -- GuideLLM ----------------------------------------------------------------------------------


def find_guidellm(explicit: str | None) -> Path | None:
    for candidate in (
        explicit,
        os.environ.get("GUIDELLM"),
        str(VENV / "bin" / "guidellm"),
        "/tmp/venv-guidellm/bin/guidellm",
        shutil.which("guidellm"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def install_guidellm() -> None:
    print(f"installing guidellm into {VENV} (pip; several GB) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "guidellm"]
    subprocess.run(pip, check=True, timeout=1800)


class GuideLLM:
    """``guidellm run`` against the reference, offline, with a local byte-level tokenizer."""

    def __init__(self, exe: Path, workdir: Path, workers: int) -> None:
        self.exe = exe
        self.env = offline_env()
        if workers > 0:
            self.env["GUIDELLM__MAX_WORKER_PROCESSES"] = str(workers)
        self.python = exe.parent / "python"
        self.workdir = workdir
        self.tokenizer = workdir / "tokenizer"
        self.version = "?"

    def prepare(self) -> str | None:
        """Make the tokenizer; None when ready, else the reason GuideLLM cannot run."""
        v = subprocess.run([str(self.exe), "--version"], capture_output=True, text=True,
                           timeout=120, env=offline_env())  # fmt: skip
        if v.returncode != 0:
            return f"`guidellm --version` exited {v.returncode}: {_last_line(v.stderr)}"
        self.version = v.stdout.strip().split()[-1] if v.stdout.strip() else "?"
        t = subprocess.run([str(self.python), "-c", TOKENIZER_SCRIPT, str(self.tokenizer)],
                           capture_output=True, text=True, timeout=300, env=offline_env())  # fmt: skip
        if t.returncode != 0:
            return f"cannot build a local tokenizer: {_last_line(t.stderr)}"
        return None

    def run(self, base_url: str, key: str, agent: str, streams: int, seconds: int,
            tokens: int, warm_up: float) -> Cell:  # fmt: skip
        root, _, prefix = base_url.partition("/api/")
        out = self.workdir / f"guidellm-{streams}.json"
        out.unlink(missing_ok=True)
        scenario = {
            "spec": {
                "backend": {
                    "kind": "openai_http",
                    "target": root,
                    "model": agent,
                    "api_key": key,
                    "request_format": "/v1/chat/completions",
                    "api_routes": {"/v1/chat/completions": f"api/{prefix}/chat/completions"},
                    "validate_backend": False,  # the reference has no /health
                    "http2": False,
                    "timeout": 120,
                },
                "profile": {
                    "kind": "concurrent",
                    "streams": [streams],
                    "warmup": {"mode": "duration", "value": warm_up},
                },
                "tokenizer": {"kind": "huggingface_auto", "model": str(self.tokenizer)},
                "data": [{"kind": "synthetic_text", "prompt_tokens": 32, "output_tokens": tokens}],
                "constraints": [{"kind": "max_duration", "seconds": seconds}],
                "outputs": [{"kind": "json", "path": str(out)}],
            }
        }
        path = self.workdir / f"scenario-{streams}.json"
        path.write_text(json.dumps(scenario, indent=1))
        cmd = [str(self.exe), "run", "-c", str(path), "--disable-console"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 600,
                                  env=self.env, cwd=self.workdir)  # fmt: skip
        except subprocess.TimeoutExpired:
            return Cell(error=f"guidellm run did not end in {seconds + 600} s")
        if proc.returncode != 0 or not out.exists():
            return Cell(error=f"guidellm run exited {proc.returncode}: {_last_line(proc.stderr)}")
        report = json.loads(out.read_text())["benchmarks"][0]
        bench = report["metrics"]
        ttft = bench["time_to_first_token_ms"]["successful"]
        itl = bench["inter_token_latency_ms"]["successful"]
        if not ttft["count"]:
            return Cell(error="guidellm completed no request")
        itl_p50 = itl["percentiles"]["p50"]
        ok = bench["request_totals"]["successful"]
        latency_s = bench["request_latency"]["successful"]["mean"]
        conc = ok / report["duration"] * latency_s if report.get("duration") else None
        return Cell(ttft["percentiles"]["p50"], ttft["percentiles"]["p99"], itl_p50, itl_p50,
                    ok, conc, pairs=guidellm_pairs(report))  # fmt: skip


def guidellm_pairs(report: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(response id, request start, first token), unix seconds, per successful request GuideLLM
    kept: the two instants its TTFT is taken between."""
    out = []
    for r in (report.get("requests") or {}).get("successful") or []:
        t = (r.get("info") or {}).get("timings") or {}
        first = t.get("first_output_token_iteration") or t.get("first_token_iteration")
        start = t.get("request_start")
        if r.get("response_id") and first is not None and start is not None:
            out.append((r["response_id"], start, first))
    return out


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:240]


# -- the table ---------------------------------------------------------------------------------


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def ratio(theirs: float | None, ours: float | None) -> str:
    """|GuideLLM error| / |chatconform error| (> 1: chatconform is closer to the truth); "tie"
    when both are under the 0.01 ms the table resolves."""
    if theirs is None or ours is None:
        return "-"
    if abs(theirs) < 0.01 and abs(ours) < 0.01:
        return "tie"
    return f"{abs(theirs) / max(abs(ours), 0.01):.1f}x"


def summarize(cells: list[Cell]) -> Cell:
    ok = [c for c in cells if c.error is None]
    if not ok:
        return Cell(error=cells[0].error if cells else "no run")
    server = {k: median([c.server.get(k) for c in ok]) for k in ("ttft_p50", "ttft_p99", "itl_p50")}
    return Cell(
        median([c.ttft_p50 for c in ok]),
        median([c.ttft_p99 for c in ok]),
        median([c.itl_p50 for c in ok]),
        median([c.itl_mean_p50 for c in ok]),
        int(statistics.median([c.requests for c in ok])),
        median([c.concurrency for c in ok]),
        any(c.saturated for c in ok),
        median([c.read_lag_p99 for c in ok]),
        None,
        server,
        median([c.own_p50 for c in ok]),
        median([c.own_p99 for c in ok]),
        median([c.server_delay_p99 for c in ok]),
        int(statistics.median([c.joined for c in ok])),
    )


def measured_against_server(root: str, args: argparse.Namespace, run: Callable[[], Cell]) -> Cell:
    """One tool's run, with the server's send log restarted at the warm-up's end, then its
    figures for the same part of the run and the per-request join (the log starts anew)."""
    with WarmUpReset(root, args.warm_up, args.ttft_ms / 1000):
        cell = run()
    snap = send_times(root, reset=True, requests=True)
    cell.server = server_cell(snap)
    join_own(cell, snap, args.ttft_ms)
    return cell


def run_line(tool: str, c: Cell) -> str:
    """One tool's figures of one run, printed as it ends (the spread behind the medians)."""
    skew = c.clock_skew_ms
    return (
        f"{tool} TTFT p50/p99 {fmt(c.ttft_p50)}/{fmt(c.ttft_p99)} (own p50/p99 "
        f"{fmt(c.own_p50, True)}/{fmt(c.own_p99, True)} over {c.joined}, server delay p99 "
        f"{fmt(c.server_delay_p99, True)}"
        + (f", server clock skew {skew:+.3f} ms taken out" if abs(skew) >= 0.05 else "")
        + ")"
    )


def server_cell(snap: dict[str, Any]) -> dict[str, Any]:
    t, i = snap.get("ttft_ms", {}), snap.get("itl_ms", {})
    return {"ttft_p50": t.get("p50"), "ttft_p99": t.get("p99"), "itl_p50": i.get("p50")}


def print_table(rows: dict[int, dict[str, Cell]], args: argparse.Namespace, runs: int) -> None:
    truth = {"ttft_p50": args.ttft_ms, "ttft_p99": args.ttft_ms, "itl_p50": args.itl_ms,
             "itl_mean_p50": args.itl_ms}  # fmt: skip
    head = (
        f"{'streams':>7} {'tool':<12} {'reqs':>5} {'conc':>5} {'tok/s':>6} | {'TTFT p50':>8} {'err':>7} {'client':>7} | "
        f"{'TTFT p99':>8} {'err':>7} {'client':>7} | {'ITL p50':>7} {'err':>6} {'client':>6} | "
        f"{'mean/req':>8} {'err':>6} | {'own p50':>7} {'own p99':>7} {'srv p99':>7} | "
        f"{'server sent TTFT p50/p99, gap p50':>33}"
    )
    print(f"\nmedian of {runs} run(s) per cell; err = measured − injected "
          f"(TTFT {args.ttft_ms} ms, ITL {args.itl_ms} ms); client = measured − the server's own "
          "send time (same percentile, same run)")  # fmt: skip
    print(head)
    print("-" * len(head))
    for streams, tools in rows.items():
        errs: dict[str, dict[str, float | None]] = {}
        for tool, c in tools.items():
            if c.error is not None:
                print(f"{streams:>7} {tool:<12} {'':>5} {'':>5} {'':>6} | not run: {c.error}")
                continue
            vals = {"ttft_p50": c.ttft_p50, "ttft_p99": c.ttft_p99, "itl_p50": c.itl_p50,
                    "itl_mean_p50": c.itl_mean_p50}  # fmt: skip
            errs[tool] = {k: sub(v, truth[k]) for k, v in vals.items()}
            cl = {k: sub(v, c.server.get(k)) for k, v in vals.items()}
            srv = (f"{fmt(c.server.get('ttft_p50'))}/{fmt(c.server.get('ttft_p99'))}, "
                   f"{fmt(c.server.get('itl_p50'))}")  # fmt: skip
            star = "*" if tool == "guidellm" else " "
            conc = "-" if c.concurrency is None else f"{c.concurrency:.0f}"
            # deltas read per measured second
            rate = c.requests * args.tokens / max(args.seconds - args.warm_up, 1e-9)
            print(
                f"{streams:>7} {tool:<12} {c.requests:>5} {conc:>5} {rate:>6.0f} | "
                f"{fmt(c.ttft_p50):>8} "
                f"{fmt(errs[tool]['ttft_p50'], True):>7} {fmt(cl['ttft_p50'], True):>7} | "
                f"{fmt(c.ttft_p99):>8} {fmt(errs[tool]['ttft_p99'], True):>7} "
                f"{fmt(cl['ttft_p99'], True):>7} | {fmt(c.itl_p50):>6}{star} "
                f"{fmt(errs[tool]['itl_p50'], True):>6} {fmt(cl['itl_p50'], True):>6} | "
                f"{fmt(c.itl_mean_p50):>8} {fmt(errs[tool]['itl_mean_p50'], True):>6} | "
                f"{fmt(c.own_p50, True):>7} {fmt(c.own_p99, True):>7} "
                f"{fmt(c.server_delay_p99, True):>7} | {srv:>33}"
                + ("  client saturated" if c.saturated else "")
                + ("" if c.read_lag_p99 is None else f" (read lag p99 {c.read_lag_p99:.1f} ms)")
            )
        if "chatconform" in errs and "guidellm" in errs:
            ours, theirs = errs["chatconform"], errs["guidellm"]
            r = {k: ratio(theirs[k], ours[k]) for k in truth}
            own = ratio(tools["guidellm"].own_p99, tools["chatconform"].own_p99)
            print(
                f"{streams:>7} {'err ratio':<12} {'':>5} {'':>5} {'':>6} | {'':>8} {r['ttft_p50']:>7} {'':>7} | "
                f"{'':>8} {r['ttft_p99']:>7} {'':>7} | {'':>7} {r['itl_p50']:>6} {'':>6} | "
                f"{'':>8} {r['itl_mean_p50']:>6} | {'':>7} {own:>7} {'':>7} |"
            )
    print(
        "\nnotes: err ratio = |GuideLLM err| / |chatconform err| vs the injected truth (> 1: "
        "chatconform closer; errors under 0.01 ms count as 0.01; tie: both under it).\n"
        "  reqs = completed requests of a run; conc = the concurrency reached (Little's law: "
        "completed req/s × mean E2E),\n  against the streams asked for; tok/s = reqs × "
        "deltas per reply / measured seconds (run − warm-up).\n"
        "  chatconform: TTFT = first content delta read − request sent; ITL p50 = every gap "
        "between content deltas, pooled (per gap);\n  mean/req = p50 over requests of (last "
        "content − first content) / (deltas − 1), GuideLLM's ITL definition (from requests.jsonl)."
        "\n"
        "  GuideLLM: TTFT starts when the request headers begin to be written (httpx trace); "
        "ITL* is a per-request mean,\n  (last token − first token) / (tokens − 1): it has no "
        "per-gap figure, so its ITL p50 is over request means (both ITL columns).\n"
        f"  GuideLLM worker processes: {args.guidellm_workers or 'its default (up to 10)'}; "
        "chatconform: one process (--workers 0).\n"
        "  server sent = when the reference handed each delta to the ASGI server "
        "(--calibration), TTFT from its receipt of the request;\n  the server's delay is sent − "
        "injected, the client's own error is the client column.\n"
        "  own p50/p99 = per request, the tool's first-delta time − the server's hand-over of "
        "that delta (joined on the response id,\n  wall clock, one host): the tool's own error, "
        "free of the server's; srv p99 = per request, the server's hand-over − the tool's\n  "
        "send − the injected TTFT: the server's delay, including the wait to be read that no "
        "server-side clock sees."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ttft-ms", type=int, default=200)
    p.add_argument("--itl-ms", type=int, default=20)
    p.add_argument("--tokens", type=int, default=16, help="content deltas per reply (16)")
    p.add_argument("--seconds", type=int, default=10, help="per run and tool (10)")
    p.add_argument("--warm-up", type=float, default=2.0,
                   help="seconds at the start of each run whose requests both tools and the "
                   "server's send log leave out of their figures (2)")  # fmt: skip
    p.add_argument("--runs", type=int, default=3, help="runs per cell, median (3)")
    p.add_argument("--streams", type=int, nargs="+", default=[1, 50, 200])
    p.add_argument("--guidellm", default=None, help="the guidellm executable of its venv")
    p.add_argument("--install-guidellm", action="store_true",
                   help=f"pip install guidellm into {VENV} first")  # fmt: skip
    p.add_argument("--skip-guidellm", action="store_true")
    p.add_argument("--guidellm-workers", type=int, default=1,
                   help="GuideLLM's worker processes (1, as chatconform; 0: its default)")  # fmt: skip
    p.add_argument("--no-checks", action="store_true", help="chatconform without its checks")
    p.add_argument("--no-calibration", action="store_true",
                   help="the reference in its normal mode (no send times)")  # fmt: skip
    args = p.parse_args()
    if args.install_guidellm and find_guidellm(args.guidellm) is None:
        install_guidellm()
    print(f"machine: {os.cpu_count()} cores, loadavg {loadavg()} at start (shared machine)")
    knobs = ["--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms),
             "--tokens", str(args.tokens), "--rate-limit-rps", "0"]  # fmt: skip
    if not args.no_calibration:
        knobs.append("--calibration")
    print(f"reference: {' '.join(knobs)}; {args.seconds} s per run, closed loop, completions; "
          f"requests sent in the first {args.warm_up:g} s of a run left out (--warm-up)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-guidellm-") as work:
        gl: GuideLLM | None = None
        gl_reason = "--skip-guidellm" if args.skip_guidellm else None
        if not args.skip_guidellm:
            exe = find_guidellm(args.guidellm)
            if exe is None:
                gl_reason = "no guidellm found (--install-guidellm or --guidellm PATH)"
            else:
                gl = GuideLLM(exe, Path(work), args.guidellm_workers)
                gl_reason = gl.prepare()
                if gl_reason is None:
                    print(f"guidellm {gl.version}: {exe}; tokenizer: local byte-level (offline)")
                else:
                    gl = None
        with EmbeddedServer(knobs) as target:
            base, key, agent = target.base_url, target.api_key or "", target.agent_id or ""
            root = base.partition("/api/")[0]
            rows: dict[int, dict[str, Cell]] = {}
            for streams in args.streams:
                cells: dict[str, list[Cell]] = {"chatconform": [], "guidellm": []}
                for run in range(args.runs):
                    w = args.warm_up
                    cells["chatconform"].append(measured_against_server(root, args, partial(
                        run_chatconform, base, key, agent, streams, args.seconds,
                        not args.no_checks, w)))  # fmt: skip
                    if gl is not None:
                        cells["guidellm"].append(measured_against_server(root, args, partial(
                            gl.run, base, key, agent, streams, args.seconds, args.tokens, w)))  # fmt: skip
                    else:
                        cells["guidellm"].append(Cell(error=gl_reason))
                    got = "; ".join(run_line(tool, cs[-1]) for tool, cs in cells.items()
                                    if cs[-1].error is None)  # fmt: skip
                    print(f"  streams {streams} run {run + 1}/{args.runs} done: {got or '-'} "
                          f"(loadavg {loadavg()}, {time.strftime('%H:%M:%S')})", flush=True)  # fmt: skip
                rows[streams] = {tool: summarize(cs) for tool, cs in cells.items()}
    print_table(rows, args, args.runs)
    print(f"\nloadavg {loadavg()} at end (1/5/15 min; 2 cores shared with other work)")


if __name__ == "__main__":
    main()

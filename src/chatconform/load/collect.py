"""Where samples go: the master (or the single local process) merges every process's raw samples.

Workers buffer their samples (Timeline.to_sample dicts) and send them to the master every
``FLUSH_S`` and once more when they stop, as a Locust custom message; the master appends each
to the per-request JSONL and adds it to the metrics. Nothing is taken from Locust's own stats,
which round to whole milliseconds and bucket large values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatconform.load.metrics import RunMetrics
from chatconform.load.summary import SAMPLES_FILE

SAMPLES_MSG = "chatconform_samples"  # {"samples": [...], "evidence": [...]}
HEALTH_MSG = "chatconform_health"
STOP_MSG = "chatconform_stop"  # master -> workers: the run time is reached, start no request
DRAINED_MSG = "chatconform_drained"  # worker -> master: nothing of mine is in flight any more
EVIDENCE_FILE = "load-violations.jsonl"
FLUSH_S = 0.25
DRAIN_SLACK_S = 2.0  # on top of the stream timeout, for the requests in flight at the end
PROGRESS_PREFIX = "[chatconform] progress "  # lines the CLI shows as its live progress line
SUMMARY_PREFIX = "[chatconform] "


class Aggregator:
    """The merge point: JSONL writer plus metrics over all samples."""

    def __init__(
        self, report_dir: Path, open_loop: bool, objectives: dict[str, float] | None = None
    ) -> None:
        report_dir.mkdir(parents=True, exist_ok=True)
        self.path = report_dir / SAMPLES_FILE
        self._file = self.path.open("w", encoding="utf-8")
        self.evidence_path = report_dir / EVIDENCE_FILE
        self.evidence_path.unlink(missing_ok=True)
        self.evidence_count = 0
        self.metrics = RunMetrics(objectives)
        self.health: list[dict[str, Any]] = []
        self.open_loop = open_loop
        self.samples = 0

    def add_batch(self, batch: dict[str, Any]) -> None:
        """A worker's message: its samples and any violation evidence it kept."""
        self.add(batch.get("samples") or [])
        self.add_evidence(batch.get("evidence") or [])

    def add_evidence(self, items: list[dict[str, Any]]) -> None:
        """Full evidence of a few violating streams (one per rule and process), one JSON a line."""
        if not items:
            return
        with self.evidence_path.open("a", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps(item, separators=(",", ":")) + "\n")
        self.evidence_count += len(items)

    def add(self, samples: list[dict[str, Any]]) -> None:
        write = self._file.write
        for s in samples:
            write(json.dumps(s, separators=(",", ":")) + "\n")
            self.metrics.add(s, self.open_loop)
        self.samples += len(samples)

    def add_health(self, report: dict[str, Any]) -> None:
        self.health.append(report)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def progress(self, elapsed_s: float, users: int) -> str:
        parts = [f"{elapsed_s:6.1f}s", f"users {users}"]
        for name, ep in sorted(self.metrics.endpoints.items()):
            ttft = ep.dist["ttft_ms"].percentile(50)
            e2e = ep.dist["e2e_ms"].percentile(95)
            c = ep.conformance
            parts.append(
                f"{name}: {ep.requests} req, {ep.errors} err, {ep.incomplete} inc, "
                f"{c.violating}/{c.checked} violating, "
                f"ttft p50 {'-' if ttft is None else f'{ttft:.1f}'} ms, "
                f"e2e p95 {'-' if e2e is None else f'{e2e:.1f}'} ms"
            )
        if self.open_loop and self.metrics.scheduled:
            parts.append(f"late {self.metrics.late_share:.2%}")
        return " | ".join(parts)


class WorkerSink:
    """A worker's buffer of samples, shipped to the master in batches."""

    def __init__(self, send: Any) -> None:
        self._send = send  # runner.send_message
        self._buffer: list[dict[str, Any]] = []
        self._evidence: list[dict[str, Any]] = []
        self.sent = 0

    def add(self, sample: dict[str, Any]) -> None:
        self._buffer.append(sample)

    def add_evidence(self, item: dict[str, Any]) -> None:
        self._evidence.append(item)

    def flush(self) -> None:
        if self._buffer or self._evidence:
            batch, self._buffer = self._buffer, []
            evidence, self._evidence = self._evidence, []
            self._send(SAMPLES_MSG, {"samples": batch, "evidence": evidence})
            self.sent += len(batch)

"""`chatconform report --compare DIR [DIR ...]`: rules as rows, targets as columns, verdicts in the
cells (Autobahn|Testsuite style), rows whose verdicts differ highlighted. Writes matrix.html and
matrix.json. Each column is one run directory (its summary.json); its name is the directory name."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from chatconform.report.html import badge, e, page
from chatconform.report.load import read_load
from chatconform.report.redact import scrub
from chatconform.report.util import ReportError, clip, count_keys, first_finding, read_summary


def _column_names(dirs: list[Path]) -> list[str]:
    names = [d.resolve().name or str(d) for d in dirs]
    if len(set(names)) == len(names):
        return names
    # the same leaf name twice (e.g. two runs/latest): use parent/leaf
    return [f"{d.resolve().parent.name}/{d.resolve().name}" for d in dirs]


def build_matrix(dirs: list[Path]) -> dict[str, Any]:
    if not dirs:
        raise ReportError("--compare needs at least one report directory")
    summaries: list[dict[str, Any]] = []
    for d in dirs:
        s = read_summary(d)
        if s is None:
            raise ReportError(f"{d} has no summary.json (not a `chatconform run` report directory)")
        summaries.append(s)
    names = _column_names(dirs)
    targets = []
    for d, name, s in zip(dirs, names, summaries, strict=True):
        load = read_load(d)
        targets.append(
            {
                "name": name,
                "dir": str(d),
                "baseUrl": (s.get("target") or {}).get("baseUrl"),
                "strict": bool(s.get("strict")),
                "verdict": s.get("verdict"),
                "counts": s.get("counts"),
                "loadVerdict": load.verdict if load is not None else None,
            }
        )
    order: list[str] = []
    meta: dict[str, dict[str, Any]] = {}
    by_target: list[dict[str, dict[str, Any]]] = []
    for s in summaries:
        rules = {str(r.get("id")): r for r in s.get("rules") or []}
        by_target.append(rules)
        for rid, r in rules.items():
            if rid not in meta:
                order.append(rid)
                meta[rid] = {k: r.get(k) for k in ("level", "family", "title")}
    rows = []
    for rid in order:
        cells = []
        for rules in by_target:
            r = rules.get(rid)
            cells.append(
                {"verdict": None, "note": "not in this run"}
                if r is None
                else {"verdict": r.get("verdict"), "note": clip(first_finding(r), 400)}
            )
        verdicts = {c["verdict"] for c in cells}
        rows.append({"id": rid, **meta[rid], "cells": cells, "differs": len(verdicts) > 1})
    return {
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "targets": targets,
        "rules": rows,
        "differing": [r["id"] for r in rows if r["differs"]],
    }


def render_matrix_html(m: dict[str, Any]) -> str:
    targets = m["targets"]
    head = "".join(
        f'<th class="target" data-target="{e(t["name"])}" title="{e(t["dir"])}">{e(t["name"])}'
        f'<div class="muted">{e(t.get("baseUrl"))}</div>'
        f'<div class="muted">{"strict" if t.get("strict") else "default"}</div></th>'
        for t in targets
    )
    overall = "".join(
        f'<td class="cell overall" data-verdict="{e(t.get("verdict"))}">{badge(t.get("verdict"))}'
        f'<div class="muted">{e(_counts(t.get("counts")))}</div></td>'
        for t in targets
    )
    body = [
        "<h1>chatconform: conformance matrix</h1>",
        f'<div class="muted">{len(targets)} targets · {len(m["rules"])} rules · '
        f'<b id="differing-count">{len(m["differing"])}</b> rules differ · generated '
        f"{e(m['generated'])}</div>",
    ]
    if m["differing"]:
        body.append(
            '<p id="differing">Differing: '
            + ", ".join(f'<a href="#row-{e(r)}">{e(r)}</a>' for r in m["differing"])
            + "</p>"
        )
    body.append(
        '<input type="checkbox" id="only-diff"> <label for="only-diff">only rules that differ</label>'
    )
    body.append(
        f'<table id="matrix"><tr><th>Rule</th><th>Lvl</th><th>Title</th>{head}</tr>'
        f'<tr class="differs-never"><td class="id"><b>overall</b></td><td></td><td></td>{overall}</tr>'
    )
    for r in m["rules"]:
        cls = "differs" if r["differs"] else "same"
        cells = "".join(
            f'<td class="cell" data-verdict="{e(c["verdict"] or "")}" title="{e(c["note"])}">'
            f"{badge(c['verdict'])}</td>"
            for c in r["cells"]
        )
        body.append(
            f'<tr class="rule {cls}" id="row-{e(r["id"])}" data-rule="{e(r["id"])}" '
            f'data-differs="{str(r["differs"]).lower()}"><td class="id">{e(r["id"])}</td>'
            f"<td>{e(r.get('level'))}</td><td>{e(r.get('title'))}</td>{cells}</tr>"
        )
    body.append("</table>")
    loads = [t for t in targets if t.get("loadVerdict")]
    if loads:
        body.append(
            "<p>Load verdicts: "
            + ", ".join(f"{e(t['name'])} {badge(t['loadVerdict'])}" for t in loads)
            + "</p>"
        )
    body.append(
        "<footer>Hover a cell for the first finding; each column's summary.html has the evidence."
        "</footer>"
    )
    return page("chatconform matrix", "\n".join(body))


def _counts(c: Any) -> str:
    if not isinstance(c, dict):
        return ""
    return " · ".join(f"{c.get(k, 0)} {k}" for k in count_keys(c))


def write_matrix(dirs: list[Path], out_dir: Path) -> list[Path]:
    m = build_matrix(dirs)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "matrix.json"
    html_path = out_dir / "matrix.html"
    json_path.write_text(scrub(json.dumps(m, indent=2, ensure_ascii=False)), encoding="utf-8")
    html_path.write_text(scrub(render_matrix_html(m)), encoding="utf-8")
    return [html_path, json_path]

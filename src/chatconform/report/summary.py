"""summary.html (one self-contained page) and summary.md (sized for a CI job summary) of a run.

`write_run_reports(report_dir)` reads summary.json (conformance) and load-summary.json plus the
per-request JSONL (load) from the directory, whichever are there, and writes both files. With
`$GITHUB_STEP_SUMMARY` set it appends the Markdown there, each section (conformance, load) once per
report directory, so calling it after `run` and again after `load` does not repeat the first part.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from chatconform.agentcalls import bill_line
from chatconform.report.evidence import request_response_text, sse_wire_text, stream_frames
from chatconform.report.html import badge, e, page
from chatconform.report.load import (
    METRICS,
    PCTS,
    LoadRun,
    endpoint_rows,
    fmt_num,
    plots,
    read_load,
    threshold_rows,
    threshold_text,
)
from chatconform.report.redact import scrub
from chatconform.report.util import (
    ReportError,
    clip,
    count_keys,
    first_finding,
    read_summary,
    sorted_rules,
)

HTML_FILE = "summary.html"
MD_FILE = "summary.md"
MD_BUDGET = 60_000  # characters; GitHub allows 1 MiB per step summary, people read far less
STEP_MARKER = ".step-summary-sections"
MAX_FINDINGS_SHOWN = 8  # per rule, in the HTML


def _version() -> str:
    from chatconform import __version__

    return __version__


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- HTML -----------------------------------------------------------------------------------------
def _frames_table(ev: dict[str, Any]) -> str:
    frames = stream_frames(ev)
    if not frames:
        return ""
    rows = "".join(
        f"<tr><td>{e(fr.get('atMs'))}</td><td>{e(fr.get('read'))}</td><td>{e(fr.get('event'))}"
        f"</td><td>{e(clip(str(fr.get('data')), 300))}</td></tr>"
        for fr in frames
    )
    stream = ev.get("stream") or {}
    viol = stream.get("violations") or []
    extra = f"<div>parser violations: {e('; '.join(map(str, viol)))}</div>" if viol else ""
    return (
        f"<details><summary>SSE frames: {len(frames)} dispatched, ended by "
        f'{e(stream.get("endedBy"))}</summary>{extra}<table class="frames"><tr><th>arrival ms</th>'
        f"<th>read#</th><th>event</th><th>data</th></tr>{rows}</table></details>"
    )


def _finding_html(f: dict[str, Any], i: int) -> str:
    parts = [
        f'<details class="finding"{" open" if i == 0 else ""}><summary>{e(f.get("rule"))} '
        f"({e(f.get('level'))}): {e(clip(str(f.get('message')), 240))}</summary>",
        '<table class="kv">',
        f"<tr><td>expected</td><td>{e(f.get('expected'))}</td></tr>",
        f"<tr><td>got</td><td>{e(f.get('got'))}</td></tr>",
    ]
    if f.get("test"):
        parts.append(f"<tr><td>test</td><td><code>{e(f['test'])}</code></td></tr>")
    if f.get("flaky"):
        parts.append(f"<tr><td>did not recur</td><td>{e(f['flaky'])}</td></tr>")
    parts.append("</table>")
    if f.get("reproduce"):
        parts.append(f'<div>reproduce:</div><pre class="curl">{e(f["reproduce"])}</pre>')
    ev = f.get("evidence")
    if isinstance(ev, dict):
        parts.append(
            "<details><summary>request and response</summary>"
            f"<pre>{e(request_response_text(ev))}</pre></details>"
        )
        parts.append(_frames_table(ev))
        wire = sse_wire_text(ev)
        if wire:
            parts.append(
                f"<details><summary>SSE wire log (arrival times, raw)</summary><pre>{e(wire)}</pre>"
                "</details>"
            )
    parts.append("</details>")
    return "".join(parts)


ALLURE_INDEX = "allure-report/index.html"  # where `chatconform report DIR --allure` puts it


def allure_links(report_dir: Path, rules: list[dict[str, Any]]) -> dict[str, str]:
    """Rule id -> its Allure entry (relative to summary.html), when DIR/allure-report exists: the
    result of a test of that rule with the rule's own verdict, else any result of that rule."""
    if not (report_dir / ALLURE_INDEX).is_file():
        return {}
    from chatconform.report.allure_results import allure_entries

    entries = allure_entries(report_dir / "allure-results")
    links: dict[str, str] = {}
    for r in rules:
        by_verdict = entries.get(str(r.get("id")), {})
        chosen = by_verdict.get(str(r.get("verdict"))) or next(iter(by_verdict.values()), None)
        if chosen:
            links[str(r.get("id"))] = f"{ALLURE_INDEX}#{chosen}"
    return links


def _conformance_html(s: dict[str, Any], links: dict[str, str] | None = None) -> str:
    c = s.get("counts") or {}
    target = (s.get("target") or {}).get("baseUrl", "?")
    mode = (
        "strict: contract decisions FAIL" if s.get("strict") else "default: contract decisions WARN"
    )
    verdict = str(s.get("verdict", "?"))
    total = len(s.get("rules") or [])
    out = [
        f'<div class="banner v-{e(verdict)}" id="verdict" data-verdict="{e(verdict)}">'
        f'<div class="big">{e(verdict)}</div><div><div><b>{e(target)}</b></div>'
        f'<div class="counts" id="counts">'
        + "".join(
            f'<span data-count="{k}">{badge(k)} {int(c.get(k, 0))}</span>'
            for k in count_keys(c, _expected_keys(s))
        )
        + f'<span class="muted">of {total} rules · {e(mode)}</span></div></div></div>'
    ]
    agent = s.get("agent")
    if agent:
        rows = "".join(
            f'<tr data-suite="{e(name)}"><td>{e(name)}</td><td>{int(v.get("calls", 0))}</td>'
            f"<td>{int(v.get('tokens', 0))}</td><td>{int(v.get('refused', 0))}</td></tr>"
            for name, v in (agent.get("bySuite") or {}).items()
        )
        out.append(
            f'<h3 id="agent-bill">Agent calls</h3><p id="agent-line">{e(bill_line(agent))}</p>'
            '<table id="agent-by-suite"><tr><th>Suite</th><th>Agent calls</th>'
            f"<th>Tokens reported</th><th>Not sent (cap)</th></tr>{rows}</table>"
        )
    errors = s.get("harnessErrors") or []
    if errors:
        out.append(
            '<h3 id="harness-errors">Harness errors</h3><ul>'
            + "".join(f"<li><code>{e(x)}</code></li>" for x in errors)
            + "</ul>"
        )
    out.append(_expectations_html(s))
    out.append(_confirm_html(s))
    out.append(
        '<h2>Rules</h2><table id="rules"><tr><th>Rule</th><th>Level</th><th>Family</th>'
        "<th>Title</th><th>Verdict</th><th>First finding</th></tr>"
    )
    links = links or {}
    for r in sorted_rules(s.get("rules") or []):
        v = str(r.get("verdict"))
        rid = str(r.get("id"))
        allure = (
            f'<a class="allure" href="{e(links[rid])}" title="this rule in the Allure report">'
            "Allure</a>"
            if rid in links
            else ""
        )
        out.append(
            f'<tr class="rule v-{e(v)}" id="rule-{e(rid)}" data-rule="{e(rid)}" '
            f'data-verdict="{e(v)}"><td class="id"><a href="#rule-{e(rid)}">{e(rid)}</a>{allure}</td>'
            f"<td>{e(r.get('level'))}</td><td>{e(r.get('family'))}</td><td>{e(r.get('title'))}</td>"
            f"<td>{badge(v)}</td><td>{e(clip(first_finding(r), 300))}</td></tr>"
        )
        findings = r.get("findings") or []
        if v in ("FAIL", "FLAKY", "ERROR", "WARN") and findings:
            shown = findings[:MAX_FINDINGS_SHOWN]
            more = len(findings) - len(shown)
            tests = ", ".join(r.get("tests") or [])
            body = "".join(_finding_html(f, i) for i, f in enumerate(shown))
            if more > 0:
                body += f'<div class="muted">… and {more} more findings in summary.json</div>'
            out.append(
                f'<tr class="evidence" data-evidence-for="{e(rid)}"><td colspan="6">'
                f"<details><summary>Evidence: {len(findings)} finding(s)"
                f"{' from ' + e(clip(tests, 200)) if tests else ''}</summary>{body}</details>"
                "</td></tr>"
            )
        notes = r.get("notes") or []
        if notes:  # level I: the timing a check saw, what a re-run showed (never a verdict)
            items = "".join(
                f"<li>{e(n.get('expected'))}: {e(clip(str(n.get('got')), 400))}</li>"
                for n in notes[:MAX_FINDINGS_SHOWN]
            )
            out.append(
                f'<tr class="notes" data-notes-for="{e(rid)}"><td colspan="6"><details>'
                f"<summary>Notes: {len(notes)}</summary><ul>{items}</ul></details></td></tr>"
            )
    out.append("</table>")
    return "".join(out)


def _conformance_slo_html(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Per endpoint: streams judged by the conformance checks, and SLO attainment / goodput."""
    out = [
        '<h3>Conformance under load</h3><table id="load-conformance"><tr><th>Endpoint</th>'
        "<th>Checked</th><th>Violating</th><th>Share</th><th>By rule</th><th>Example</th>"
        "<th>Censored</th><th>SLO</th><th>Attainment</th><th>Goodput req/s</th></tr>"
    ]
    for name, ep in rows:
        c = ep.get("conformance") if isinstance(ep.get("conformance"), dict) else {}
        by_rule = ", ".join(f"{r} ×{n}" for r, n in (c.get("by_rule") or {}).items()) or "–"
        ex = c.get("example") if isinstance(c.get("example"), dict) else None
        example = (
            f"request {ex.get('request_id')}: {ex.get('rule')} {clip(str(ex.get('message')), 300)}"
            if ex
            else "–"
        )
        slo = ep.get("slo") if isinstance(ep.get("slo"), dict) else None
        objectives = (
            ", ".join(f"{k} ≤ {v:g}" for k, v in (slo.get("objectives") or {}).items())
            if slo
            else "–"
        )
        share = c.get("violation_rate")
        share_text = "–" if share is None else f"{share:.2%}"
        attainment = slo.get("attainment") if slo else None
        attain_text = "–" if attainment is None else f"{attainment:.2%}"
        goodput = fmt_num(slo.get("goodput_rps"), 2) if slo else "–"
        out.append(
            f"<tr><td>{e(name)}</td><td>{e(fmt_num(c.get('checked')))}</td>"
            f"<td>{e(fmt_num(c.get('violating')))}</td><td>{e(share_text)}</td>"
            f"<td>{e(by_rule)}</td><td>{e(example)}</td>"
            f"<td>{e(fmt_num(ep.get('censored')))}</td><td>{e(objectives)}</td>"
            f"<td>{e(attain_text)}</td><td>{e(goodput)}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _load_html(run: LoadRun) -> str:
    out = ['<h2 id="load">Load</h2>']
    s = run.summary
    if s is not None:
        out.append(
            f'<div id="load-verdict" data-verdict="{e(run.verdict)}">Load verdict: '
            f"{badge(run.verdict)}</div>"
        )
        ths = threshold_rows(s)
        if ths:
            out.append(
                '<h3>Thresholds</h3><table id="thresholds"><tr><th>Threshold</th><th>Limit</th>'
                "<th>Actual</th><th>Verdict</th></tr>"
            )
            for t in ths:
                name, limit, actual, verdict = threshold_text(t)
                out.append(
                    f"<tr><td>{e(name)}</td><td>{e(limit)}</td><td>{e(actual)}</td>"
                    f"<td>{badge(verdict)}</td></tr>"
                )
            out.append("</table>")
        rows = endpoint_rows(s)
        if rows:
            out.append(
                '<h3>Per endpoint</h3><table id="load-endpoints"><tr><th>Endpoint</th>'
                "<th>Requests</th><th>Errors</th><th>Incomplete</th><th>req/s</th><th>tok/s</th>"
                "<th>Metric</th>" + "".join(f"<th>{p}</th>" for p in PCTS) + "</tr>"
            )
            for name, ep in rows:
                first = True
                for key, label in METRICS:
                    m = ep.get(key)
                    if not isinstance(m, dict):
                        continue
                    lead = (
                        f"<td>{e(name)}</td><td>{e(fmt_num(ep.get('requests')))}</td>"
                        f"<td>{e(fmt_num(ep.get('errors')))}</td>"
                        f"<td>{e(fmt_num(ep.get('incomplete')))}</td>"
                        f"<td>{e(fmt_num(ep.get('requests_per_s'), 2))}</td>"
                        f"<td>{e(fmt_num(ep.get('tokens_per_s'), 1))}</td>"
                        if first
                        else "<td></td>" * 6
                    )
                    first = False
                    cells = "".join(f"<td>{e(fmt_num(m.get(p), 2))}</td>" for p in PCTS)
                    out.append(f"<tr>{lead}<td>{e(label)}</td>{cells}</tr>")
            out.append("</table>")
        out.append(_conformance_slo_html(rows))
        client = s.get("client")
        if isinstance(client, dict) and client:
            out.append(
                '<div class="muted">client health: '
                + ", ".join(f"{e(k)} {e(fmt_num(v, 2))}" for k, v in client.items())
                + "</div>"
            )
    if run.samples:
        imgs = plots(run)
        note = f"{len(run.samples)} requests from {e(run.jsonl.name if run.jsonl else '?')}"
        if run.truncated:
            note += " (first records only)"
        if imgs:
            out.append(
                f'<h3>Plots</h3><div class="muted">{note}</div><div class="grid" id="plots">'
            )
            out += [
                f'<figure><img class="plot" alt="{e(t)}" title="{e(t)}" '
                f'src="data:image/png;base64,{b64}"></figure>'
                for t, b64 in imgs
            ]
            out.append("</div>")
        else:
            out.append(
                f'<div class="muted">{note}; no plots (matplotlib not installed, or no completed '
                "request)</div>"
            )
    return "".join(out)


def render_html(
    summary: dict[str, Any] | None,
    load: LoadRun | None,
    title: str,
    links: dict[str, str] | None = None,
) -> str:
    body = [f"<h1>{e(title)}</h1>"]
    body.append(f'<div class="muted">chatconform {e(_version())} · generated {e(_now())}</div>')
    if summary is not None:
        body.append(_conformance_html(summary, links))
    if load is not None:
        body.append(_load_html(load))
    body.append(
        "<footer>Verdicts: FAIL a rule broken (documented rules always; contract decisions under "
        "--strict) · ERROR the run could not judge the rule (a harness exception, a request the "
        "run's budget did not send) · WARN a contract decision broken without --strict · SKIP not "
        "examined by this run (with the reason) · PASS examined, nothing broken. Secrets are shown "
        "as $FLOWYTE_* variable names.</footer>"
    )
    return page(title, "\n".join(body))


def _expected_keys(s: dict[str, Any]) -> tuple[str, ...]:
    return ("XFAIL", "XPASS") if s.get("expectations") else ()


def _expectations_html(s: dict[str, Any]) -> str:
    """The known-failure expectations and what became of each (chatconform.expectations)."""
    section = s.get("expectations")
    if not section:
        return ""
    rows = "".join(
        f'<tr data-expectation="{e(x.get("rule"))}" data-status="{e(x.get("status"))}">'
        f"<td>{e(x.get('rule'))}{'/' + e(x.get('clause')) if x.get('clause') else ''}</td>"
        f"<td>{badge(str(x.get('status', '')).upper())}</td><td>{e(x.get('expires'))}</td>"
        f"<td>{e(x.get('message'))}</td></tr>"
        for x in section.get("entries") or []
    )
    return (
        f'<h3 id="expectations">Known-failure expectations ({e(section.get("file"))})</h3>'
        '<table id="expectations-table"><tr><th>Entry</th><th>Status</th><th>Expires</th>'
        f"<th>Message</th></tr>{rows}</table>"
    )


def _reruns(s: dict[str, Any]) -> list[dict[str, Any]]:
    section = s.get("confirm")
    return list(section.get("tests") or []) if isinstance(section, dict) else []


def _confirm_html(s: dict[str, Any]) -> str:
    """The tests `--confirm N` re-ran and what each showed (FLAKY, recurred, not judged)."""
    tests = _reruns(s)
    if not tests:
        return ""
    section = s["confirm"]
    gate = "FLAKY fails the run" if section.get("flakyGates") else "FLAKY does not fail the run"
    rows = "".join(
        f'<tr data-rerun="{e(t.get("test"))}" data-outcome="{e(t.get("outcome"))}">'
        f"<td><code>{e(t.get('test'))}</code></td><td>{e(t.get('outcome'))}</td>"
        f"<td>{e(t.get('attempts'))}</td><td>{e(', '.join(t.get('rules') or []))}</td>"
        f"<td>{e(t.get('detail'))}</td></tr>"
        for t in tests
    )
    return (
        f'<h3 id="reruns">Re-runs of failing tests (--confirm {e(section.get("reruns"))}; '
        f"{e(gate)})</h3>"
        '<table id="reruns-table"><tr><th>Test</th><th>Outcome</th><th>Attempts</th>'
        f"<th>Rules</th><th>Detail</th></tr>{rows}</table>"
    )


# -- Markdown -------------------------------------------------------------------------------------
def _md_cell(text: object, limit: int = 160) -> str:
    s = clip(" ".join(str(text).split()), limit)
    return s.replace("|", "\\|").replace("<", "&lt;")


ICON = {
    "PASS": "✅", "FAIL": "❌", "ERROR": "⛔", "WARN": "⚠️", "SKIP": "⏭️", "XFAIL": "🔷", "XPASS": "🔶",
    "FLAKY": "🔁",
}  # fmt: skip


def _conformance_md(s: dict[str, Any]) -> str:
    c = s.get("counts") or {}
    verdict = str(s.get("verdict", "?"))
    target = (s.get("target") or {}).get("baseUrl", "?")
    mode = "strict" if s.get("strict") else "default (contract decisions WARN)"
    rules = sorted_rules(s.get("rules") or [])
    lines = [
        f"## chatconform conformance: {ICON.get(verdict, '')} {verdict}",
        "",
        f"Target `{target}` · {mode} · **"
        + " · ".join(f"{c.get(k, 0)} {k}" for k in count_keys(c, _expected_keys(s)))
        + f"** of {len(rules)} rules",
        "",
    ]
    if s.get("agent"):
        lines += [bill_line(s["agent"]), ""]
    for err in (s.get("harnessErrors") or [])[:5]:
        lines.append(f"- harness error: `{_md_cell(err, 200)}`")
    section = s.get("expectations") or {}
    if section:
        n = section.get("counts") or {}
        lines.append(
            f"Expectations `{section.get('file')}`: "
            + ", ".join(
                f"{n.get(k, 0)} {k.upper()}" for k in ("xfail", "xpass", "expired", "unobserved")
            )
        )
        lines += [
            f"- {x['status'].upper()}: {_md_cell(x.get('message'), 200)}"
            for x in section.get("entries") or []
        ]
        lines.append("")
    reruns = _reruns(s)
    if reruns:
        lines.append(f"Re-runs (--confirm {s['confirm'].get('reruns')}):")
        lines += [
            f"- {t.get('outcome', '').upper()}: `{_md_cell(t.get('test'), 120)}` "
            f"({t.get('attempts')} attempts): {_md_cell(t.get('detail'), 200)}"
            for t in reruns
        ]
        lines.append("")
    bad = [r for r in rules if r.get("verdict") in ("FAIL", "FLAKY", "WARN", "ERROR", "XPASS")]
    if bad:
        lines += [
            "| Rule | Lvl | Verdict | Title | First finding |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['id']} | {r.get('level')} | {ICON.get(r['verdict'], '')} {r['verdict']} | "
            f"{_md_cell(r.get('title'), 80)} | {_md_cell(first_finding(r))} |"
            for r in bad
        ]
        lines.append("")
        for r in bad[:10]:
            f = (r.get("findings") or [{}])[0]
            if f.get("reproduce"):
                lines += [
                    f"<details><summary>{r['id']}: reproduce</summary>",
                    "",
                    "```sh",
                    clip(str(f["reproduce"]), 1500),
                    "```",
                    "</details>",
                    "",
                ]
    skipped = [r for r in rules if r.get("verdict") == "SKIP"]
    if skipped:
        lines.append(
            "Skipped: "
            + "; ".join(f"{r['id']} ({_md_cell(r.get('reason'), 90)})" for r in skipped[:15])
        )
        lines.append("")
    lines += [
        f"<details><summary>All {len(rules)} rules</summary>",
        "",
        "| Rule | Lvl | Verdict | Title |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['id']} | {r.get('level')} | {ICON.get(r['verdict'], '')} {r['verdict']} | "
        f"{_md_cell(r.get('title'), 80)} |"
        for r in rules
    ]
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def _load_md(run: LoadRun) -> str:
    s = run.summary or {}
    v = run.verdict or "?"
    lines = [f"## chatconform load: {ICON.get(v, '')} {v}", ""]
    ths = threshold_rows(s)
    if ths:
        lines += ["| Threshold | Limit | Actual | Verdict |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(_md_cell(x) for x in threshold_text(t)) + " |" for t in ths]
        lines.append("")
    rows = endpoint_rows(s)
    if rows:
        lines += [
            "| Endpoint | Requests | Errors | Incomplete | TTFT p50/p95/p99 ms | ITL p50/p99 ms | "
            "E2E p95 ms | tok/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, ep in rows:
            t = ep.get("ttft_ms") or {}
            i = ep.get("itl_ms") or {}
            e2e = ep.get("e2e_ms") or {}
            lines.append(
                f"| {_md_cell(name)} | {fmt_num(ep.get('requests'))} | {fmt_num(ep.get('errors'))} "
                f"| {fmt_num(ep.get('incomplete'))} | {fmt_num(t.get('p50'))} / "
                f"{fmt_num(t.get('p95'))} / {fmt_num(t.get('p99'))} | {fmt_num(i.get('p50'))} / "
                f"{fmt_num(i.get('p99'))} | {fmt_num(e2e.get('p95'))} | "
                f"{fmt_num(ep.get('tokens_per_s'))} |"
            )
        lines.append("")
        for name, ep in rows:
            c = ep.get("conformance") if isinstance(ep.get("conformance"), dict) else None
            if c:
                rules = ", ".join(f"{r} ×{n}" for r, n in (c.get("by_rule") or {}).items())
                lines.append(
                    f"- {_md_cell(name)} conformance: {fmt_num(c.get('checked'))} streams checked, "
                    f"{fmt_num(c.get('violating'))} violating"
                    + (f" ({_md_cell(rules)})" if rules else "")
                )
            slo = ep.get("slo") if isinstance(ep.get("slo"), dict) else None
            if slo:
                lines.append(
                    f"- {_md_cell(name)} SLO attainment {slo.get('attainment', 0):.2%}, goodput "
                    f"{fmt_num(slo.get('goodput_rps'), 2)} req/s"
                )
        lines.append("")
    if run.samples and not rows:
        lines += [f"{len(run.samples)} per-request records; plots in summary.html.", ""]
    return "\n".join(lines)


def render_md(summary: dict[str, Any] | None, load: LoadRun | None) -> tuple[str, dict[str, str]]:
    """The whole summary.md, and its sections by name (for the CI step summary)."""
    sections: dict[str, str] = {}
    if summary is not None:
        sections["conformance"] = _conformance_md(summary)
    if load is not None:
        sections["load"] = _load_md(load)
    text = "\n".join(sections.values()) + "\n_Full report: summary.html in the report directory._\n"
    if len(text) > MD_BUDGET:
        text = text[: MD_BUDGET - 80] + "\n\n… (truncated; see summary.html)\n"
    return text, sections


# -- entry point ----------------------------------------------------------------------------------
def _append_step_summary(report_dir: Path, sections: dict[str, str]) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    marker = report_dir / STEP_MARKER
    sent = set(marker.read_text(encoding="utf-8").split()) if marker.exists() else set()
    new = {k: v for k, v in sections.items() if k not in sent}
    if not new:
        return
    text = "\n".join(new.values())
    if len(text) > MD_BUDGET:
        text = text[: MD_BUDGET - 80] + "\n\n… (truncated; see summary.html)\n"
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    marker.write_text("\n".join(sorted(sent | set(new))) + "\n", encoding="utf-8")


def _verification(report_dir: Path) -> dict[str, Any] | None:
    path = report_dir / "verification.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) and "verdict" in data else None


def _verification_line(v: dict[str, Any]) -> str:
    conf = v.get("conformance") or {}
    load = v.get("load") or {}
    parts = [f"conformance {conf.get('verdict')}"]
    parts.append(f"load ({load.get('profile')}) {load.get('verdict')}" if load else "no load test")
    exp = conf.get("expectations")
    if exp:
        parts.append(", ".join(f"{n} {k}" for k, n in exp.items() if n))
    return (
        f"Verification {v.get('verdict')}: "
        + "; ".join(p for p in parts if p)
        + f" · chatconform {v.get('chatconform')} · seed {v.get('seed')} · {v.get('started')} to "
        f"{v.get('ended')} · verification.json"
    )


def write_run_reports(report_dir: Path) -> list[Path]:
    """Write summary.html and summary.md for the run(s) in `report_dir`; return their paths."""
    report_dir = Path(report_dir)
    summary = read_summary(report_dir)
    load = read_load(report_dir)
    if summary is None and load is None:
        raise ReportError(
            f"{report_dir} holds neither summary.json (chatconform run) nor load-summary.json "
            "(chatconform load)"
        )
    target = (summary or {}).get("target", {}).get("baseUrl") or (
        (load.summary or {}).get("target", {}) if load and load.summary else {}
    )
    if isinstance(target, dict):
        target = target.get("baseUrl", "")
    verdict = (summary or {}).get("verdict") or (load.verdict if load else "")
    verification = _verification(report_dir)
    if verification is not None:
        verdict = verification["verdict"]  # `chatconform verify`: the one verdict of both parts
    title = f"chatconform {verdict}: {target}" if target else f"chatconform {verdict}"
    links = allure_links(report_dir, (summary or {}).get("rules") or [])
    html_text = render_html(summary, load, title, links)
    md_text, sections = render_md(summary, load)
    if verification is not None:
        line = _verification_line(verification)
        html_text = html_text.replace(
            "</h1>", f'</h1><div id="verification" data-verdict="{e(verdict)}">'
            f"{badge(verdict)} {e(line)}</div>", 1,
        )  # fmt: skip
        md_text = (
            f"## chatconform verify: {ICON.get(verdict, '')} {verdict}\n\n{line}\n\n" + md_text
        )
        sections = {"verification": f"## chatconform verify: {verdict}\n\n{line}\n", **sections}
    html_text = scrub(html_text)
    md_text = scrub(md_text)
    html_path = report_dir / HTML_FILE
    md_path = report_dir / MD_FILE
    html_path.write_text(html_text, encoding="utf-8")
    md_path.write_text(md_text, encoding="utf-8")
    _append_step_summary(report_dir, {k: scrub(v) for k, v in sections.items()})
    return [html_path, md_path]


def summary_for_matrix(report_dir: Path) -> dict[str, Any]:
    s = read_summary(report_dir)
    if s is None:
        raise ReportError(f"{report_dir} has no summary.json (not a `chatconform run` directory)")
    return json.loads(json.dumps(s))

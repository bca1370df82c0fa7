"""summary.html of a sweep (`chatconform load --profile sweep`): the steps, the knee, two plots.

Latency (TTFT and ITL p50/p99 of the worst endpoint) against the offered rate, and SLO attainment
and goodput against the offered rate, with the knee marked; matplotlib as the load plots use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatconform.report.html import badge, e, page
from chatconform.report.load import _png, fmt_num
from chatconform.report.redact import scrub

HTML_FILE = "summary.html"


def _worst(step: dict[str, Any], metric: str, stat: str) -> float | None:
    values = [(ep.get(metric) or {}).get(stat) for ep in (step.get("endpoints") or {}).values()]
    values = [v for v in values if isinstance(v, int | float)]
    return max(values) if values else None


def plots(result: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    steps = sorted(result.get("steps") or [], key=lambda s: s["offered_rps"])
    if not steps:
        return []
    xs = [s["offered_rps"] for s in steps]
    knee = (result.get("knee") or {}).get("offered_rps")
    out = []
    fig = Figure(figsize=(7.5, 3.4))
    ax = fig.add_subplot()
    for metric, label in (("ttft_ms", "TTFT"), ("itl_ms", "ITL")):
        for stat, style in (("p50", "-o"), ("p99", "--o")):
            ys = [_worst(s, metric, stat) for s in steps]
            pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{label} {stat}")
    if knee:
        ax.axvline(knee, color="tab:green", alpha=0.6, label=f"knee {knee:g} req/s")
    ax.set_xlabel("offered req/s")
    ax.set_ylabel("ms")
    ax.set_title("Latency vs offered rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    out.append(("Latency vs offered rate", _png(fig)))
    fig = Figure(figsize=(7.5, 3.4))
    ax = fig.add_subplot()
    att = [
        (x, s["attainment"]) for x, s in zip(xs, steps, strict=True) if s["attainment"] is not None
    ]
    ax.plot([p[0] for p in att], [p[1] for p in att], "-o", label="SLO attainment")
    ax.axhline(result["target_attainment"], color="tab:red", alpha=0.5, label="target")
    if knee:
        ax.axvline(knee, color="tab:green", alpha=0.6, label=f"knee {knee:g} req/s")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("offered req/s")
    ax.set_ylabel("attainment")
    ax2 = ax.twinx()
    ax2.plot(xs, [s["goodput_rps"] for s in steps], ":s", color="tab:orange", label="goodput")
    ax2.set_ylabel("goodput req/s")
    ax.set_title("SLO attainment and goodput vs offered rate")
    handles = ax.get_lines() + ax2.get_lines()
    ax.legend(handles, [h.get_label() for h in handles], fontsize="small")
    ax.grid(alpha=0.3)
    out.append(("Attainment vs offered rate", _png(fig)))
    return out


def render(result: dict[str, Any]) -> str:
    knee = result.get("knee")
    verdict = "PASS" if knee else "FAIL"
    body = ["<h1>chatconform sweep</h1>"]
    body.append(
        f'<div id="sweep-knee" data-knee="{e(knee["offered_rps"] if knee else "")}">Knee: '
        + (
            f"{badge(verdict)} {e(fmt_num(knee['offered_rps'], 2))} req/s offered, attainment "
            f"{knee['attainment']:.1%}, goodput {e(fmt_num(knee['goodput_rps'], 2))} req/s"
            if knee
            else f"{badge(verdict)} no step met the SLO"
        )
        + f" · stopped by {e(result.get('stopped_by'))}</div>"
    )
    body.append(
        '<table id="sweep-steps"><tr><th>Offered</th><th>Achieved</th><th>Lag p99</th>'
        "<th>TTFT p50</th><th>TTFT p99</th><th>ITL p50</th><th>ITL p99</th><th>TPOT p50</th>"
        "<th>TPOT p99</th><th>Attainment</th><th>Goodput</th><th>Violations</th><th>Step</th></tr>"
    )
    for s in result.get("steps") or []:
        cells = [
            fmt_num(s["offered_rps"], 2),
            fmt_num(s["achieved_rps"], 2),
            fmt_num(s["dispatch_lag_ms"].get("p99"), 1),
            *(
                fmt_num(_worst(s, m, st), 1)
                for m in ("ttft_ms", "itl_ms", "tpot_ms")
                for st in ("p50", "p99")
            ),
            "–" if s["attainment"] is None else f"{s['attainment']:.1%}",
            fmt_num(s["goodput_rps"], 2),
            fmt_num(s["violations"]),
            "good" if s["good"] else s["why"],
        ]
        body.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    body.append("</table>")
    imgs = plots(result)
    if imgs:
        body.append('<div class="grid" id="sweep-plots">')
        body += [
            f'<figure><img class="plot" alt="{e(t)}" title="{e(t)}" '
            f'src="data:image/png;base64,{b64}"></figure>'
            for t, b64 in imgs
        ]
        body.append("</div>")
    return page("chatconform sweep", "\n".join(body))


def write(report_dir: Path, result: dict[str, Any]) -> Path:
    path = Path(report_dir) / HTML_FILE
    path.write_text(scrub(render(result)), encoding="utf-8")
    return path

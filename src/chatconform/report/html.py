"""HTML pieces shared by summary.html and matrix.html: one inline stylesheet, escaping, badges."""

from __future__ import annotations

from html import escape

CSS = """
:root { --pass:#1a7f37; --fail:#cf222e; --warn:#9a6700; --skip:#6e7781; --bg:#ffffff;
        --error:#8250df; --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --soft:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; padding: 24px 32px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.muted { color: var(--muted); }
.banner { display: flex; gap: 20px; align-items: center; padding: 16px 20px; border-radius: 8px;
          border: 2px solid var(--line); background: var(--soft); }
.banner.v-FAIL { border-color: var(--fail); background: #ffebe9; }
.banner.v-PASS { border-color: var(--pass); background: #dafbe1; }
.banner.v-ERROR { border-color: var(--error); background: #fbefff; }
.big { font-size: 34px; font-weight: 700; letter-spacing: 1px; }
.banner.v-FAIL .big { color: var(--fail); } .banner.v-PASS .big { color: var(--pass); }
.banner.v-ERROR .big { color: var(--error); }
.badge { display: inline-block; min-width: 46px; text-align: center; padding: 1px 8px;
         border-radius: 10px; font-weight: 600; font-size: 12px; color: #fff; }
.badge.v-PASS { background: var(--pass); } .badge.v-FAIL { background: var(--fail); }
.badge.v-WARN { background: var(--warn); } .badge.v-SKIP { background: var(--skip); }
.badge.v-ERROR { background: var(--error); }
.badge.v-NA { background: #d0d7de; color: var(--fg); }
.badge.v-XFAIL { background: #0969da; } .badge.v-XPASS { background: #bf8700; }
.badge.v-FLAKY { background: #8250df; }
tr.v-FLAKY td.id { border-left: 4px solid #8250df; }
.counts span { margin-right: 12px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left;
         vertical-align: top; }
th { background: var(--soft); position: sticky; top: 0; z-index: 1; }
td.id { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; white-space: nowrap; }
tr.v-FAIL td.id { border-left: 4px solid var(--fail); }
tr.v-WARN td.id { border-left: 4px solid var(--warn); }
tr.v-ERROR td.id { border-left: 4px solid var(--error); }
a.allure { font-size: 12px; margin-left: 6px; }
tr.evidence td { background: #fbfbfc; padding: 4px 8px 10px 24px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px;
      overflow-x: auto; white-space: pre-wrap; word-break: break-all; font-size: 12px;
      max-height: 420px; overflow-y: auto; margin: 4px 0; }
details { margin: 4px 0; } summary { cursor: pointer; }
details.finding > summary { font-weight: 600; }
.kv td:first-child { color: var(--muted); width: 110px; }
table.frames td { font-family: ui-monospace, monospace; font-size: 12px; padding: 2px 6px; }
img.plot { max-width: 100%; border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
tr.differs th.rowhead, tr.differs td.id { background: #fff8c5; }
tr.differs td.id::after { content: " \\2260"; color: var(--fail); font-weight: 700; }
td.cell { text-align: center; }
#only-diff:checked ~ table tr.same { display: none; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
"""


def e(text: object) -> str:
    return escape(str(text), quote=True)


def badge(verdict: str | None) -> str:
    v = verdict or "NA"
    cls = v if v in ("PASS", "FAIL", "WARN", "SKIP", "ERROR", "XFAIL", "XPASS", "FLAKY") else "NA"
    return f'<span class="badge v-{cls}">{e(v if verdict else "–")}</span>'


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )

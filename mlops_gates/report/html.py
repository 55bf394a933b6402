"""report.html: one self-contained file (inline SVG and CSS, no scripts, no network) to look at."""

from __future__ import annotations

import html as h
from typing import Any

from mlops_gates.report.format import ci, num, threshold, to_decide, waivers

W, H, PAD = 420, 300, 40
COLORS = {"candidate": "#1f6feb", "baseline": "#9a6700"}


def _svg_xy(
    title: str, series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, diagonal: bool = True
) -> str:
    def px(x: float, y: float) -> str:
        return f"{PAD + x * (W - 2 * PAD):.1f},{H - PAD - y * (H - 2 * PAD):.1f}"

    parts = [
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{h.escape(title)}">',
        f'<text x="{W / 2}" y="18" text-anchor="middle" class="t">{h.escape(title)}</text>',
        f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" fill="none" stroke="#999"/>',
        f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">{h.escape(xlabel)}</text>',
        f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" text-anchor="middle">{h.escape(ylabel)}</text>',
    ]
    if diagonal:
        parts.append(
            f'<polyline points="{px(0, 0)} {px(1, 1)}" stroke="#ccc" stroke-dasharray="4" fill="none"/>'
        )
    for i, (name, pts) in enumerate(series.items()):
        parts.append(
            f'<polyline points="{" ".join(px(x, y) for x, y in pts)}" stroke="{COLORS[name]}" stroke-width="2" fill="none"/>'
        )
        parts.append(f'<text x="{PAD + 8}" y="{PAD + 16 + 14 * i}" fill="{COLORS[name]}">{name}</text>')
    return "".join(parts) + "</svg>"


def _svg_groups(rows: list[dict[str, Any]], rate: str) -> str:
    """Per-group rate with its interval, candidate and baseline side by side."""
    rh = 22
    height = PAD + rh * len(rows) + 20
    left = 170

    def px(x: float) -> float:
        return left + x * (W + 120 - left - 20)

    parts = [
        f'<svg viewBox="0 0 {W + 120} {height}" width="{W + 120}" height="{height}" role="img" aria-label="{rate} by group">',
        f'<text x="{(W + 120) / 2}" y="18" text-anchor="middle" class="t">{h.escape(rate)} by group, with {h.escape("intervals")}</text>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<line x1="{px(tick):.1f}" x2="{px(tick):.1f}" y1="{PAD - 8}" y2="{height - 16}" stroke="#eee"/>'
            f'<text x="{px(tick):.1f}" y="{height - 4}" text-anchor="middle">{tick}</text>'
        )
    for i, r in enumerate(rows):
        y = PAD + rh * i
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{h.escape(r["group"][:26])}</text>')
        for k, side in enumerate(("candidate", "baseline")):
            v = r.get(side, {}).get(rate)
            if not v or v["value"] is None:
                continue
            yy = y - 4 + 8 * k
            if v["ci"]:
                parts.append(
                    f'<line x1="{px(v["ci"][0]):.1f}" x2="{px(v["ci"][1]):.1f}" y1="{yy}" y2="{yy}" stroke="{COLORS[side]}" stroke-width="2"/>'
                )
            parts.append(
                f'<circle cx="{px(v["value"]):.1f}" cy="{yy}" r="3.5" fill="{COLORS[side]}"><title>{side}: {v["value"]:.4f}</title></circle>'
            )
    return "".join(parts) + "</svg>"


CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
th{background:#f6f8fa}.FAIL,.ERROR,.REJECT{color:#cf222e}.PASS,.PROMOTE{color:#1a7f37}.WARN,.INCONCLUSIVE,.HOLD,.WAIVED{color:#9a6700}
.badge{border:2px solid currentColor;border-radius:6px;padding:0 .4em;font-size:.8em;vertical-align:middle}
svg{margin:.5em 1em .5em 0;font-size:11px}.t{font-weight:600;font-size:13px}.charts{display:flex;flex-wrap:wrap}"""


def render(rec: dict[str, Any], curve_data: dict[str, Any]) -> str:
    e = h.escape
    conf = rec["evaluation"]["confidence"]
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>mlops-gates: {rec['decision']}</title><style>{CSS}</style></head><body>",
        f"<h1>mlops-gates: <span class='badge {rec['decision']}'>{rec['decision']}</span></h1>",
        "<ul>" + "".join(f"<li>{e(r)}</li>" for r in rec["reasons"]) + "</ul>",
        *(
            f"<h2>{title}</h2><ul>" + "".join(f"<li class='{cls}'>{e(x)}</li>" for x in lines) + "</ul>"
            for title, cls, lines in zip(
                ("Waived", "Waivers ignored"), ("WAIVED", "WARN"), waivers(rec), strict=True
            )
            if lines
        ),
        f"<p>{rec['evaluation']['rows']:,} rows · {e(rec['evaluation']['task'])} · policy <code>{e(rec['inputs']['policy']['digest'])}</code> · "
        f"data <code>{e(rec['inputs']['data']['eval']['digest'])}</code></p>",
    ]
    if curve_data:
        out.append("<h2>Curves</h2><div class='charts'>")
        out.append(
            _svg_xy(
                "ROC curve",
                {k: v["roc"] for k, v in curve_data.items()},
                "false positive rate",
                "true positive rate",
            )
        )
        out.append(
            _svg_xy(
                "Calibration (10 bins)",
                {k: v["calibration"] for k, v in curve_data.items()},
                "mean predicted",
                "observed",
            )
        )
        out.append("</div>")
    for g in rec["gates"]:
        out.append(
            f"<h2>{e(g['name'])} <span class='badge {g['status']}'>{g['status']}</span></h2><p>{e(g['reason'])}</p>"
        )
        groups = g.get("details", {}).get("groups")
        if groups:
            out.append("<div class='charts'>")
            for grouping in dict.fromkeys(r["grouping"] for r in groups):
                rows = [r for r in groups if r["grouping"] == grouping]
                for rate in [
                    r for r in ("selection_rate", "tpr", "fpr", "accuracy") if r in rows[0]["candidate"]
                ][:3]:
                    out.append(_svg_groups(rows, rate))
            out.append("</div>")
        out.append(
            f"<table><tr><th>Metric</th><th>Scope</th><th>Value</th><th>{conf:.0%} CI</th><th>Threshold</th><th>Baseline</th><th>n</th><th>Status</th><th>Note</th></tr>"
        )
        for m in g["metrics"]:
            out.append(
                f"<tr><td>{e(m['metric'])}</td><td>{e(m['scope'])}</td><td>{num(m['value'])}</td><td>{ci(m)}</td><td>{e(threshold(m))}</td>"
                f"<td>{num(m['baseline']) if m.get('baseline') is not None else '–'}</td><td>{num(m['n'])}</td>"
                f"<td class='{m['status']}'>{m['status']}</td><td>{e('; '.join(x for x in (m.get('note') or '', to_decide(m)) if x))}</td></tr>"
            )
        out.append("</table>")
    out.append(
        f"<p><small>mlops-gates {e(rec['tool']['version'])} · {e(rec['created_at'])}</small></p></body></html>\n"
    )
    return "".join(out)

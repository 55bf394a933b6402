"""The PR/MR comment: verdict and compact table first, details folded, a hidden marker, a size cap."""

from __future__ import annotations

from typing import Any

from mlops_gates.report.escape import html_text, md, mermaid
from mlops_gates.report.format import ICON, ci, num, threshold, to_decide, waivers

MARKER = "<!-- mlops-gates:report -->"
LIMIT = 65_536  # GitHub's comment body limit, in characters
CUT_NOTE = "\n> ✂️ Details were cut to fit the comment size limit; the full record is in `decision.json` and `report.html`.\n"


RESIDENCY = {
    "aggregate": "<sub>Residency: per-group and per-slice numbers, notes and reasons stay in the run's artifacts "
    "(decision.json, report.html).</sub>",
    "verdict": "<sub>Residency: the results stay in the run's artifacts (decision.json, report.html).</sub>",
}


def _header(rec: dict[str, Any]) -> list[str]:
    ev = rec["evaluation"]
    pol = rec["inputs"]["policy"]
    lines = [
        MARKER,
        f"## {ICON[rec['decision']]} mlops-gates: **{rec['decision']}**",
        "",
        f"{num(ev['rows'])} rows · {ev['task']} · {ev['decision_mode']} decisions at {ev['confidence']:.0%} confidence"
        + (f" · {ev['correction']} correction" if ev["correction"] != "none" else "")
        + f" · policy `{pol['digest'][:19]}…`",
        "",
        "| Gate | Status | Summary |",
        "|---|---|---|",
    ]
    for g in rec["gates"]:
        lines.append(
            f"| {md(g['name'])} | {ICON[g['status']]} {g['status']} | {md(str(g['reason'])[:300])} |"
        )
    if rec["decision"] != "PROMOTE":
        lines += ["", "**Why:**"] + [f"- {md(str(r)[:500])}" for r in rec["reasons"][:10]]
    applied, ignored = waivers(rec)
    if applied:
        lines += ["", "**Waived:**"] + [f"- 🔖 {md(a[:700])}" for a in applied]
    if ignored:
        lines += ["", "**Waivers ignored:**"] + [f"- ⚠️ {md(i[:500])}" for i in ignored[:20]]
    return lines


def _charts(rec: dict[str, Any]) -> list[str]:
    """Mermaid bar charts (GitHub and GitLab render them) of per-group selection rate and TPR, candidate as
    bars and baseline as a line. A group whose rate is undefined is left out and named, never drawn as 0."""
    groups: list[dict[str, Any]] = next(
        (g["details"]["groups"] for g in rec["gates"] if g.get("details", {}).get("groups")), []
    )
    groups = [r for r in groups if " x " not in r["grouping"]]
    out: list[str] = []
    for rate, title in (("selection_rate", "Selection rate"), ("tpr", "True positive rate")):
        if not groups or rate not in groups[0]["candidate"]:
            continue
        sides = [s for s in ("candidate", "baseline") if s in groups[0]]
        shown = [r for r in groups if all(r[s][rate]["value"] is not None for s in sides)]
        if not shown:
            continue
        names = ", ".join('"' + mermaid(r["group"].split("=", 1)[-1]) + '"' for r in shown)
        out += [
            "",
            "```mermaid",
            "xychart-beta",
            f'    title "{title} by group ({"bars: candidate; line: baseline" if len(sides) == 2 else "candidate"})"',
            f"    x-axis [{names}]",
            f'    y-axis "{rate}" 0 --> 1',
        ]
        for side, mark in zip(sides, ("bar", "line"), strict=False):
            values = ", ".join(f"{r[side][rate]['value']:.3f}" for r in shown)
            out.append(f"    {mark} [{values}]")
        out.append("```")
        left = [r["group"] for r in groups if r not in shown]
        if left:
            out.append(f"<sub>Not drawn ({rate} undefined): {md(', '.join(left))}</sub>")
    return out


def _details(g: dict[str, Any], conf: float, max_rows: int) -> list[str]:
    ms = g["metrics"]
    lines = [
        "",
        f"<details><summary>{ICON[g['status']]} <b>{html_text(g['name'])}</b>: {g['status']} ({len(ms)} checks)</summary>",
        "",
        f"| Metric | Scope | Value | {conf:.0%} CI | Threshold | n | Status | Note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ranked = sorted(
        ms,
        key=lambda m: ["FAIL", "ERROR", "INCONCLUSIVE", "WAIVED", "WARN", "PASS", "SKIP"].index(m["status"]),
    )
    for m in ranked[:max_rows]:
        lines.append(
            f"| {md(m['metric'])} | {md(m['scope'])} | {num(m['value'])} | {ci(m)} | {threshold(m)} | {num(m['n'])} "
            f"| {ICON[m['status']]} {m['status']} | {md('; '.join(x for x in (str(m.get('note') or '')[:200], to_decide(m)) if x))} |"
        )
    if len(ranked) > max_rows:
        lines.append(f"| … {len(ranked) - max_rows} more rows in decision.json | | | | | | | |")
    mc = g.get("details", {}).get("mcnemar")
    if mc:
        lines += [
            "",
            f"McNemar exact test: p = {num(mc['p_value'])} ({mc['baseline_right_candidate_wrong']} rows lost, "
            f"{mc['baseline_wrong_candidate_right']} won against the baseline).",
        ]
    return lines + ["", "</details>"]


def fit(text: str, limit: int = LIMIT) -> str:
    """A report cut to a platform's size limit at a line boundary, with the visible note; the marker, at the
    top, survives, so the next run still finds and updates this comment."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(CUT_NOTE)]
    return head[: head.rfind("\n") + 1 if "\n" in head else len(head)] + CUT_NOTE


def render(rec: dict[str, Any], limit: int = LIMIT) -> str:
    mode = (rec.get("residency") or {}).get("publish", "all")
    if mode == "verdict":
        head = [MARKER, f"## {ICON[rec['decision']]} mlops-gates: **{rec['decision']}**", "", RESIDENCY[mode]]
    else:
        head = _header(rec) + ([] if mode == "all" else ["", RESIDENCY[mode]]) + _charts(rec)
    footer = [
        "",
        f"<sub>mlops-gates {rec['tool']['version']} · {rec['created_at']}"
        + (f" · [run]({rec['ci']['run_url']})" if rec.get("ci") and rec["ci"].get("run_url") else "")
        + "</sub>",
        "",
    ]
    conf = rec["evaluation"]["confidence"]
    for max_rows in (10_000, 50, 10, 0):
        body = list(head)
        if max_rows:
            for g in rec["gates"]:
                body += _details(g, conf, max_rows)
        text = "\n".join(body + ([CUT_NOTE] if max_rows < 10_000 else []) + footer)
        if len(text) <= limit:
            return text
    return text[: limit - len(CUT_NOTE) - 1] + CUT_NOTE

"""The PR/MR comment: verdict and compact table first, details folded, a hidden marker, a size cap."""

from __future__ import annotations

from typing import Any

from mlops_gates.report.format import ICON, ci, num, threshold

MARKER = "<!-- mlops-gates:report -->"
LIMIT = 65_536  # GitHub's comment body limit, in characters
CUT_NOTE = "\n> ✂️ Details were cut to fit the comment size limit; the full record is in `decision.json` and `report.html`.\n"


def _esc(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


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
        lines.append(f"| {_esc(g['name'])} | {ICON[g['status']]} {g['status']} | {_esc(g['reason'])[:300]} |")
    if rec["decision"] != "PROMOTE":
        lines += ["", "**Why:**"] + [f"- {_esc(r)[:500]}" for r in rec["reasons"][:10]]
    return lines


def _chart(rec: dict[str, Any]) -> list[str]:
    """A Mermaid bar chart of per-group selection rates, candidate and baseline (GitHub and GitLab render it)."""
    for g in rec["gates"]:
        groups = [r for r in g.get("details", {}).get("groups", []) if " x " not in r["grouping"]]
        if not groups:
            continue
        names = ", ".join('"' + r["group"].split("=", 1)[-1].replace('"', "'")[:20] + '"' for r in groups)
        cand = ", ".join(f"{(r['candidate']['selection_rate']['value'] or 0):.3f}" for r in groups)
        out = [
            "",
            "```mermaid",
            "xychart-beta",
            '    title "Selection rate by group (bars: candidate; line: baseline)"',
            f"    x-axis [{names}]",
            '    y-axis "selection rate" 0 --> 1',
            f"    bar [{cand}]",
        ]
        if "baseline" in groups[0]:
            base = ", ".join(f"{(r['baseline']['selection_rate']['value'] or 0):.3f}" for r in groups)
            out.append(f"    line [{base}]")
        return out + ["```"]
    return []


def _details(g: dict[str, Any], conf: float, max_rows: int) -> list[str]:
    ms = g["metrics"]
    lines = [
        "",
        f"<details><summary>{ICON[g['status']]} <b>{_esc(g['name'])}</b>: {g['status']} ({len(ms)} checks)</summary>",
        "",
        f"| Metric | Scope | Value | {conf:.0%} CI | Threshold | n | Status | Note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ranked = sorted(
        ms, key=lambda m: ["FAIL", "ERROR", "INCONCLUSIVE", "WARN", "PASS", "SKIP"].index(m["status"])
    )
    for m in ranked[:max_rows]:
        lines.append(
            f"| {_esc(m['metric'])} | {_esc(m['scope'])} | {num(m['value'])} | {ci(m)} | {threshold(m)} | {num(m['n'])} "
            f"| {ICON[m['status']]} {m['status']} | {_esc(m.get('note') or '')[:200]} |"
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


def render(rec: dict[str, Any], limit: int = LIMIT) -> str:
    head = _header(rec) + _chart(rec)
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

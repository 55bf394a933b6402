"""Reports from the decision record: JSON, PR/MR comment (Markdown), JUnit, self-contained HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError
from mlops_gates.policy import Policy
from mlops_gates.stats.collect import EvalStats


def write_all(
    rec: dict[str, Any], out: Path, *, stats: EvalStats | None = None, policy: Policy | None = None
) -> dict[str, Path]:
    from mlops_gates.report import html, junit, markdown

    if out.exists() and not out.is_dir():
        raise GateError(
            "is a file, not a folder", where=str(out), hint="pass --out a folder (it is created if missing)"
        )
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "record": out / "decision.json",
        "markdown": out / "report.md",
        "junit": out / "junit.xml",
        "html": out / "report.html",
    }
    files["record"].write_text(json.dumps(rec, indent=2, sort_keys=False) + "\n")
    files["markdown"].write_text(markdown.render(rec))
    files["junit"].write_text(junit.render(rec))
    files["html"].write_text(html.render(rec, html.curves(stats) if stats is not None else {}))
    return files

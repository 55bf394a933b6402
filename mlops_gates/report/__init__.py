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
    texts = {
        "record": ("decision.json", json.dumps(rec, indent=2) + "\n"),
        "markdown": ("report.md", markdown.render(rec)),
        "junit": ("junit.xml", junit.render(rec)),
        "html": ("report.html", html.render(rec, html.curves(stats) if stats is not None else {})),
    }
    files = {}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for kind, (name, text) in texts.items():
            files[kind] = out / name
            files[kind].write_text(text, encoding="utf-8")
    except OSError as exc:
        raise GateError(
            f"cannot write the outputs: {exc.strerror}",
            where=str(out),
            hint="pass --out a folder you can write to",
        ) from None
    return files

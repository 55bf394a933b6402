"""Reports from the decision record: one renderer per output, each a function of the record alone (the HTML
also draws the curves it is given). `write_all` writes every one beside the record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError
from mlops_gates.report import html, junit, markdown
from mlops_gates.report.public import public

Renderer = Callable[[dict[str, Any], dict[str, Any]], str]  # (record, curves) -> text

# kind -> (file name, renderer); the record itself is the first output
RENDERERS: dict[str, tuple[str, Renderer]] = {
    "record": ("decision.json", lambda rec, curves: json.dumps(rec, indent=2) + "\n"),
    "markdown": ("report.md", lambda rec, curves: markdown.render(rec)),
    "junit": ("junit.xml", lambda rec, curves: junit.render(public(rec))),  # the MR widget shows it
    "html": ("report.html", html.render),
}


def render(rec: dict[str, Any], kind: str, curves: dict[str, Any] | None = None) -> str:
    """One output as text: record, markdown, junit or html."""
    return RENDERERS[kind][1](rec, curves or {})


def write_all(rec: dict[str, Any], out: Path, *, curves: dict[str, Any] | None = None) -> dict[str, Path]:
    """Every output into the folder `out`; `curves` (stats.curves) draws ROC and calibration in the HTML."""
    if out.exists() and not out.is_dir():
        raise GateError(
            "is a file, not a folder", where=str(out), hint="pass --out a folder (it is created if missing)"
        )
    texts = {kind: (name, fn(rec, curves or {})) for kind, (name, fn) in RENDERERS.items()}
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

"""GitLab's Code Quality report (the merge request widget): one entry per gate that did not pass."""

from __future__ import annotations

import hashlib
from typing import Any

from mlops_gates.report.escape import one_line


def code_quality(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """GitLab Code Quality entries for the MR widget: one per gate that did not pass."""
    severity = {
        "FAIL": "critical",
        "ERROR": "blocker",
        "INCONCLUSIVE": "major",
        "WARN": "minor",
        "WAIVED": "info",
    }
    path = rec["inputs"]["policy"]["path"]
    out = []
    for g in rec["gates"]:
        if g["status"] in severity:
            fp = hashlib.sha256(f"{path}\0{g['name']}\0{g['status']}\0{g['reason']}".encode()).hexdigest()
            out.append(
                {
                    "description": one_line(f"mlops-gates {g['name']}: {g['status']}: {g['reason']}")[:1000],
                    "check_name": one_line(f"mlops-gates/{g['name']}"),
                    "fingerprint": fp,
                    "severity": severity[g["status"]],
                    "location": {"path": path, "lines": {"begin": 1}},
                }
            )
    return out

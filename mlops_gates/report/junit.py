"""JUnit XML: one test case per gate, so CI test widgets show the gate like a test suite."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from mlops_gates.report.escape import xml_text
from mlops_gates.report.format import ci, num, threshold


def _lines(g: dict[str, Any], statuses: set[str]) -> str:
    return xml_text(
        "\n".join(
            f"{m['metric']} [{m['scope']}] = {num(m['value'])} CI {ci(m)} needs {threshold(m)}: {m['status']}"
            + (f" ({m['note']})" if m.get("note") else "")
            for m in g["metrics"]
            if m["status"] in statuses
        )
    )


def render(rec: dict[str, Any]) -> str:
    gates = rec["gates"]
    suite = ET.Element(
        "testsuite",
        name="mlops-gates",
        tests=str(len(gates)),
        failures=str(sum(g["status"] in ("FAIL", "INCONCLUSIVE") for g in gates)),
        errors=str(sum(g["status"] == "ERROR" for g in gates)),
        skipped=str(sum(g["status"] == "SKIP" for g in gates)),
        timestamp=rec["created_at"],
    )
    for g in gates:
        case = ET.SubElement(
            suite, "testcase", classname=f"mlops-gates.{g['type']}", name=xml_text(g["name"])
        )
        st = g["status"]
        if st in ("FAIL", "INCONCLUSIVE"):
            el = ET.SubElement(case, "failure", type=st.lower(), message=xml_text(g["reason"][:1000]))
            el.text = _lines(g, {"FAIL", "INCONCLUSIVE", "ERROR"})
        elif st == "ERROR":
            el = ET.SubElement(case, "error", type="error", message=xml_text(g["reason"][:1000]))
            el.text = _lines(g, {"ERROR"})
        elif st == "SKIP":
            ET.SubElement(case, "skipped", message=xml_text(g["reason"][:1000]))
        elif st in ("WARN", "WAIVED"):
            ET.SubElement(case, "system-out").text = _lines(g, {"WARN", "WAIVED"})
    root = ET.Element("testsuites", name=f"mlops-gates: {rec['decision']}")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

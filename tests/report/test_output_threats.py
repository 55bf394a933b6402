"""Threat: a group, slice or column value from the PR's data becomes structure in an output: a link, raw HTML,
a mention, a table cell, a closed code fence, a forged marker, invalid XML, or a CI workflow command in a log.

A real evaluation runs twice on the same rows, once with hostile group values and once with plain ones; every
renderer's output is parsed (CommonMark, HTML, XML, JSON) and must have the same structure both times.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from mlops_gates.report import html as html_report
from mlops_gates.report import junit, markdown
from mlops_gates.report.code_quality import code_quality
from mlops_gates.report.escape import ZWSP, guard_lines, md, one_line
from tests.conftest import binary_frame, binary_policy, cli_main, write_parquet, write_policy

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](https://evil.example)",
    "![x](https://evil.example/p.png)",
    "**bold** _em_ ~~del~~",
    "a|b|c",
    "line1\nline2",
    "cr\rreturn",
    "`code` ```",
    "<!-- mlops-gates:report -->",
    "--> <details><summary>",
    "@octocat @org/team",
    "https://evil.example www.evil.example",
    "::set-output name=x::y",
    "  ::error::pwned",
    "##[set-output name=x;]y",
    "\x1b[0Ksection_start:1:evil\r\x1b[0K",
    "&lt;b&gt; &#60;i&#62;",
    "\\ back\\slash",
    "# heading",
    "> quote",
    "- item",
    "[ref]: https://evil.example",
    "<https://evil.example>",
    "\x00nul\x0bvt\x1f",
    "\u2028sep\u2029",
    '"quoted" and #quot;',
    "| --- |",
]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """(hostile record, benign record): the same rows, the sensitive values renamed."""
    frame = binary_frame(n=2 * 40 * len(HOSTILE), seed=5)
    n = len(frame["label"])
    codes = np.arange(n) % len(HOSTILE)
    out = []
    for names in (HOSTILE, [f"g{i}" for i in range(len(HOSTILE))]):
        folder = tmp_path_factory.mktemp("case")
        data = dict(frame, race=np.array(names, dtype=object)[codes])
        write_parquet(folder / "eval.parquet", data)
        gates = [
            {"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.99}]},
            {
                "type": "fairness",
                "features": ["race"],
                "metrics": [
                    {"metric": "selection_rate_ratio", "op": ">=", "value": 0.99},
                    {"metric": "tpr_difference", "op": "<=", "value": 0.01},
                    {"metric": "demographic_parity_difference", "op": "<=", "value": 0.01},
                ],
            },
            {"type": "regression", "metrics": [{"metric": "accuracy", "margin": {"absolute": 0.0}}]},
        ]
        pol = binary_policy(
            gates=gates, columns={**binary_policy()["columns"], "sensitive": ["race"], "slices": ["race"]}
        )
        write_policy(folder / "gates.yml", pol)
        from mlops_gates.evaluation import run

        out.append((run(folder / "gates.yml", folder / "out").record, folder))
    return out


def _md_structure(text: str) -> list[tuple]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    shape: list[tuple] = []

    def walk(ts):
        for t in ts:
            if t.type in ("text", "text_special", "softbreak"):
                continue
            info = t.info if t.type == "fence" else ""
            shape.append(
                (t.type, t.tag, t.nesting, info, t.content if t.type in ("html_inline", "html_block") else "")
            )
            if t.children:
                walk(t.children)

    walk(tokens)
    return shape


def _text(text: str) -> str:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    parts: list[str] = []
    for t in tokens:
        for c in t.children or []:
            if c.type in ("text", "text_special", "code_inline"):
                parts.append(c.content)
    return "".join(parts).replace(ZWSP, "")


def test_markdown_structure_is_the_data_free_structure(records):
    (hostile, _), (benign, _) = records
    a, b = markdown.render(hostile), markdown.render(benign)
    assert _md_structure(a) == _md_structure(b)
    assert a.count(markdown.MARKER) == 1
    # the Mermaid labels are plain: nothing but the label characters between the quotes
    for block in re.findall(r"```mermaid\n(.*?)```", a, re.S):
        for label in re.findall(r'"([^"]*)"', block.split("x-axis", 1)[1].split("\n", 1)[0]):
            assert re.fullmatch(r"[\w .,+=/-]*", label), label


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(("start", tag, tuple(k for k, _ in attrs)))

    def handle_endtag(self, tag):
        self.tags.append(("end", tag))

    def handle_comment(self, data):
        self.tags.append(("comment",))


def _html_tags(text: str) -> list[tuple]:
    p = _Tags()
    p.feed(text)
    return p.tags


def test_html_report_structure_is_the_data_free_structure(records):
    (hostile, hf), (benign, bf) = records
    a, b = (hf / "out" / "report.html").read_text(), (bf / "out" / "report.html").read_text()
    assert _html_tags(a) == _html_tags(b)
    assert _html_tags(html_report.render(hostile, {})) == _html_tags(html_report.render(benign, {}))
    assert "<script>" not in a


def test_junit_is_valid_xml_with_every_case(records):
    (hostile, hf), _ = records
    for text in (junit.render(hostile), (hf / "out" / "junit.xml").read_text()):
        root = ET.fromstring(text.encode())
        assert len(root.findall(".//testcase")) == len(hostile["gates"])


def test_code_quality_descriptions_are_one_plain_line(records):
    (hostile, _), _ = records
    entries = json.loads(json.dumps(code_quality(hostile)))
    assert entries
    for e in entries:
        assert not re.search(r"[\x00-\x1f\x7f\u2028\u2029]", e["description"] + e["check_name"])


def test_no_log_line_can_issue_a_workflow_command(records, monkeypatch, capsys):
    (_, hf), _ = records
    capsys.readouterr()
    cli_main(monkeypatch, "evaluate", "--policy", str(hf / "gates.yml"), "--out", str(hf / "out-cli"))
    cli_main(monkeypatch, "publish", str(hf / "out-cli" / "decision.json"), "--platform", "local")
    out, err = capsys.readouterr()
    assert out and "REJECT" in out + err
    for line in (out + err).split("\n"):
        assert not line.lstrip().startswith("::") and "##[" not in line, line
        assert "\x1b" not in line and "\r" not in line, line


@pytest.mark.parametrize("value", HOSTILE)
def test_md_keeps_each_value_text(value):
    """In a table cell and in a list item the escaped value is one text run that reads as the value."""
    for template in ("| a | b |\n|---|---|\n| {} | x |\n", "- why: {}\n"):
        shape = _md_structure(template.format(md(value)))
        assert shape == _md_structure(template.format("plain")), value
    assert _text("- " + md(value)).strip() == one_line(value).strip()


def test_guard_lines():
    assert (
        guard_lines("ok\n::set-output name=a::b\n  ::warning::x")
        == "ok\n: :set-output name=a::b\n  : :warning::x"
    )
    assert guard_lines("::x", at_line_start=False) == "::x"
    assert "##[" not in guard_lines("a ##[error]b") and "\r" not in guard_lines("a\rb")
    assert "\x1b" not in guard_lines("\x1b[0Ksection_start:1:x\r\x1b[0K")


def test_annotations_still_reach_github(records, tmp_path, monkeypatch, capsys):
    """The one deliberate workflow command (a failing gate's ::error annotation) passes the guard."""
    (_, hf), _ = records
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 1, "head": {"sha": "a" * 40}}}))
    for k, v in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "a/b",
        "GITHUB_API_URL": "http://127.0.0.1:9",
        "GITHUB_TOKEN": "t" * 20,
    }.items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    cli_main(monkeypatch, "publish", str(hf / "out" / "decision.json"))
    out = capsys.readouterr().out
    assert re.search(r"^::error file=", out, re.M), out
    annotations = [line for line in out.split("\n") if line.startswith("::error")]
    assert annotations and all(a.count("::") >= 2 for a in annotations)

"""Every value that came from data (group and slice values, class labels, column and file names) is escaped for
the medium it lands in, here and only here: Markdown, HTML, Mermaid labels, XML, JSON descriptions and the
terminal. An escaped value is text in its medium; it never becomes structure (a link, a table cell, a tag, a
mention, a CI workflow command)."""

from __future__ import annotations

import html
import io
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")
_MD_PUNCT = re.compile(
    r"([!-/:-@\[-`{-~])"
)  # every ASCII punctuation character: CommonMark lets each be escaped
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MERMAID_SAFE = re.compile(r"[^\w .,+=/-]")
ZWSP = "\u200b"


def one_line(value: Any) -> str:
    """Line breaks become spaces and control characters '?': a value cannot start a line of its own."""
    return _CONTROL.sub("?", _LINE_BREAKS.sub(" ", str(value)))


def md(value: Any) -> str:
    """Markdown inline text (table cells, list items, paragraphs): every ASCII punctuation character is
    backslash-escaped (no emphasis, link, image, raw HTML, code span or cell break), and the bare forms GitHub
    and GitLab turn into links or pings (URLs, www., @mentions) are broken with a zero-width space."""
    text = _MD_PUNCT.sub(r"\\\1", one_line(value))
    return (
        text.replace("\\:\\/\\/", f"\\:{ZWSP}\\/\\/")
        .replace("www\\.", f"www{ZWSP}\\.")
        .replace("\\@", f"\\@{ZWSP}")
    )


def html_text(value: Any) -> str:
    """HTML text or attribute value (inside `<summary>` and other raw HTML blocks Markdown escapes do not
    apply): &, <, >, quotes as entities; line breaks as spaces, so a blank line cannot end the block."""
    return html.escape(one_line(value), quote=True)


def mermaid(value: Any, limit: int = 20) -> str:
    """A Mermaid label inside double quotes: letters, digits and a few signs; anything else becomes '_'
    (quotes, brackets, '#' entities and backticks could end the label, the chart or the code fence)."""
    return _MERMAID_SAFE.sub("_", one_line(value))[:limit]


def xml_text(value: Any) -> str:
    """Text XML 1.0 allows (ElementTree escapes <, & and quotes but writes forbidden characters as they are)."""
    return _XML_FORBIDDEN.sub("?", str(value))


def guard_lines(text: str, at_line_start: bool = True) -> str:
    """Terminal and CI-log output: no line may start a GitHub workflow command ('::', after any leading
    spaces), carry the legacy '##[' form, or hold a carriage return or escape character (GitLab's collapsible
    section markers and overwritten lines need them)."""
    text = _CONTROL.sub("?", text.replace("\r\n", "\n").replace("\r", "?")).replace("##[", "## [")
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i == 0 and not at_line_start:
            continue
        stripped = line.lstrip()
        if stripped.startswith("::"):
            cut = len(line) - len(stripped) + 1
            lines[i] = line[:cut] + " " + line[cut:]
    return "\n".join(lines)


class GuardedStream(io.TextIOBase):
    """A text stream whose every line passes `guard_lines`; `raw` is the stream underneath, for the one
    writer that means to issue workflow commands (GitHub annotations)."""

    def __init__(self, raw: Any):
        self.raw = raw
        self._fresh = True

    def write(self, s: str) -> int:
        if not isinstance(s, str):  # a text stream (click probes with bytes to tell the kinds apart)
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if s:
            self.raw.write(guard_lines(s, self._fresh))
            self._fresh = s.endswith("\n")
        return len(s)

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        return bool(self.raw.isatty())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.raw, "encoding", "utf-8"))

    def fileno(self) -> int:
        return int(self.raw.fileno())

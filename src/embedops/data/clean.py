"""Text cleaning with well-kept libraries: HTML to text (selectolax), Unicode repair (ftfy), whitespace."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Linear on any input: a tag is scanned only up to the next "<" (the old `[\w:-]*[^>]*>` backtracked over both
# quantifiers from every "<" without a ">": minutes on a 2 MB text of "x<ab ...").
_HTML_HINT = re.compile(r"<(?:[a-zA-Z]|/[a-zA-Z]|!--)[^<>]*>|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\ufeff]")
# C0 controls and DEL become spaces before anything else: ftfy (and the HTML parser) delete them, which joins the
# words on either side ("a\x00b" -> "ab"). C1 controls are left to ftfy, which may need them to repair mojibake.
_C0_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Only runs that change: two or more spaces, or one space-like character that is not " " (matching every single
# space made re.sub build a list of millions of pieces: ~13x a 10 MB text's size).
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]{2,}|[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]")
# A whitespace run holding a newline becomes one newline. Matching only from a run's first character keeps it
# linear: from every position inside a long run without a newline, `\s*\n` would rescan the rest of the run.
_NEWLINES = re.compile(r"(?<!\s)\s*\n\s*")


@dataclass
class CleanOptions:
    """Which cleaning steps run."""

    strip_html: bool = True
    normalize_unicode: bool = True
    collapse_whitespace: bool = True


def html_to_text(text: str) -> str:
    """Visible text of an HTML fragment; scripts and styles dropped, block boundaries kept as spaces."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(text)
    for node in tree.css("script, style, noscript, template"):
        node.decompose()
    root = tree.body or tree.root
    if root is None:
        return ""
    return root.text(separator=" ", deep=True)


def clean_text(text: str, options: CleanOptions | None = None) -> str:
    """Clean one text: HTML to text if it looks like HTML, mojibake repair + NFKC, control chars, whitespace."""
    opts = options or CleanOptions()
    text = _C0_CONTROL.sub(" ", text)
    if opts.strip_html and _HTML_HINT.search(text):
        text = html_to_text(text)
    if opts.normalize_unicode:
        import ftfy

        text = ftfy.fix_text(text, normalization="NFKC")
    else:
        text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    if opts.collapse_whitespace:
        text = _NEWLINES.sub("\n", _SPACES.sub(" ", text)).strip()
    return text

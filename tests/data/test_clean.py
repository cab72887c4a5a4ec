"""Cleaning, dedupe and chunking on concrete inputs."""

from __future__ import annotations

import pytest

from embedops.data.chunk import chunk_text, fold_scores
from embedops.data.clean import clean_text
from embedops.data.dedupe import find_duplicates
from embedops.errors import InputError


def test_html_is_turned_into_visible_text():
    html = "<p>Hello&nbsp;<b>world</b></p><script>var x = 1;</script><style>p{}</style>"
    assert clean_text(html) == "Hello world"


def test_unicode_mojibake_control_chars_and_whitespace():
    assert clean_text("cafÃ©  au\u200b lait\x07\n\n\n next") == "café au lait\nnext"
    assert clean_text("ﬁne Ｗｉｄｅ") == "fine Wide"  # NFKC folds ligatures and full-width forms


def test_plain_text_with_angle_brackets_is_left_alone():
    assert clean_text("a < b and c > d") == "a < b and c > d"


def test_exact_and_near_duplicates_first_occurrence_wins():
    base = ("Embedding models map text to vectors so that similar meanings land close together "
            "and search can find them by meaning rather than by words.")
    texts = [base, base.upper() + "!!", base.replace("close together", "close together indeed"), "Something else."]
    result = find_duplicates(texts, near=True, threshold=0.8)
    assert result.exact == {1: 0}
    assert result.near == {2: 0}
    assert result.keep == [0, 3]
    assert find_duplicates(texts, near=False).keep == [0, 2, 3]


def test_chunks_respect_the_token_budget_and_overlap(encoder):
    tok = encoder.tokenizer
    text = " ".join(f"word{i}" for i in range(400))
    chunks = chunk_text(text, tok, max_tokens=64, overlap=16)
    assert len(chunks) > 3
    for c in chunks:
        assert len(tok(c, add_special_tokens=False)["input_ids"]) <= 64
        assert c in text
    # Overlap: the end of one chunk reappears at the start of the next.
    assert chunks[0].split()[-1] in chunks[1]
    assert chunk_text("short text", tok, max_tokens=64) == ["short text"]
    with pytest.raises(InputError, match="overlap"):
        chunk_text(text, tok, max_tokens=64, overlap=64)


def test_chunk_scores_fold_back_to_documents():
    assert fold_scores({"d1#0": 0.2, "d1#1": 0.9, "d2#0": 0.5, "d3": 0.1}) == {"d1": 0.9, "d2": 0.5, "d3": 0.1}


def test_nul_and_other_c0_controls_separate_words():
    # Issue 9: ftfy deleted a NUL, joining the words on either side.
    assert clean_text("first\x00second") == "first second"
    assert clean_text("a\x01b\x1fc\x7fd") == "a b c d"
    assert clean_text("<p>x\x00y</p>") == "x y"
    assert clean_text("donâ\x80\x99t") == "don't"  # C1 bytes of mojibake still repaired


def test_chunks_end_and_start_on_word_boundaries(encoder):
    # Issue 9: windows cut on token counts alone split words ("internationali" | "zation").
    tok = encoder.tokenizer
    words = ["internationalization", "counterrevolutionaries", "electroencephalography", "a", "of", "tokenizers"]
    text = " ".join(words[i % len(words)] + ("," if i % 7 == 6 else "") for i in range(300))
    chunks = chunk_text(text, tok, max_tokens=40, overlap=10)
    assert len(chunks) > 5
    for c in chunks:
        start = text.index(c)
        assert start == 0 or text[start - 1] == " ", c[:30]
        assert start + len(c) == len(text) or text[start + len(c)] == " ", c[-30:]
        assert len(tok(c, add_special_tokens=False)["input_ids"]) <= 40
    # Overlap is kept (in whole words) and nothing is skipped between windows.
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert text.index(b) < text.index(a) + len(a)
    # One "word" longer than a window still gets cut (inside it: there is no boundary).
    long = chunk_text("xq" * 49, tok, max_tokens=16, overlap=4)
    assert len(long) > 1 and all(len(tok(c, add_special_tokens=False)["input_ids"]) <= 16 for c in long)
    # Without whitespace, punctuation still separates words.
    dashed = chunk_text("a" + "-b" * 60, tok, max_tokens=16, overlap=4)
    assert len(dashed) > 1 and all(not c.startswith("##") for c in dashed)

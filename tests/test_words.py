from __future__ import annotations

import re
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from wordcount.planner import last_whitespace
from wordcount.words import (
    ASCII_WHITESPACE,
    Tally,
    count_bytes,
    reference_counts,
    split_non_ascii,
)


def test_reference_is_the_stated_rule():
    data = "Ὀδυσσεύς ΣΑΣ don't snake_case 42x ½ İ".encode()
    expected = Counter(re.findall(r"[^\W_]+", data.decode("utf-8", "replace").lower()))
    assert reference_counts(data) == expected
    assert reference_counts(data)["σας"] == 1  # final sigma, as str.lower() on the whole text


def test_word_rule_examples():
    got = count_bytes(b"Hello, HELLO hello_world don't 3rd\xffx")
    assert got == Counter({"hello": 3, "world": 1, "don": 1, "t": 1, "3rd": 1, "x": 1})


def test_ascii_fast_path_equals_reference_on_all_ascii_bytes():
    data = bytes(range(128)) * 3 + b"MiXeD Case 123 abc_DEF"
    assert count_bytes(data) == reference_counts(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_match_reference(data):
    assert count_bytes(data) == reference_counts(data)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_matches_reference(text):
    data = text.encode("utf-8", "surrogatepass")
    assert count_bytes(data) == reference_counts(data)


def test_tally_merges_ascii_and_unicode_buffers():
    t = Tally()
    t.add(b"word Word ")
    t.add("wORD ΣΑΣ ".encode())
    assert t.counts() == Counter({"word": 3, "σας": 1})


def test_last_whitespace():
    for ws in ASCII_WHITESPACE:
        assert last_whitespace(b"ab" + bytes([ws]) + b"cd") == 2
    assert last_whitespace(b"abc") == -1
    big = b" " + b"x" * 3_000_000
    assert last_whitespace(big) == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300).map(lambda b: bytes(c & 0x7F for c in b)))
def test_both_ascii_paths_match_reference(data):
    for arrow in (True, False):
        t = Tally()
        t._arrow = arrow
        t.add(data)
        t.add(b" " + data)
        assert t.counts() == reference_counts(data) + reference_counts(b" " + data)


def test_arrow_is_available_in_the_dev_install():
    from wordcount import words

    assert words.USE_ARROW, "pyarrow (extra 'fast', part of 'dev') must be active in tests"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"B", b" ", b"\n", b"\t", b".", "é".encode(), b"\xff",
                                 "Σ".encode(), "😀".encode(), b"_"]), max_size=60).map(b"".join))
def test_split_non_ascii_tokens(data):
    rest, tokens = split_non_ascii(data)
    assert all(part.isascii() for part in rest)
    assert all(not t.isascii() and not any(ws in t for ws in ASCII_WHITESPACE) for t in tokens)
    assert sum(map(len, rest)) + sum(map(len, tokens)) == len(data)
    assert reference_counts(b" ".join(rest)) + reference_counts(b" ".join(tokens)) == \
        reference_counts(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=6), st.integers(0, 200))
def test_tallies_absorbed_and_flushed_at_any_size_equal_the_reference(buffers, pending):
    """The serial engine counts its tasks' split buffers together (Tally.absorb), flushing
    whenever ARROW_PENDING_BYTES is reached: any buffers, any flush size, both paths."""
    from wordcount import words

    expected = sum((reference_counts(b) for b in buffers), Counter())
    old = words.ARROW_PENDING_BYTES, words.ARROW_PENDING_WORDS
    words.ARROW_PENDING_BYTES = pending
    words.ARROW_PENDING_WORDS = pending // 3
    try:
        for arrow in (True, False):
            total = Tally()
            total._arrow = arrow
            for b in buffers:
                t = Tally()
                t._arrow = arrow
                t.add(b)
                total.absorb(t)
                assert not t._pending and not t._text and not t._ascii  # left empty
            assert total.counts() == expected
    finally:
        words.ARROW_PENDING_BYTES, words.ARROW_PENDING_WORDS = old

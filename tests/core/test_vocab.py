from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnviz.core.vocab import Vocab


def test_from_text_orders_by_frequency_then_character() -> None:
    v = Vocab.from_text("cabbage bab")
    # b x4, a x3, then c, e, g and space once each: ties in code point order
    assert v.tokens == ("<unk>", "b", "a", " ", "c", "e", "g")
    assert len(v) == 7
    assert v.unk_index == 0
    assert v.index("b") == 1
    assert v.index("z") == 0


def test_from_text_of_empty_text_is_just_unk() -> None:
    v = Vocab.from_text("")
    assert v.tokens == ("<unk>",)
    assert v.encode("abc").tolist() == [0, 0, 0]


def test_encode_gives_int64_and_zero_for_unknown_characters() -> None:
    v = Vocab.from_text("hello")
    ids = v.encode("hex\U0001f600\x00o")
    assert ids.dtype == np.int64
    assert ids.shape == (6,)
    assert ids.tolist() == [v.index("h"), v.index("e"), 0, 0, 0, v.index("o")]


def test_unknown_positions_and_unk_decodes_literally() -> None:
    v = Vocab.from_text("abc ")
    text = "a?b c!\u00e9"
    assert v.unknown_positions(text) == [1, 5, 6]
    assert v.decode(v.encode(text)) == "a<unk>b c<unk><unk>"
    assert v.unknown_positions("") == []


def test_decode_rejects_ids_outside_the_vocabulary() -> None:
    v = Vocab.from_text("ab")
    with pytest.raises(ValueError, match="outside"):
        v.decode([3])
    with pytest.raises(ValueError, match="outside"):
        v.decode([-1])


def test_json_round_trip_and_equality() -> None:
    v = Vocab.from_text("the time machine by h g wells")
    data = json.loads(json.dumps(v.to_json()))
    w = Vocab.from_json(data)
    assert w == v
    assert hash(w) == hash(v)
    assert w.encode("machine").tolist() == v.encode("machine").tolist()


@pytest.mark.parametrize(
    "tokens", [[], ["a", "<unk>"], ["<unk>", "ab"], ["<unk>", "a", "a"], ["<unk>", ""]]
)
def test_invalid_token_lists_are_refused(tokens: list[str]) -> None:
    with pytest.raises(ValueError):
        Vocab(tokens)


def test_from_json_refuses_non_lists() -> None:
    with pytest.raises(ValueError):
        Vocab.from_json({"tokens": ["<unk>"]})
    with pytest.raises(ValueError):
        Vocab.from_json(["<unk>", 3])


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=200))
def test_encode_decode_round_trip_over_own_characters(text: str) -> None:
    v = Vocab.from_text(text)
    ids = v.encode(text)
    assert len(ids) == len(text)
    assert v.decode(ids) == text
    assert v.unknown_positions(text) == []
    # every character of the text is in the vocabulary exactly once
    assert sorted(v.tokens[1:]) == sorted(set(text))


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdef ", min_size=1, max_size=50), st.text(max_size=50))
def test_unknown_positions_match_a_per_character_lookup(known: str, probe: str) -> None:
    v = Vocab.from_text(known)
    expected = [i for i, c in enumerate(probe) if c not in set(known)]
    assert v.unknown_positions(probe) == expected
    assert v.encode(probe).tolist() == [v.index(c) for c in probe]

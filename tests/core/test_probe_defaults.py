"""Each corpus brings its own probe text, made of its own alphabet, and a hint of it."""

from __future__ import annotations

import pytest

from rnnviz.core.config import CorpusConfig
from rnnviz.core.corpus import synthetic_text
from rnnviz.core.probe_defaults import (
    LANGUAGE_PROBE,
    alphabet_hint,
    default_probe_text,
    is_default_probe_text,
)

SYNTHETIC = ("repeat", "delay", "brackets")


@pytest.mark.parametrize("source", ["builtin", "time-machine", "/home/me/notes.txt"])
def test_natural_text_keeps_the_language_model_probe(source):
    corpus = CorpusConfig(source=source)
    assert default_probe_text(corpus) == LANGUAGE_PROBE == "the time machine"
    assert alphabet_hint(corpus) == ""


@pytest.mark.parametrize("task", SYNTHETIC)
@pytest.mark.parametrize("delay_k", [3, 10])
def test_a_synthetic_task_probes_with_its_own_alphabet(task, delay_k):
    corpus = CorpusConfig(source=f"synthetic:{task}", synthetic_length=5000, delay_k=delay_k)
    text = default_probe_text(corpus)
    alphabet = set(synthetic_text(task, corpus, seed=0))
    assert len(text) >= 10
    assert set(text) <= alphabet, set(text) - alphabet  # no character reads as <unk>
    assert is_default_probe_text(text)
    hint = alphabet_hint(corpus)
    assert hint.startswith(f"the {task} task's")
    letters = {c for c in alphabet if c != " "}
    assert all(c in hint for c in letters)


def test_the_delay_probe_shows_the_copy_k_steps_on():
    corpus = CorpusConfig(source="synthetic:delay", delay_k=5)
    text = default_probe_text(corpus)
    first, second, *_ = text.split(" ")
    assert len(first) == 5 + 1 and first[0] == first[5]  # the key, k - 1 fillers, the key
    assert second[0] != first[0]
    assert "5 steps" in alphabet_hint(corpus)


def test_the_repeat_probe_repeats_the_configured_word():
    corpus = CorpusConfig(source="synthetic:repeat", repeat_word="abc")
    assert default_probe_text(corpus) == "abc abc abc"


def test_typed_text_is_not_a_default():
    assert is_default_probe_text("the time machine")
    for typed in ("hello world", "the time machine!", "", "aa", "awxa bwxa c"):
        assert not is_default_probe_text(typed), typed

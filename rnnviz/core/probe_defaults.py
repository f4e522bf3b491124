"""What the probe is typed with first, per corpus, and the alphabet a synthetic task has.

A language model's probe ("the time machine") means nothing to a synthetic task: on the delay
task 12 of its 16 letters are outside the vocabulary and read as ``<unk>``. Each corpus gets a
default probe text made of its own alphabet, in the shape of its own text, and a one-line
hint of that alphabet to show next to a probe with unknown characters.
"""

from __future__ import annotations

from rnnviz.core.config import CorpusConfig
from rnnviz.core.corpus import DELAY_FILLER, DELAY_KEYS

LANGUAGE_PROBE = "the time machine"  # d2l's running example
BRACKETS_PROBE = "([]{()}) (()) {[]}"


def default_probe_text(corpus: CorpusConfig) -> str:
    """The probe text a fresh window shows for ``corpus``.

    Natural text (built-in, The Time Machine, a file): d2l's "the time machine". Synthetic
    tasks: a piece of text such as the task generates, so that every character is in the
    vocabulary and the thing to learn is in view (the copied key of the delay task, the
    closing brackets, the repeated word).
    """
    task = _synthetic_task(corpus)
    if task == "repeat":
        word = corpus.repeat_word.strip() or "machine"
        return " ".join([word] * 3)
    if task == "delay":  # two segments at least, four at most, about 16 characters
        segment = corpus.delay_k + 2
        count = min(len(DELAY_KEYS), max(2, -(-16 // segment)))
        return " ".join(_delay_segment(key, corpus.delay_k) for key in DELAY_KEYS[:count])
    if task == "brackets":
        return BRACKETS_PROBE
    return LANGUAGE_PROBE


def alphabet_hint(corpus: CorpusConfig) -> str:
    """A sentence naming a synthetic task's alphabet ("" for natural text, whose vocabulary
    is whatever the text holds)."""
    task = _synthetic_task(corpus)
    if task == "repeat":
        word = corpus.repeat_word.strip()
        letters = " ".join(sorted(set(word)))
        return f"the repeat task's text is {word!r} and spaces: letters {letters}"
    if task == "delay":
        return (
            f"the delay task's alphabet: keys {' '.join(DELAY_KEYS)}, fillers "
            f"{' '.join(DELAY_FILLER)} and the space; a key comes back {corpus.delay_k} steps on"
        )
    if task == "brackets":
        return "the brackets task's alphabet: ( ) [ ] { } and the space"
    return ""


def is_default_probe_text(text: str) -> bool:
    """Whether ``text`` is the default of some corpus (not typed by the user): a new corpus
    may then replace it with its own default."""
    if text in (LANGUAGE_PROBE, BRACKETS_PROBE):
        return True
    words = text.split(" ")
    if len(words) == 3 and len(set(words)) == 1 and words[0]:
        return True  # a repeat task's default, whatever its word
    return len(words) >= 2 and all(_is_delay_segment(w) for w in words)


def _synthetic_task(corpus: CorpusConfig) -> str | None:
    source = corpus.source
    return source.split(":", 1)[1] if source.startswith("synthetic:") else None


def _delay_segment(key: str, k: int) -> str:
    """``key``, k - 1 fillers, ``key`` again: one segment of the delay task (its space is
    the separator between segments)."""
    fillers = (DELAY_FILLER * k)[: max(k - 1, 0)]
    return key + fillers + key


def _is_delay_segment(word: str) -> bool:
    return (
        len(word) >= 2
        and word[0] == word[-1]
        and word[0] in DELAY_KEYS
        and all(c in DELAY_FILLER for c in word[1:-1])
    )

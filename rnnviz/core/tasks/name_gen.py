"""One-to-many: generate a surname of a given language.

The one input is the language: a marker token read at the first step, which sets the state
the name grows from (the slide's single input arrow). From then on every output is a
character fed back as the next input, until the model emits the end token. Trained on the
names task's surnames (teacher forcing: the true previous character is fed back); the
metric is held-out next-character accuracy, against the same names held out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from rnnviz.core.generation import MAX_SEED, draw
from rnnviz.core.model import CharModel
from rnnviz.core.tasks.base import (
    IGNORE_INDEX,
    PAD,
    Task,
    TaskData,
    TaskDefaults,
    TaskInputError,
    pad_rows,
    split_indices,
    step_accuracy,
)
from rnnviz.core.tasks.names import HELD_FRACTION, LANGUAGES, MAX_NAME_CHARS, surnames

END = "<end>"
MAX_GENERATED = MAX_NAME_CHARS + 6


def marker(language: str) -> str:
    return f"<{language}>"


@dataclass(frozen=True)
class GeneratedName:
    """A generated name: each character with the probability it was drawn with (after
    temperature and top-k) and the model's own; ``ended``: the model emitted the end token
    (its probability is the last of ``probs``) rather than reaching MAX_GENERATED."""

    language: str
    chars: tuple[str, ...]
    probs: tuple[float, ...]
    model_probs: tuple[float, ...]
    ended: bool

    @property
    def name(self) -> str:
        return "".join(self.chars)


def language_of(task: Task, text: str) -> str:
    """The language ``text`` names (any case); TaskInputError listing them when none."""
    languages = task.extra["languages"]
    for lang in languages:
        if text.strip().lower() == lang.lower():
            return str(lang)
    if not text.strip():
        raise TaskInputError("the name_gen task's input is a language; it is empty")
    raise TaskInputError(
        f"{text!r} is not one of the name_gen task's languages: {', '.join(languages)}"
    )


@torch.no_grad()
def generate_name(
    model: CharModel,
    task: Task,
    language: str,
    temperature: float = 0.0,
    top_k: int = 0,
    seed: int = 0,
) -> GeneratedName:
    """Characters after the language's marker until the end token (greedy at temperature 0;
    core.generation.draw's sampling otherwise)."""
    lang = language_of(task, language)
    if not 0 <= seed <= MAX_SEED:
        raise TaskInputError(f"seed must be in 0 .. 2**63 - 1, not {seed}")
    if temperature < 0 or top_k < 0:
        raise TaskInputError("temperature and top-k must be >= 0 (0: greedy / off)")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    ids = task.input_tokens.index(marker(lang))
    end = task.output_tokens.index(END)
    step = torch.tensor([[ids]], dtype=torch.int64, device=model.device)
    state = None
    chars: list[str] = []
    probs: list[float] = []
    own: list[float] = []
    for _ in range(MAX_GENERATED):
        logits, _, state = model(step, state)
        last = logits[0, -1].clone()
        last[0] = -torch.inf  # the padding is never an output
        nxt, p, own_p = draw(last, temperature, min(top_k, task.output_size - 1), generator)
        probs.append(p)
        own.append(own_p)
        if nxt == end:
            return GeneratedName(lang, tuple(chars), tuple(probs), tuple(own), True)
        chars.append(task.output_tokens[nxt])
        step = torch.tensor([[nxt]], dtype=torch.int64, device=model.device)
    return GeneratedName(lang, tuple(chars), tuple(probs), tuple(own), False)


def _commonest_share(pairs: tuple[tuple[str, int], ...]) -> float:
    """The share of the commonest target (a character or the end): a guess that reads nothing."""
    counts = Counter(c for n, _ in pairs for c in n)
    counts[END] = len(pairs)
    return max(counts.values()) / sum(counts.values())


def build() -> Task:
    pairs = surnames()
    chars = sorted({c for n, _ in pairs for c in n})
    languages = tuple(lang for _, lang in LANGUAGES)
    # output j < len(chars) + 1 is input j (a drawn character is fed back as it is)
    inputs = (PAD, *chars, *(marker(lang) for lang in languages))
    outputs = (PAD, *chars, END)
    index = {c: i for i, c in enumerate(inputs)}
    first_marker = 1 + len(chars)
    end = len(outputs) - 1

    def make_data(seed: int) -> TaskData:
        train_i, held_i = split_indices(len(pairs), HELD_FRACTION, seed)

        def rows(which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            xs, ys = [], []
            for i in which:
                name, li = pairs[i]
                ids = [index[c] for c in name]
                xs.append([first_marker + li, *ids])
                ys.append([*ids, end])
            width = MAX_NAME_CHARS + 1
            return pad_rows(xs, 0, width), pad_rows(ys, IGNORE_INDEX, width)

        tx, ty = rows(train_i)
        hx, hy = rows(held_i)
        items = tuple((languages[pairs[i][1]], pairs[i][0]) for i in held_i)
        return TaskData(tx, ty, hx, hy, items)

    return Task(
        name="name_gen",
        title="Generate a surname of a given language (one to many)",
        shape="one_to_many",
        input_tokens=inputs,
        output_tokens=outputs,
        reads="the first step only: the language; then its own outputs fed back",
        emits="every step: the next character, until the end token",
        metric_name="held-out next-character accuracy",
        target=0.35,
        chance=_commonest_share(pairs),
        make_data=make_data,
        score=step_accuracy,
        defaults=TaskDefaults(
            kind="gru", hidden_size=128, lr=0.005, batch_size=64, max_steps=4000, val_every=100
        ),
        extra={"languages": languages},
    )

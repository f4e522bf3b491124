"""Many-to-many, T_x = T_y: tag every character "is this the last letter of its word?".

The tag of a letter depends on the character after it, which a one-way RNN has not read when
it tags: the slide's third drawback, "cannot consider any future input", measured. The
sentences are made of generated words of one to three consonant-vowel syllables, so after a
vowel the word may end or go on, and nothing before it tells which; a bidirectional RNN
reads the next character in its reverse direction and tags every character right.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rnnviz.core.model import CharModel
from rnnviz.core.tasks.base import (
    IGNORE_INDEX,
    PAD,
    Task,
    TaskData,
    TaskDefaults,
    held_batches,
    pad_rows,
    step_accuracy,
)

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
TAGS: tuple[str, ...] = ("inside", "last")
MAX_CHARS = 40
TRAIN_SENTENCES = 6000
HELD_SENTENCES = 1000


def tags_of(text: str) -> list[int]:
    """1 where a letter is followed by a non-letter (or the end), 0 elsewhere."""
    out = []
    for t, c in enumerate(text):
        nxt = text[t + 1] if t + 1 < len(text) else ""
        out.append(int(c.isalpha() and not nxt.isalpha()))
    return out


def sentence(rng: np.random.Generator) -> str:
    words = []
    for _ in range(int(rng.integers(3, 8))):
        syllables = int(rng.integers(1, 4))
        words.append(
            "".join(
                CONSONANTS[int(rng.integers(len(CONSONANTS)))] + VOWELS[int(rng.integers(5))]
                for _ in range(syllables)
            )
        )
    text = " ".join(words)
    while len(text) > MAX_CHARS - 1:
        text = text[: text.rfind(" ")]
    return text + "."


def per_position_accuracy(model: CharModel, data: TaskData) -> np.ndarray:
    """Held-out accuracy at each position t of the sentence (NaN where none is that long)."""
    right = np.zeros(data.held_x.shape[1])
    total = np.zeros(data.held_x.shape[1])
    with torch.no_grad():
        for x, y in held_batches(data):
            logits, _, _ = model(x.to(model.device), None)
            pred = logits.argmax(-1).cpu()
            mask = y != IGNORE_INDEX
            T = y.shape[1]
            right[:T] += ((pred == y) & mask).sum(0).numpy()
            total[:T] += mask.sum(0).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = right / total
    return out


@torch.no_grad()
def tag_probs(model: CharModel, task: Task, text: str) -> np.ndarray:
    """(T, 2) probabilities of "inside" and "last" for every character of ``text``."""
    ids = task.encode_text(text, "sentence")
    x = torch.tensor([ids], dtype=torch.int64, device=model.device)
    logits, _, _ = model(x, None)
    probs: np.ndarray = torch.softmax(logits[0].double(), dim=-1).cpu().numpy()
    return probs


def build() -> Task:
    chars = sorted(set(CONSONANTS + VOWELS + " ."))
    inputs = (PAD, *chars)
    index = {c: i for i, c in enumerate(inputs)}

    def rows(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        x = pad_rows([[index[c] for c in t] for t in texts], 0, MAX_CHARS)
        y = pad_rows([tags_of(t) for t in texts], IGNORE_INDEX, MAX_CHARS)
        return x, y

    def make_data(seed: int) -> TaskData:
        rng = np.random.default_rng([seed, 23])
        texts = [sentence(rng) for _ in range(TRAIN_SENTENCES + HELD_SENTENCES)]
        train, held = texts[:TRAIN_SENTENCES], texts[TRAIN_SENTENCES:]
        tx, ty = rows(train)
        hx, hy = rows(held)
        items = tuple((t, "".join(str(v) for v in tags_of(t))) for t in held)
        return TaskData(tx, ty, hx, hy, items)

    # the commonest tag everywhere ("inside"): the accuracy of reading nothing
    sample = make_data(0)
    mask = sample.held_y != IGNORE_INDEX
    inside = float((sample.held_y[mask] == 0).mean()) if mask.any() else math.nan
    return Task(
        name="tagging",
        title="Is this the last letter of its word? (many to many)",
        shape="many_to_many",
        input_tokens=inputs,
        output_tokens=TAGS,
        reads="every character",
        emits="every step: a tag for the character just read",
        metric_name="held-out per-character accuracy",
        target=0.995,
        chance=inside,
        make_data=make_data,
        score=step_accuracy,
        defaults=TaskDefaults(
            kind="gru", hidden_size=32, lr=0.01, batch_size=64, max_steps=3000, val_every=50
        ),
    )

"""Many-to-one: which language is this surname? (the "classifying names with a character-level
RNN" exercise).

The names are faker's per-locale surname lists (real data that ships with the package, so
nothing is downloaded). A name is read character by character; the output at its last
character is a softmax over the languages, and only that step is scored. The same head
applied at every prefix is the belief as the characters arrive ("Sch" -> German).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from rnnviz.core.model import CharModel
from rnnviz.core.tasks.base import (
    IGNORE_INDEX,
    PAD,
    Task,
    TaskData,
    TaskDefaults,
    TaskUnavailable,
    held_batches,
    pad_rows,
    split_indices,
)

# locale -> the language shown; each list has a few hundred names or more
LANGUAGES: tuple[tuple[str, str], ...] = (
    ("de_DE", "German"),
    ("fr_FR", "French"),
    ("it_IT", "Italian"),
    ("es_ES", "Spanish"),
    ("nl_NL", "Dutch"),
    ("fi_FI", "Finnish"),
    ("sv_SE", "Swedish"),
    ("en_GB", "English"),
    ("hr_HR", "Croatian"),
)
MAX_NAME_CHARS = 24
HELD_FRACTION = 0.2
FAKER_MISSING = "the names tasks read faker's surname lists: pip install 'rnnviz[tasks]'"


def _faker_list(locale: str) -> list[str]:
    try:
        module = importlib.import_module(f"faker.providers.person.{locale}")
    except ImportError:
        raise TaskUnavailable(FAKER_MISSING) from None
    names = module.Provider.last_names
    # a tuple or list of names, or (sv_SE, en_GB, fi_FI) an OrderedDict of name -> weight
    keys = list(names.keys()) if hasattr(names, "keys") else list(names)
    return [str(k).strip() for k in keys]


@lru_cache(maxsize=1)
def surnames() -> tuple[tuple[str, int], ...]:
    """Every (surname, language index), sorted; a name found in several lists is dropped
    (its language is not a fact about the name), as is one longer than MAX_NAME_CHARS."""
    seen: dict[str, set[int]] = {}
    for li, (locale, _) in enumerate(LANGUAGES):
        for name in _faker_list(locale):
            if name and len(name) <= MAX_NAME_CHARS:
                seen.setdefault(name, set()).add(li)
    return tuple(sorted((n, next(iter(ls))) for n, ls in seen.items() if len(ls) == 1))


@dataclass(frozen=True)
class Prefixes:
    """The classifier head at every prefix of ``name``: ``probs[t]`` is the distribution over
    the languages after name[: t + 1]; the last row is the prediction."""

    name: str
    languages: tuple[str, ...]
    probs: np.ndarray  # (T, C)

    @property
    def prediction(self) -> str:
        return self.languages[int(np.argmax(self.probs[-1]))]


@torch.no_grad()
def prefix_beliefs(model: CharModel, task: Task, name: str) -> Prefixes:
    ids = task.encode_text(name, "name")
    x = torch.tensor([ids], dtype=torch.int64, device=model.device)
    logits, _, _ = model(x, None)
    probs = torch.softmax(logits[0].double(), dim=-1).cpu().numpy()
    return Prefixes(name=name, languages=task.output_tokens, probs=probs)


def _last_steps(y: torch.Tensor) -> torch.Tensor:
    """Each row's one scored step."""
    return (y != IGNORE_INDEX).int().argmax(dim=1)


@torch.no_grad()
def predictions(model: CharModel, data: TaskData) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) language index of every held-out name."""
    true, pred = [], []
    for x, y in held_batches(data):
        logits, _, _ = model(x.to(model.device), None)
        last = _last_steps(y)
        rows = torch.arange(len(y))
        true.append(y[rows, last].numpy())
        pred.append(logits[rows, last.to(logits.device)].argmax(-1).cpu().numpy())
    return np.concatenate(true), np.concatenate(pred)


def accuracy(model: CharModel, data: TaskData) -> float:
    true, pred = predictions(model, data)
    return float((true == pred).mean()) if len(true) else math.nan


def confusion(model: CharModel, data: TaskData, classes: int) -> np.ndarray:
    """(C, C) counts on the held-out names: row = true language, column = predicted."""
    true, pred = predictions(model, data)
    out = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(out, (true, pred), 1)
    return out


def build() -> Task:
    pairs = surnames()
    chars = sorted({c for n, _ in pairs for c in n})
    inputs = (PAD, *chars)
    index = {c: i for i, c in enumerate(inputs)}
    languages = tuple(lang for _, lang in LANGUAGES)
    counts = np.bincount([li for _, li in pairs], minlength=len(languages))

    def make_data(seed: int) -> TaskData:
        train_i, held_i = split_indices(len(pairs), HELD_FRACTION, seed)

        def rows(which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            xs = [[index[c] for c in pairs[i][0]] for i in which]
            x = pad_rows(xs, 0, MAX_NAME_CHARS)
            y = np.full_like(x, IGNORE_INDEX)
            for r, i in enumerate(which):
                y[r, len(pairs[i][0]) - 1] = pairs[i][1]  # the last character alone is scored
            return x, y

        tx, ty = rows(train_i)
        hx, hy = rows(held_i)
        items = tuple((pairs[i][0], languages[pairs[i][1]]) for i in held_i)
        return TaskData(tx, ty, hx, hy, items)

    return Task(
        name="names",
        title="Which language is this surname? (many to one)",
        shape="many_to_one",
        input_tokens=inputs,
        output_tokens=languages,
        reads="every character of the name",
        emits="the last step only: a softmax over the languages",
        metric_name="held-out accuracy",
        target=0.70,
        chance=float(counts.max() / counts.sum()),
        make_data=make_data,
        score=accuracy,
        defaults=TaskDefaults(
            kind="gru", hidden_size=128, lr=0.005, batch_size=64, max_steps=4000, val_every=100
        ),
    )

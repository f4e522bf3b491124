"""The learning film: what each stored snapshot predicted for every character of the probe.

One row per snapshot of the timeline: for each position t of the probe string, the model's
most likely next character (top-1) and the probability it gave the character that really
follows. Read top to bottom, the rows show which characters the model learnt first (the
space after "the", then "e" after "th", ...), Karpathy's samples at iteration 100, 300, ...
as one picture.

A row is one forward pass, no gradient flow: about T (H^2 + H V) multiply-adds, so a film of
160 snapshots of a 100-character text at hidden 256 is a few hundred milliseconds; the GUI
computes it on a thread and keeps the rows of unchanged snapshots (:class:`FilmCache`).
torch is imported by :func:`film_row` only: the window builds its cache before torch loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rnnviz.core.config import ModelConfig
from rnnviz.core.messages import frozen_array
from rnnviz.core.vocab import Vocab


@dataclass(frozen=True)
class FilmRow:
    """One snapshot's predictions of the probe text."""

    step: int
    top1: np.ndarray  # (T,) int64: the most likely next token after each character
    p_true: np.ndarray  # (T,) the probability of the character that follows; NaN at the end
    # (the last character has no next one)


def film_row(
    config: ModelConfig,
    vocab: Vocab,
    step: int,
    params: Mapping[str, np.ndarray],
    text: str,
) -> FilmRow:
    """The row of the snapshot ``params`` (taken after ``step``) for ``text``."""
    import torch

    from rnnviz.core.probe import _encode, _forward, model_from_params

    if not text:
        empty = np.zeros(0)
        return FilmRow(step, frozen_array(empty, np.int64), frozen_array(empty, np.float64))
    model = model_from_params(config, len(vocab), dict(params))
    ids_np = _encode(vocab, text)
    ids = torch.from_numpy(ids_np)
    with torch.no_grad():
        logits, _, _ = _forward(model, ids)
    probs = torch.softmax(logits.double(), dim=-1)
    top1 = torch.argmax(probs, dim=-1).numpy()
    p_true = np.full(len(ids_np), np.nan)
    if len(ids_np) > 1:
        p_true[:-1] = probs[:-1].gather(1, ids[1:, None])[:, 0].numpy()
    return FilmRow(step, frozen_array(top1, np.int64), frozen_array(p_true, np.float64))


class FilmCache:
    """The rows computed for one text and one model, by step; a new text or model empties it."""

    def __init__(self) -> None:
        self._key: tuple[str, ModelConfig, tuple[str, ...]] | None = None
        self._rows: dict[int, FilmRow] = {}

    def use(self, text: str, config: ModelConfig, vocab_tokens: tuple[str, ...]) -> None:
        key = (text, config, tuple(vocab_tokens))
        if key != self._key:
            self._key = key
            self._rows = {}

    def missing(self, steps: list[int]) -> list[int]:
        """The steps of ``steps`` that have no row yet, newest first (the film fills from
        the model a student is looking at)."""
        return [s for s in reversed(steps) if s not in self._rows]

    def put(self, row: FilmRow) -> None:
        self._rows[row.step] = row

    def rows(self, steps: list[int]) -> list[FilmRow | None]:
        """The row of each step, None where it is not computed yet; rows of steps no longer
        stored are dropped."""
        keep = set(steps)
        for step in [s for s in self._rows if s not in keep]:
            del self._rows[step]
        return [self._rows.get(s) for s in steps]

    def forget_after(self, step: int) -> None:
        """A rollback re-trains the steps after ``step``: their rows are stale."""
        for s in [s for s in self._rows if s > step]:
            del self._rows[s]

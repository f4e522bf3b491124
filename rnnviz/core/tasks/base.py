"""What a task declares, and the parts every task shares.

A task is the slide's table of applications made trainable: its shape (which steps read an
input and which give an output), its tokens, its data (a pure function of a seed, split into
training and held-out examples), its loss and its metric. The trainer (core.trainer) trains
every task with the language model's step (clipping telemetry, gradient norms, the non-finite
guard): a task only hands it a ``Batches`` (``TaskBatches``), a loss and a metric.

Every example is a row of input ids ``x`` and target ids ``y`` of the same length; a step
with no output has the target ``IGNORE_INDEX``, which the cross-entropy skips. So the
many-to-one task scores the last character only, and the padding of a short row scores
nothing. Input id 0 is the padding (``PAD``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from rnnviz.core.config import TrainConfig
from rnnviz.core.trainer import IGNORE_INDEX

if TYPE_CHECKING:
    from rnnviz.core.model import CharModel

Shape = Literal["many_to_one", "one_to_many", "many_to_many", "encoder_decoder"]
SHAPES: tuple[str, ...] = ("many_to_one", "one_to_many", "many_to_many", "encoder_decoder")
PAD = "<pad>"
# the rows of one held-out forward pass
EVAL_ROWS = 2048

__all__ = ["IGNORE_INDEX", "PAD", "SHAPES", "Task", "TaskData", "TaskBatches", "TaskInputError"]


class TaskInputError(ValueError):
    """A task's input the model cannot read (empty, characters outside its vocabulary);
    the message is one line, shown as is."""


class TaskUnavailable(RuntimeError):
    """A task whose data needs a package that is not installed; the message says which."""


@dataclass(frozen=True)
class TaskData:
    """A task's examples: ``x`` input ids and ``y`` targets, (N, T) int64, for training and
    held out (held-out examples are never trained on). ``held_items``: each held-out example
    as (input text, expected output text), for a confusion matrix or a translation check."""

    train_x: np.ndarray
    train_y: np.ndarray
    held_x: np.ndarray
    held_y: np.ndarray
    held_items: tuple[tuple[str, str], ...] = ()
    # cut a batch's trailing columns of padding (every task but the encoder-decoder, whose
    # decoder starts at a fixed column)
    trim: bool = True


@dataclass(frozen=True)
class TaskDefaults:
    """The hyperparameters that reach the task's target in under a minute on two cores
    (``rnnviz bench --tasks`` measures them)."""

    kind: str = "gru"
    hidden_size: int = 64
    lr: float = 0.01
    optimizer: str = "adam"
    batch_size: int = 128
    clip_theta: float = 1.0
    max_steps: int = 3000
    val_every: int = 50


@dataclass(frozen=True)
class Task:
    """One task: what it reads and writes, its data, loss and metric (module doc).

    ``input_tokens[i]`` is input id i (0 is ``PAD``); ``output_tokens[j]`` is what output j
    means (a class, a character, an end token). ``reads`` and ``emits`` say which steps take
    an input and which give an output, in the slide's words.
    """

    name: str
    title: str
    shape: Shape
    input_tokens: tuple[str, ...]
    output_tokens: tuple[str, ...]
    reads: str
    emits: str
    metric_name: str
    target: float
    # the metric of a guess that reads nothing (the majority class, the commonest tag)
    chance: float
    make_data: Callable[[int], TaskData] = field(repr=False, compare=False)
    score: Callable[[CharModel, TaskData], float] = field(repr=False, compare=False)
    defaults: TaskDefaults = TaskDefaults()
    loss_name: str = "cross-entropy over the steps that give an output"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def input_size(self) -> int:
        return len(self.input_tokens)

    @property
    def output_size(self) -> int:
        return len(self.output_tokens)

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy over the steps with an output (``IGNORE_INDEX`` elsewhere)."""
        return task_loss(logits, targets)

    def data(self, seed: int) -> TaskData:
        return self.make_data(seed)

    def char_index(self) -> dict[str, int]:
        """Input id of every one-character input token (the padding and markers left out)."""
        return {t: i for i, t in enumerate(self.input_tokens) if len(t) == 1}

    def encode_text(self, text: str, what: str = "input") -> list[int]:
        """The input ids of ``text``; TaskInputError naming what it cannot read."""
        if not text:
            raise TaskInputError(f"the {self.name} task's {what} is empty")
        index = self.char_index()
        unknown = list(dict.fromkeys(c for c in text if c not in index))
        if unknown:
            shown = ", ".join(repr(c) for c in unknown)
            which = "it is" if len(unknown) == 1 else "they are"
            raise TaskInputError(
                f"the {what} has {shown}: {which} not in the {self.name} task's vocabulary"
            )
        return [index[c] for c in text]


def task_loss(logits: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


def pad_rows(rows: list[list[int]], fill: int, width: int | None = None) -> np.ndarray:
    """``rows`` right-padded with ``fill`` to one width, (N, T) int64."""
    T = width if width is not None else max((len(r) for r in rows), default=1)
    out = np.full((len(rows), max(T, 1)), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def split_indices(n: int, held_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of range(n) into training and held-out indices (both sorted)."""
    order = np.random.default_rng([seed, 17]).permutation(n)
    held = max(1, int(round(n * held_fraction)))
    return np.sort(order[held:]), np.sort(order[:held])


def _trimmed(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the trailing columns where no row has an input or a target."""
    used = (x != 0) | (y != IGNORE_INDEX)
    cols = np.flatnonzero(used.any(axis=0))
    T = int(cols[-1]) + 1 if len(cols) else 1
    return x[:, :T], y[:, :T]


class TaskBatches:
    """A task's examples as the trainer's ``Batches``: batch (epoch, i) is a pure function of
    (seed, epoch, i), every batch starts from the zero (or the task's own) state."""

    def __init__(self, data: TaskData, cfg: TrainConfig) -> None:
        self.data = data
        self.cfg = cfg
        n = len(data.train_x)
        self.batch_size = min(cfg.batch_size, n)
        self._steps = max(1, n // self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        return self._steps

    def _rows(self, epoch: int, index: int) -> np.ndarray:
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.data.train_x))
        start = index * self.batch_size
        return order[start : start + self.batch_size]

    def batch(self, epoch: int, index: int) -> tuple[Tensor, Tensor]:
        rows = self._rows(epoch, index)
        x, y = self.data.train_x[rows], self.data.train_y[rows]
        if self.data.trim:
            x, y = _trimmed(x, y)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))

    def continues_state(self, index: int) -> bool:
        return False

    def val_batches(self) -> list[tuple[Tensor, Tensor]]:
        return list(held_batches(self.data))


def held_batches(data: TaskData, rows: int = EVAL_ROWS) -> list[tuple[Tensor, Tensor]]:
    out = []
    for start in range(0, len(data.held_x), rows):
        x, y = data.held_x[start : start + rows], data.held_y[start : start + rows]
        if data.trim:
            x, y = _trimmed(x, y)
        out.append((torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.copy())))
    return out


@torch.no_grad()
def step_accuracy(model: CharModel, data: TaskData) -> float:
    """Top-1 accuracy over every held-out step that has a target."""
    right = total = 0
    for x, y in held_batches(data):
        logits, _, _ = model(x.to(model.device), None)
        mask = y != IGNORE_INDEX
        pred = logits.argmax(-1).cpu()
        right += int((pred[mask] == y[mask]).sum())
        total += int(mask.sum())
    return right / total if total else math.nan

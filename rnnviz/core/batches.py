"""Minibatches of (input, next-character) windows, as in d2l's ``TimeMachine`` data module.

The token stream is split once: the first ``1 - val_fraction`` trains, the rest validates.
``batch(epoch, index)`` is a pure function of ``(cfg.seed, epoch, index)``; the epoch's
window order comes from ``np.random.default_rng([seed, epoch])``, so a run resumed from a
checkpoint at (epoch, index) sees exactly the batches it would have seen.

* ``random``: every offset of the training split starts a window of ``num_steps + 1`` tokens
  (overlapping, like d2l). Each epoch draws ``windows_per_epoch`` distinct starts in a
  seeded random order and serves them ``batch_size`` at a time; consecutive batches are
  unrelated, so the trainer starts each one from a fresh hidden state.
* ``sequential`` (d2l's ``seq_data_iter_sequential``): the training split is cut into
  ``batch_size`` contiguous streams; batch i holds chunk i of every stream, so row r of batch
  i+1 continues row r of batch i and the trainer carries the (detached) state across. Each
  epoch starts the chunks at a seeded random offset. Where an epoch is capped by
  ``windows_per_epoch`` to fewer chunks than the streams hold, the offset ranges over the
  whole stream, so successive epochs still visit all of the text (d2l, which always runs
  whole streams, only needs an offset below ``num_steps``).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from rnnviz.core.config import TrainConfig
from rnnviz.core.corpus import CorpusError


class Batches(Protocol):
    """What the trainer reads: a BatchSource, or one process's share of one
    (core.distributed.ShardedBatches) when several train data parallel."""

    @property
    def steps_per_epoch(self) -> int: ...

    def batch(self, epoch: int, index: int) -> tuple[Tensor, Tensor]: ...

    def continues_state(self, index: int) -> bool: ...

    def val_batches(self) -> list[tuple[Tensor, Tensor]]: ...


class BatchSource:
    def __init__(self, ids: np.ndarray, cfg: TrainConfig, val_fraction: float) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"token ids must be one-dimensional, not shape {ids.shape}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), not {val_fraction}")
        self.cfg = cfg
        T = cfg.num_steps
        n_train = int(len(ids) * (1.0 - val_fraction))
        self.train_ids = ids[:n_train]
        self.val_ids = ids[n_train:]
        need = T + 1
        for split, part in (("training", self.train_ids), ("validation", self.val_ids)):
            if len(part) < need:
                raise CorpusError(
                    f"the {split} split has {len(part):,} characters "
                    f"({len(ids):,} in all, {val_fraction:.0%} held out for validation); one "
                    f"window needs at least num_steps+1 = {need:,}. Use a longer text or a "
                    "smaller num_steps."
                )
        self.notes: list[str] = []
        self._epoch: int | None = None
        self._order = np.empty(0, dtype=np.int64)  # random: window starts of self._epoch
        self._offset = 0  # sequential: first column of self._epoch
        self._val: list[tuple[Tensor, Tensor]] | None = None
        self._steps = np.arange(T + 1, dtype=np.int64)
        if cfg.partition == "random":
            self.n_windows = len(self.train_ids) - T
            self.rows = min(cfg.batch_size, self.n_windows)
            per_epoch = min(cfg.windows_per_epoch, self.n_windows)
            self.steps_per_epoch = math.ceil(per_epoch / cfg.batch_size)
        else:
            # Every stream must hold at least one chunk plus its one-token look-ahead; a
            # short split gets fewer streams rather than no training at all.
            self.rows = min(cfg.batch_size, (len(self.train_ids) - 1) // T)
            if self.rows < cfg.batch_size:
                self.notes.append(
                    f"the training split ({len(self.train_ids):,} characters) holds only "
                    f"{self.rows} sequential streams of num_steps={T}, so batches have "
                    f"{self.rows} rows instead of {cfg.batch_size}"
                )
            stream_len = (len(self.train_ids) - 1) // self.rows
            span = self.rows * stream_len
            self._xs = self.train_ids[:span].reshape(self.rows, stream_len)
            self._ys = self.train_ids[1 : span + 1].reshape(self.rows, stream_len)
            chunks = stream_len // T
            self.steps_per_epoch = min(chunks, math.ceil(cfg.windows_per_epoch / self.rows))
            self.n_windows = self.rows * chunks
            self._slack = stream_len - self.steps_per_epoch * T

    def _prepare(self, epoch: int) -> None:
        if epoch == self._epoch:
            return
        rng = np.random.default_rng([self.cfg.seed, epoch])
        if self.cfg.partition == "random":
            size = min(self.cfg.windows_per_epoch, self.n_windows)
            # choice without replacement draws a sample without permuting all n starts,
            # which matters for a 50 MB corpus and 10,000 windows an epoch.
            self._order = rng.choice(self.n_windows, size=size, replace=False).astype(np.int64)
        else:
            self._offset = int(rng.integers(0, self._slack + 1))
        self._epoch = epoch

    def batch(self, epoch: int, index: int) -> tuple[Tensor, Tensor]:
        """X, Y int64 of shape (B, num_steps), Y[:, t] the character after X[:, t]."""
        if epoch < 0 or not 0 <= index < self.steps_per_epoch:
            raise IndexError(f"batch ({epoch}, {index}) is outside 0..{self.steps_per_epoch - 1}")
        self._prepare(epoch)
        T = self.cfg.num_steps
        if self.cfg.partition == "random":
            B = self.cfg.batch_size
            starts = self._order[index * B : (index + 1) * B]
            windows = self.train_ids[starts[:, None] + self._steps]
            return torch.from_numpy(windows[:, :-1].copy()), torch.from_numpy(windows[:, 1:].copy())
        col = self._offset + index * T
        x = np.ascontiguousarray(self._xs[:, col : col + T])
        y = np.ascontiguousarray(self._ys[:, col : col + T])
        return torch.from_numpy(x), torch.from_numpy(y)

    def continues_state(self, index: int) -> bool:
        """Whether batch ``index`` continues the rows of batch ``index - 1``."""
        return self.cfg.partition == "sequential" and index > 0

    def val_batches(self) -> list[tuple[Tensor, Tensor]]:
        """Non-overlapping windows from the start of the validation split, at most
        ``val_windows`` of them, ``batch_size`` per batch; the same on every call."""
        if self._val is None:
            T, B = self.cfg.num_steps, self.cfg.batch_size
            n = min((len(self.val_ids) - 1) // T, self.cfg.val_windows)
            starts = np.arange(n, dtype=np.int64) * T
            windows = self.val_ids[starts[:, None] + self._steps]
            X = torch.from_numpy(windows[:, :-1].copy())
            Y = torch.from_numpy(windows[:, 1:].copy())
            self._val = [(X[i : i + B], Y[i : i + B]) for i in range(0, n, B)]
        return list(self._val)

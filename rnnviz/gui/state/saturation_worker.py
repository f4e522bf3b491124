"""The gate-saturation panel's data: a validation batch, a thread, and what to compute when.

Karpathy, Johnson & Fei-Fei (2015) place every unit of a gate by the fraction of steps it is
left-saturated (< 0.1) and right-saturated (> 0.9) on validation text (``core.gates``). Here:

- **The batch.** The GUI process has no corpus: the engine loads it, and no message carries
  its text. :func:`validation_batch` loads it as the engine does (``core.runs.build_run``:
  ``load_corpus`` with the run's corpus settings and seed, encoded with the run's vocabulary,
  split by ``BatchSource``) and takes ``VALIDATION_ROWS`` of the very windows the engine
  computes the validation perplexity on, evenly spread over them. Made once per run, on the
  thread (a built-in corpus loads in ~0.15 s from its cache; the engine has fetched a
  download already). A user's file that changed on disk since the engine read it gives
  another batch; nothing else does.
- **The thread.** A forward pass of the batch through a copy of the model built from the
  snapshot's parameters: ~100 ms for an LSTM at hidden 256 on one core, too long for the GUI
  thread. Newest job wins, as on the film's thread.
- **When.** :class:`SaturationFeed` follows the model the probe panels show
  (``AppState.shown_snapshot``): at most one job per ``REFRESH_INTERVAL_S``, none while the
  panel is off screen (``on_screen``, the window's word). Results are kept by step for the
  run (``KEPT_RESULTS``); the trail of the model shown is the ``TRAIL_LENGTH`` results kept
  before its step, so it always runs back in training time, and scrubbing back to a step
  computed before costs nothing.

QtCore only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from rnnviz.core.config import RunConfig
from rnnviz.core.messages import ParamSnapshot, RunInfo
from rnnviz.gui.state.app_state import AppState
from rnnviz.gui.state.latest_job import LatestJobThread

VALIDATION_ROWS = 64  # validation sequences in the batch (each num_steps characters)
REFRESH_INTERVAL_S = 1.0  # the least time between two computations
TRAIL_LENGTH = 5  # earlier positions drawn behind each unit's dot
KEPT_RESULTS = 256  # results kept per run (a few KiB each), the oldest steps dropped first
GATED_KINDS = ("gru", "lstm")


def validation_batch(
    config: RunConfig, vocab_tokens: Sequence[str], rows: int = VALIDATION_ROWS
) -> np.ndarray:
    """(B, num_steps) int64: ``rows`` of the run's validation windows (``BatchSource``'s, the
    ones the engine's validation perplexity reads), evenly spread; fewer if there are fewer."""
    from rnnviz.core.batches import BatchSource
    from rnnviz.core.corpus import load_corpus
    from rnnviz.core.vocab import Vocab

    corpus = load_corpus(config.corpus, seed=config.train.seed)
    ids = Vocab(vocab_tokens).encode(corpus.text)
    windows = BatchSource(ids, config.train, config.corpus.val_fraction).val_batches()
    X = np.concatenate([x.numpy() for x, _ in windows])
    picks = np.unique(np.linspace(0, len(X) - 1, min(rows, len(X))).round().astype(np.int64))
    out = np.ascontiguousarray(X[picks])
    out.flags.writeable = False
    return out


def _batch_key(config: RunConfig, vocab_tokens: Sequence[str]) -> tuple[object, ...]:
    t = config.train
    return (config.corpus, t.seed, t.num_steps, t.val_windows, tuple(vocab_tokens))


@dataclass(frozen=True)
class SaturationJob:
    key: object  # handed back with the result: the feed drops results of an older run
    step: int
    config: RunConfig
    vocab_tokens: tuple[str, ...]
    params: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class SaturationResult:
    """One model's saturation on the run's validation batch, every stacked layer's."""

    key: object
    step: int
    kind: str  # "lstm" | "gru"
    # per stacked layer, bottom first: gate letter ("f") -> core.gates.Saturation, in
    # PyTorch's order
    layers: tuple[Mapping[str, Any], ...]
    rows: int  # validation sequences read
    num_steps: int  # characters each
    seconds: float  # the thread's time for it, model and batch included
    # a bidirectional model's reverse direction, as ``layers`` (None: one direction); the
    # forward one is ``layers``, so a one-direction result reads as before
    reverse: tuple[Mapping[str, Any], ...] | None = None

    @property
    def bidirectional(self) -> bool:
        return self.reverse is not None

    @property
    def gates(self) -> Mapping[str, Any]:
        """The top layer's (the one the output reads; the only one of a one-layer model)."""
        return self.layers[-1]

    def layer(self, layer: int, direction: str = "forward") -> Mapping[str, Any]:
        """Stacked layer ``layer``'s (from 0, the bottom one); the top one's if it has fewer.
        ``direction``: "reverse" of a bidirectional result (a one-direction one has only its
        forward one, which it gives)."""
        layers = (
            self.reverse if direction == "reverse" and self.reverse is not None else self.layers
        )
        return layers[layer] if 0 <= layer < len(layers) else layers[-1]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.gates)

    @property
    def units(self) -> int:
        return len(next(iter(self.gates.values())).left)


def compute(job: SaturationJob, batch: np.ndarray) -> SaturationResult:
    """The saturation of the job's model on ``batch`` (torch imported here)."""
    from rnnviz.core.gates import SIGMOID_GATES, gate_key, model_saturation
    from rnnviz.core.probe import model_from_params

    start = time.perf_counter()
    model = model_from_params(job.config.model, len(job.vocab_tokens), dict(job.params))
    by_key = model_saturation(model, np.array(batch))  # torch wants a writable array
    kind = job.config.model.kind

    def of(direction: str) -> tuple[Mapping[str, Any], ...]:
        return tuple(
            {name: by_key[gate_key(layer, direction, name)] for name in SIGMOID_GATES[kind]}
            for layer in range(job.config.model.num_layers)
        )

    return SaturationResult(
        job.key,
        job.step,
        kind,
        of("forward"),
        int(batch.shape[0]),
        int(batch.shape[1]),
        time.perf_counter() - start,
        # the same pass counted both directions (core.gates keys them apart)
        of("reverse") if job.config.model.bidirectional else None,
    )


class SaturationWorker(LatestJobThread[SaturationJob]):
    done = Signal(object)  # SaturationResult
    failed = Signal(object, str)  # (job key, message)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("rnnviz saturation thread", parent)
        self._batch_key: tuple[object, ...] | None = None  # touched by the thread only
        self._batch: np.ndarray | None = None

    def _batch_for(self, job: SaturationJob) -> np.ndarray:
        key = _batch_key(job.config, job.vocab_tokens)
        if key != self._batch_key or self._batch is None:
            self._batch = validation_batch(job.config, job.vocab_tokens)
            self._batch_key = key
        return self._batch

    def work(self, job: SaturationJob) -> None:
        try:
            self.done.emit(compute(job, self._batch_for(job)))
        except Exception as exc:  # a failed batch must never take the window down
            self.failed.emit(job.key, f"{type(exc).__name__}: {exc}")


class SaturationFeed(QObject):
    """What the saturation panel shows, following the model the probe panels show.

    ``shown(result, trail)``: the result of the model shown (None: none yet, or not a gated
    model) and up to TRAIL_LENGTH results of earlier steps, oldest first. ``kind_changed``:
    the run's model kind (the panel explains itself for the plain RNN).
    """

    shown = Signal(object, object)  # SaturationResult | None, tuple[SaturationResult, ...]
    kind_changed = Signal(str)
    failed = Signal(str)

    def __init__(
        self,
        state: AppState,
        parent: QObject | None = None,
        *,
        interval_s: float = REFRESH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(parent)
        self._state = state
        self._interval_s = interval_s
        self._clock = clock
        # the window's word: the panel is on screen (not behind a tab, not hidden)
        self.on_screen: Callable[[], bool] = lambda: False
        self._kind = state.config.model.kind
        self._run = 0  # results of an older run are dropped
        self._results: dict[int, SaturationResult] = {}
        self._submitted: tuple[int, int] | None = None  # (run, step) on the thread
        self._last_submit: float | None = None
        self._shown_step: int | None = None
        self._failure = ""
        self.worker = SaturationWorker(self)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        state.run_info_changed.connect(self._on_run_info)
        state.snapshot_changed.connect(self._on_snapshot)
        state.view_changed.connect(lambda _snap: self.refresh())
        state.timeline_changed.connect(self._on_timeline)

    # ---------------------------------------------------------------- read by the window

    def kind(self) -> str:
        return self._kind

    def gated(self) -> bool:
        return self._kind in GATED_KINDS

    def result(self, step: int) -> SaturationResult | None:
        return self._results.get(step)

    def trail(self, step: int) -> tuple[SaturationResult, ...]:
        """Up to TRAIL_LENGTH results kept before ``step``, oldest first."""
        earlier = sorted(s for s in self._results if s < step)[-TRAIL_LENGTH:]
        return tuple(self._results[s] for s in earlier)

    def done(self) -> bool:
        """Nothing left to compute for the model shown: its result is shown, or it has none
        (no model, the plain RNN, a failure). Tests and the screenshot wait for it."""
        target = self._state.shown_snapshot
        if target is None or not self.gated() or self._failure:
            return True
        return self._shown_step == target.step and self.worker.idle()

    # ---------------------------------------------------------------- the state

    @Slot(object)
    def _on_run_info(self, info: RunInfo) -> None:
        self._run += 1
        self._results.clear()
        self._shown_step = None
        self._failure = ""
        self._timer.stop()
        kind = info.config.model.kind
        if kind != self._kind:
            self._kind = kind
            self.kind_changed.emit(kind)
        self.shown.emit(None, ())

    @Slot(object)
    def _on_snapshot(self, _snapshot: ParamSnapshot) -> None:
        if self._state.live:
            self.refresh()

    @Slot()
    def _on_timeline(self) -> None:
        # a rollback: the steps after the newest stored snapshot were abandoned
        newest = self._state.snapshots.newest()
        if newest is not None:
            for step in [s for s in self._results if s > newest.step]:
                del self._results[step]

    # ---------------------------------------------------------------- computing

    @Slot()
    def refresh(self) -> None:
        """Show the result of the model shown; compute it if it has none (on the thread, at
        most once per interval, only while on screen)."""
        target = self._state.shown_snapshot
        if target is None or not self.gated() or self._failure or not self.on_screen():
            return
        if target.config.model.kind != self._kind:  # a snapshot of the run before
            return
        cached = self._results.get(target.step)
        if cached is not None:
            self._show(cached)
            return
        if self._submitted == (self._run, target.step):
            return  # on the thread: its result is shown when it comes
        now = self._clock()
        if self._last_submit is not None and now - self._last_submit < self._interval_s:
            if not self._timer.isActive():
                wait = self._interval_s - (now - self._last_submit)
                self._timer.start(max(1, int(wait * 1000)))
            return
        self._last_submit = now
        self._submitted = (self._run, target.step)
        self.worker.submit(
            SaturationJob(
                self._run,
                target.step,
                target.config,
                tuple(target.vocab_tokens),
                target.params,
            )
        )

    def _show(self, result: SaturationResult) -> None:
        self._shown_step = result.step
        self.shown.emit(result, self.trail(result.step))

    @Slot(object)
    def _on_done(self, result: SaturationResult) -> None:
        if self._submitted == (result.key, result.step):
            self._submitted = None
        if result.key != self._run:
            return
        self._failure = ""
        self._results[result.step] = result
        while len(self._results) > KEPT_RESULTS:
            del self._results[min(self._results)]
        target = self._state.shown_snapshot
        if target is not None and target.step == result.step:
            self._show(result)
        else:
            self.refresh()  # the model shown moved on while this one was computed

    @Slot(object, str)
    def _on_failed(self, key: object, message: str) -> None:
        self._submitted = None
        if key == self._run:
            self._failure = message
            self.failed.emit(message)

    def stop(self) -> None:
        self._timer.stop()
        self.worker.stop()

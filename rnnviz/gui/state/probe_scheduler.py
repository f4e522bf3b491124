"""The probe scheduler: the probe text and the newest snapshot in, probe results out.

It decides when to probe, on which model, and where: inline on the GUI thread (keystrokes,
small probes, anything while paused) or on the probe thread (large re-probes while training).

* A keystroke is answered at once on the model already on screen: a ``core.probe.Prober``
  recomputes only the steps after the first changed character, so a key typed at the end
  costs one forward step and one row of the gradient flow.
* A new snapshot while training is re-probed at most every ``min_interval_s`` (longer when
  the probe is slow, so re-probing never takes most of a core), and not while the user types:
  a re-probe computing when a key comes holds the key back, since both threads share the GIL
  and the one core the engine leaves. The model on screen is never older than
  ``max_stale_s`` meanwhile.
* A re-probe larger than ``inline_work`` multiply-adds, or an edit larger than
  ``key_thread_work`` (a long paste), runs on the probe thread so the window stays live. A
  newer text cancels a re-probe there; an edit there goes on (keys typed meanwhile wait for it
  and then reuse what it computed).
* A snapshot the user chose on the timeline (or Live) is probed at once, as a keystroke is:
  inline unless it is larger than ``key_thread_work``. The Probers of the last few chosen
  snapshots are kept, so scrubbing back and forth over them costs no forward pass; and once
  a chosen snapshot is shown, its neighbours on the timeline (``neighbours``, which the window
  sets) are probed ahead on the probe thread while it is idle, so that [ and ] find their
  answers computed. A prefetch is never shown, and any probe the user waits for cancels it.
  Once the user has moved the timeline, the probe thread goes on, while idle, to every other
  stored snapshot, nearest first (``fill_order``), until the kept Probers reach
  ``KEPT_BYTES``: a jump anywhere on the timeline, or a click on a film row, then costs the
  panels' paint alone. Their models share the snapshot store's arrays, so a kept Prober costs
  its probe's arrays, not a copy of the weights. While training this costs the probe thread
  one probe per stored snapshot (~6 ms each at 100 characters, hidden 256, on the core the
  engine leaves) and then one per snapshot stored since: nothing re-probes the live model
  meanwhile, since the panels show the past one.
* While paused, a probe larger than ``paused_thread_work`` runs there too, on both cores (the
  engine's is idle): a long paste with the gradient flow, a large model's first probe. Inline
  it froze the window for seconds, and two torch threads on the GUI thread spin at every op
  when another process holds the second core. A re-probe's result is then shown one panel
  per redraw tick; an edit's at once, as every keystroke's.

The clock is injectable, so the scheduling rules are tested with a fake clock and no engine.
QtCore only.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from rnnviz.core.messages import ParamSnapshot
from rnnviz.gui.state.probe_worker import ProbeJob, ProbeWorker


@dataclass(frozen=True)
class ProbeTiming:
    """The scheduler's constants (see the module doc for what each one trades)."""

    min_interval_s: float = 0.25  # while training: at most ~4 re-probes per second
    cost_factor: float = 4.0  # ... and at most a quarter of the time probing
    inline_work: int = 20_000_000  # multiply-adds: a re-probe above this goes to the thread
    key_thread_work: int = 2_000_000_000  # an edit above this goes to the thread
    two_threads_work: int = 100_000_000  # while paused, a probe above this uses both cores
    paused_thread_work: int = 100_000_000  # while paused, a probe above this: the thread
    typing_priority_s: float = 0.04  # after a key, metric panels wait this long to redraw
    # ... and this long after its panels are set (a redraw in the pass that paints them made
    # a scrub that took longer than typing_priority_s paint a metric panel too)
    shown_paint_s: float = 0.02
    typing_quiet_s: float = 0.4  # a re-probe waits for a pause in the typing this long
    max_stale_s: float = 2.0  # ... but the model on screen is never older than this
    typing_metric_interval_s: float = 0.25  # while typing, a metric panel redraws this often


PAUSED_THREADS = min(2, os.cpu_count() or 1)
KEPT_PROBERS = 8  # models of recently shown snapshots, kept whatever their size
# ... and more, up to this many bytes of probe arrays: at 100 characters and hidden 256 a
# kept Prober holds about 0.2 MB, so the whole timeline (209 snapshots at that size) fits
KEPT_BYTES = 64 << 20

_torch_threads = 0  # what this process last set (0: not yet)


def use_torch_threads(n: int) -> None:
    """One torch thread while the engine trains on the other core (a second OpenMP thread here
    waits on it at every op); both cores while paused."""
    global _torch_threads
    if n != _torch_threads:
        import torch

        torch.set_num_threads(n)
        _torch_threads = n


def snapshot_model(snapshot: ParamSnapshot) -> Any:
    """A CPU model in eval mode on ``snapshot``'s own arrays, not a copy of them (the probes
    only read it: ``core.probe.model_from_params(share=True)``)."""
    from rnnviz.core.probe import model_from_params

    return model_from_params(
        snapshot.config.model, len(snapshot.vocab_tokens), dict(snapshot.params), share=True
    )


def _prober_bytes(snapshot: ParamSnapshot, text: str) -> int:
    """About what a Prober of ``snapshot`` holds once it has probed ``text`` (its model's
    weights are the snapshot's): logits, hidden states, the gradient flow, the no-recurrence
    table and, for a gated model, its cell and gate arrays (a generous count)."""
    T, H = len(text), snapshot.config.model.hidden_size
    V = len(snapshot.vocab_tokens)
    per_step = H * (1 + {"lstm": 6, "gru": 4}.get(snapshot.config.model.kind, 0)) + V
    return 4 * (T * per_step + T * T + V * V) + 16_384


@dataclass(frozen=True)
class ProbeTag:
    """The scheduler's note on a request: how to show the answer, and the model, vocabulary
    and snapshot it came from (the step view recomputes a step on the same model)."""

    staggered: bool
    keystroke: bool
    model: Any
    vocab: Any
    snapshot: ParamSnapshot | None
    prefetch: bool = False  # computed ahead for the timeline: kept, not shown


@dataclass(frozen=True)
class ShownProbe:
    """A probe result as shown, with what it was computed on."""

    result: Any  # core.probe.ProbeResult, or None for an empty text
    model: Any
    vocab: Any
    snapshot: ParamSnapshot | None
    staggered: bool = False


class ProbeScheduler(QObject):
    """Probes ``text`` on ``snapshot`` when and where the rules in the module doc say."""

    shown = Signal(object)  # ShownProbe: a new result to show
    failed = Signal(str)  # why a probe failed

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        timing: ProbeTiming | None = None,
    ) -> None:
        super().__init__(parent)
        self.clock = clock
        self.timing = timing or ProbeTiming()
        self._text = ""
        self._snapshot: ParamSnapshot | None = None
        self._training = False
        self._grad_flow_wanted = False
        # the model keystrokes are probed on, and its Prober (which keeps the unchanged prefix)
        self._prober: Any = None
        self._model: Any = None
        self._vocab: Any = None
        self._model_snapshot: ParamSnapshot | None = None
        # Probers of recently shown snapshots, by id(snapshot) (the snapshot is held with it,
        # so the id stays its own); one handed to the probe thread is taken out meanwhile
        # (snapshot, its Prober, the text it probed, about how many bytes that holds)
        self._kept: OrderedDict[int, tuple[ParamSnapshot, Any, str, int]] = OrderedDict()
        self._kept_bytes = 0
        self._chosen_waits = False  # a chosen snapshot waits for an edit on the probe thread
        # the timeline's snapshots beside one (the window's; none: no prefetching)
        self.neighbours: Callable[[ParamSnapshot], list[ParamSnapshot]] = lambda _s: []
        self._ahead: list[ParamSnapshot] = []  # snapshots still to probe ahead
        # every stored snapshot, nearest to one first (the window's; none: no filling)
        self.fill_order: Callable[[ParamSnapshot], list[ParamSnapshot]] = lambda _s: []
        self._filling = False  # the user scrubbed to a past model: fill the kept Probers
        # the window's word: the panels show the newest model (Live), which no fill helps
        self.live: Callable[[], bool] = lambda: True
        self._prefetching = False  # the probe thread computes one of them
        self._prefetch_soon = QTimer(self)
        self._prefetch_soon.setSingleShot(True)
        self._prefetch_soon.setInterval(30)  # after the paint of what the user asked for
        self._prefetch_soon.timeout.connect(self._prefetch_next)
        self._shown: ShownProbe | None = None
        self.error = ""
        self._ticket = 0  # of the last request
        self._shown_ticket = 0  # of the result on screen
        self._reprobe_cost_s = 0.0  # what the last whole-text probe took
        self._last_probe_time = -float("inf")
        self.last_key_time = -float("inf")
        self._last_scrub_time = -float("inf")
        self.typing_until = -float("inf")  # until then metric panels leave the loop to typing
        self._stopped = False
        self.worker = ProbeWorker(self)
        self.worker.done.connect(self._on_worker_done)
        self._soon = QTimer(self)  # keystrokes of one pass of the event loop: one probe
        self._soon.setSingleShot(True)
        self._soon.setInterval(0)
        self._soon.timeout.connect(self._on_soon)
        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.timeout.connect(self._on_throttle)

    # ---------------------------------------------------------------- inputs

    @property
    def text(self) -> str:
        return self._text

    @property
    def current(self) -> ShownProbe | None:
        """The probe on screen."""
        return self._shown

    @property
    def throttled(self) -> bool:
        """A re-probe on a newer snapshot is waiting."""
        return self._throttle.isActive()

    @property
    def pending(self) -> bool:
        """A keystroke's probe is due in this pass of the event loop."""
        return self._soon.isActive()

    def set_training(self, training: bool) -> None:
        self._training = training

    @property
    def grad_flow_wanted(self) -> bool:
        return self._grad_flow_wanted

    def set_grad_flow_wanted(self, wanted: bool) -> None:
        """The gradient-flow matrix is on screen: probe with it (a hidden one costs nothing)."""
        self._grad_flow_wanted = bool(wanted)
        result = None if self._shown is None else self._shown.result
        if wanted and result is not None and getattr(result, "grad_flow", None) is None:
            self.probe()  # the shown probe was made without it

    def with_grad_flow(self) -> bool:
        if not self._grad_flow_wanted:
            return False
        from rnnviz.core.probe import MAX_GRAD_FLOW_CHARS  # torch loads after the window

        return len(self._text) <= MAX_GRAD_FLOW_CHARS

    def text_edited(self, text: str) -> None:
        """A key in the probe text: answered in this pass of the event loop."""
        now = self.clock()
        self._text = text
        self.typing_until = now + self.timing.typing_priority_s
        self.last_key_time = now
        # a re-probe computing for the text before this key: stop it now, so it stops
        # competing with this key (an edit's own probe there goes on: this key reuses it)
        if not self._worker_has_edit():
            self.worker.cancel()
        self._soon.start()

    def hold_metric_redraws(self) -> None:
        """The panels of a key or a scrub are set: metric panels wait until they are painted."""
        self.typing_until = max(self.typing_until, self.clock() + self.timing.shown_paint_s)

    def set_text(self, text: str) -> None:
        """A text set by the program (a lesson, a restored session): probed now."""
        self._text = text
        self.probe()

    def snapshot_arrived(self, snapshot: ParamSnapshot | None) -> None:
        self._snapshot = snapshot
        if snapshot is None:
            return
        if not self._training:
            self.probe()
            return
        wait = self.reprobe_wait()
        if wait <= 0:
            self.probe(staggered=True)
        elif not self._throttle.isActive():
            self._throttle.start(int(wait * 1000) + 1)

    def snapshot_chosen(self, snapshot: ParamSnapshot | None) -> None:
        """The user moved the timeline to ``snapshot`` (or back to live): probed at once,
        then its neighbours ahead."""
        self._snapshot = snapshot
        # as after a key: the metric panels leave the next passes of the loop to its panels
        # (a training-curve redraw in the pass that paints them delayed every scrub while
        # training)
        self._last_scrub_time = now = self.clock()
        self.typing_until = now + self.timing.typing_priority_s
        if snapshot is not None:
            self._chosen_waits = self._worker_has_edit()  # then probed once the edit is in
            self.probe(urgent=True)
            self._ahead = [n for n in self.neighbours(snapshot) if not self.kept(n)]
            self._filling = not self.live()
            self._prefetch_soon.start()

    def kept(self, snapshot: ParamSnapshot) -> bool:
        """A Prober of ``snapshot`` that has probed the current text is kept."""
        if snapshot is self._model_snapshot and self._prober is not None:
            return True  # the one keystrokes probe: its Prober follows the text
        entry = self._kept.get(id(snapshot))
        return entry is not None and entry[2] == self._text

    @property
    def kept_bytes(self) -> int:
        return self._kept_bytes

    def ahead_done(self) -> bool:
        """Nothing is being probed ahead, nor left to (the bench waits for this)."""
        if self._prefetching or any(not self.kept(n) for n in self._ahead):
            return False
        if not self._filling or self._snapshot is None:
            return True
        room = KEPT_BYTES - self._kept_bytes
        missing = [n for n in self.fill_order(self._snapshot) if not self.kept(n)]
        return not missing or _prober_bytes(missing[0], self._text) > room

    def _next_ahead(self) -> ParamSnapshot | None:
        """The next snapshot to probe ahead: a neighbour of the chosen one, else (filling) the
        nearest one not kept, while the kept Probers have room for it."""
        while self._ahead:
            snapshot = self._ahead.pop(0)
            if not self.kept(snapshot):
                return snapshot
        if not self._filling or self._snapshot is None:
            return None
        for snapshot in self.fill_order(self._snapshot):
            if self.kept(snapshot):
                continue
            if self._kept_bytes + _prober_bytes(snapshot, self._text) > KEPT_BYTES:
                return None
            return snapshot
        return None

    @Slot()
    def _prefetch_next(self) -> None:
        """Probe the next neighbour ahead on the probe thread, if it has nothing else to do."""
        if self._stopped or not self._text or self._prefetching:
            return
        if not self.worker.idle() or self._soon.isActive() or self._throttle.isActive():
            self._prefetch_soon.start()  # later: what the user waits for goes first
            return
        snapshot = self._next_ahead()
        if snapshot is None:
            return
        try:
            from rnnviz.core.probe import Prober

            entry = self._kept.get(id(snapshot))
            if entry is not None:  # a model of it probed another text: reuse the model
                prober = Prober(entry[1].model, entry[1].vocab)
            else:
                vocab = self._vocab
                if vocab is None or vocab.tokens != snapshot.vocab_tokens:
                    from rnnviz.core.vocab import Vocab

                    vocab = Vocab(snapshot.vocab_tokens)
                prober = Prober(snapshot_model(snapshot), vocab)
        except Exception:  # noqa: BLE001 - a prefetch that fails is just not there
            return
        tag = ProbeTag(False, False, prober.model, prober.vocab, snapshot, prefetch=True)
        self._prefetching = True
        use_torch_threads(1 if self._training else PAUSED_THREADS)
        self.worker.submit(ProbeJob(0, prober, self._text, self.with_grad_flow(), tag))

    # ---------------------------------------------------------------- the rules

    def reprobe_interval(self) -> float:
        return max(self.timing.min_interval_s, self.timing.cost_factor * self._reprobe_cost_s)

    def reprobe_wait(self) -> float:
        """Seconds until a re-probe on a new snapshot may start while training (<= 0: now)."""
        now = self.clock()
        since_probe = now - self._last_probe_time
        wait = self.reprobe_interval() - since_probe
        if since_probe < self.timing.max_stale_s:
            wait = max(wait, self.timing.typing_quiet_s - (now - self.last_key_time))
        return wait

    def thread_threshold(self, urgent: bool) -> int:
        """Multiply-adds above which a probe runs on the probe thread, not inline (urgent: a
        keystroke's or a timeline move's, which the user waits for)."""
        if not self._training:
            return self.timing.paused_thread_work
        return self.timing.key_thread_work if urgent else self.timing.inline_work

    def typing(self) -> bool:
        """The user typed or scrubbed within the quiet interval: metric panels redraw less
        often (at 20 Hz while training, a metric panel's paint was under way at most scrubs,
        and a scrub then waited for it: p95 44 against 32 ms paused)."""
        last = max(self.last_key_time, self._last_scrub_time)
        return self.clock() - last < self.timing.typing_quiet_s

    def _worker_has_edit(self) -> bool:
        """The probe thread computes (or is about to) an edit's probe."""
        request = self.worker.current()
        return request is not None and request.tag.keystroke and request.ticket > self._shown_ticket

    # ---------------------------------------------------------------- probing

    @Slot()
    def _on_soon(self) -> None:
        if self._chosen_waits:  # the chosen model, not the one the keys were typed on
            self._chosen_waits = False
            self.probe(urgent=True)
        else:
            self.probe(keystroke=True)

    @Slot()
    def _on_throttle(self) -> None:
        if self._training:
            wait = self.reprobe_wait()
            if wait > 0:  # typing: the re-probe waits for a pause
                self._throttle.start(int(wait * 1000) + 1)
                return
        self.probe(staggered=self._training)

    def probe(self, staggered: bool = False, keystroke: bool = False, urgent: bool = False) -> None:
        """Probe the text now (inline or on the probe thread)."""
        urgent = urgent or keystroke
        self._soon.stop()
        if self._prefetching:  # what the user waits for comes first
            self.worker.cancel()
            self._prefetching = False
        snapshot, text = self._snapshot, self._text
        if snapshot is None or self._worker_has_edit():
            return  # (the worker's answer probes again from its cache: _on_worker_done)
        self._ticket += 1
        if not text:
            self._shown_ticket = self._ticket
            self._show(ShownProbe(None, None, None, snapshot))
            return
        keep_model = (
            keystroke
            and self._training
            and self._prober is not None
            and self._model_snapshot is not None
            and self._model_snapshot.config.model == snapshot.config.model
            and self._vocab.tokens == snapshot.vocab_tokens
        )
        if keep_model and self._model_snapshot is not snapshot:
            if not self._throttle.isActive():  # the newer snapshot follows shortly
                self._throttle.start(max(1, int(self.reprobe_wait() * 1000) + 1))
        else:
            self._throttle.stop()
            self._last_probe_time = self.clock()
        with_grad_flow = self.with_grad_flow()
        try:
            use_torch_threads(1)
            from rnnviz.core.probe import Prober
            from rnnviz.core.vocab import Vocab

            new_prober = None
            # the model is rebuilt once per snapshot (identity: a reset's step-0 snapshot is
            # a new one with the same step); typing re-probes the same model
            if self._model_snapshot is not snapshot and not keep_model:
                vocab = self._vocab
                kept = self._unkeep(snapshot)
                if kept is not None:
                    new_prober = kept
                else:
                    if vocab is None or vocab.tokens != snapshot.vocab_tokens:
                        vocab = Vocab(snapshot.vocab_tokens)
                    new_prober = Prober(snapshot_model(snapshot), vocab)
                tag = ProbeTag(staggered, keystroke, new_prober.model, new_prober.vocab, snapshot)
            else:
                tag = ProbeTag(staggered, keystroke, self._model, self._vocab, self._model_snapshot)
            work = sum((new_prober or self._prober).work(text, with_grad_flow))
            if work > self.thread_threshold(urgent):
                # a re-probe on a new snapshot gets a new Prober (keystrokes keep the one
                # here); a large edit takes this Prober and its cache along
                if new_prober is not None:
                    prober = new_prober
                elif keystroke:
                    prober = self._prober
                else:
                    prober = Prober(tag.model, tag.vocab)
                if not self._training:
                    if not urgent:  # a keystroke's or a scrub's panels come at once
                        tag = replace(tag, staggered=True)
                    if work > self.timing.two_threads_work:
                        use_torch_threads(PAUSED_THREADS)  # the engine's core is idle
                self.worker.submit(ProbeJob(self._ticket, prober, text, with_grad_flow, tag))
                return
            self.worker.cancel()  # whatever it computes is older than this answer
            if new_prober is not None:
                self._adopt(new_prober, tag, text)
            if not self._training and work > self.timing.two_threads_work:
                use_torch_threads(PAUSED_THREADS)
            started = time.perf_counter()
            result = self._prober.probe(text, with_grad_flow=with_grad_flow)
        except Exception as exc:  # a probe must never take the window down
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        request = ProbeJob(self._ticket, self._prober, text, with_grad_flow, tag)
        self._on_worker_done(request, result, "", time.perf_counter() - started)

    def _adopt(self, prober: Any, tag: ProbeTag, text: str) -> None:
        """From now on keystrokes probe with ``prober`` (its model and snapshot)."""
        if tag.snapshot is not None:
            self._keep(tag.snapshot, prober, text)
        self._prober = prober
        self._model, self._vocab = tag.model, tag.vocab
        self._model_snapshot = tag.snapshot

    def _keep(self, snapshot: ParamSnapshot, prober: Any, text: str) -> None:
        self._unkeep(snapshot)
        size = _prober_bytes(snapshot, text)
        self._kept[id(snapshot)] = (snapshot, prober, text, size)
        self._kept_bytes += size
        while len(self._kept) > KEPT_PROBERS and self._kept_bytes > KEPT_BYTES:
            self._kept_bytes -= self._kept.popitem(last=False)[1][3]

    def _unkeep(self, snapshot: ParamSnapshot) -> Any:
        """Take ``snapshot``'s kept Prober out (None if there is none)."""
        entry = self._kept.pop(id(snapshot), None)
        if entry is None:
            return None
        self._kept_bytes -= entry[3]
        return entry[1]

    def _fail(self, message: str) -> None:
        self.error = message
        self.failed.emit(message)

    @Slot(object, object, str, float)
    def _on_worker_done(self, request: ProbeJob, result: Any, error: str, seconds: float) -> None:
        """A probe's answer, computed here or on the probe thread."""
        tag: ProbeTag = request.tag
        if tag.prefetch:
            self._prefetching = False
            if not error and tag.snapshot is not None and result.text == self._text:
                self._keep(tag.snapshot, request.prober, result.text)
            self._prefetch_soon.start()
            return
        if seconds > 0 and request.prober.reused_steps == 0:  # a whole text: a re-probe's cost
            self._reprobe_cost_s = seconds
        if request.ticket < self._shown_ticket:
            return  # a newer result is on screen already
        if error:
            self._fail(error)
            return
        if request.prober is not self._prober:  # from the probe thread: its model is newer
            self._adopt(request.prober, tag, request.text)
        self.error = ""
        self._shown_ticket = request.ticket
        self._show(ShownProbe(result, tag.model, tag.vocab, tag.snapshot, tag.staggered))
        # typed on while the thread computed, or paused meanwhile with a newer model than the
        # one this answer came from (the probes it held back were not made)
        newer_model = tag.snapshot is not self._snapshot and (
            not self._training or self._chosen_waits
        )
        if result.text != self._text or newer_model:
            self._soon.start()

    def _show(self, shown: ShownProbe) -> None:
        self._shown = shown
        self.shown.emit(shown)

    # ---------------------------------------------------------------- the step view

    def step_detail(
        self, t: int, layer: int | None = None, direction: str = "forward"
    ) -> tuple[Any, str]:
        """The Step view's numbers of the shown probe at step ``t``: ``core.probe.step_detail``
        for the scratch/fast RNN, ``core.step_gates.gated_step_detail`` for a GRU/LSTM (on the
        probe's own gate record). ``layer``: of stacked layers, from 0; None, or one the model
        does not have, is the top one. ``direction``: "reverse" of a bidirectional model (a
        one-direction model shows its forward one). (detail, "") or (None, why there is
        none)."""
        shown = self._shown
        if shown is None or shown.result is None or shown.model is None:
            return None, ""
        kind = getattr(shown.result, "kind", "fast")
        layers = getattr(shown.model, "num_layers", 1)
        if layer is not None and not 0 <= layer < layers:
            layer = None  # a layer chosen on a deeper model: this one's top
        # the backward direction chosen on a bidirectional model: this one's only one
        bidirectional = bool(getattr(shown.model, "bidirectional", False))
        way: Literal["forward", "reverse"] = (
            "reverse" if direction == "reverse" and bidirectional else "forward"
        )
        try:
            if kind in ("gru", "lstm"):
                from rnnviz.core.step_gates import gated_step_detail

                gates = getattr(shown.result, "gates", None)
                detail = gated_step_detail(
                    shown.model,
                    shown.vocab,
                    shown.result.text,
                    t,
                    gates=gates,
                    layer=layer,
                    direction=way,
                )
                return detail, ""
            from rnnviz.core.probe import step_detail

            text = shown.result.text
            return step_detail(shown.model, shown.vocab, text, t, layer=layer, direction=way), ""
        except ValueError as exc:  # the cores' own "no such view here" (a stacked model)
            return None, str(exc)
        except Exception as exc:  # like a probe: never take the window down
            return None, f"Step view failed: {exc}"

    def stop(self) -> None:
        """Stop the timers and the probe thread (idempotent)."""
        self._soon.stop()
        self._throttle.stop()
        self._prefetch_soon.stop()
        if not self._stopped:  # an answer that comes after stop is no news
            self._stopped = True
            self.worker.done.disconnect(self._on_worker_done)
        self.worker.stop()

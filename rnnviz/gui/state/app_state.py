"""The one application state of the window: what the engine reported, what the user chose.

Every engine event is applied here, in :meth:`AppState.apply`, and nowhere else; panels and the
window read the state and subscribe to its typed signals (as napari's widgets subscribe to its
``components``). QtCore only: no widget, no pyqtgraph, so it is tested without a window.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from rnnviz.core import health
from rnnviz.core.config import RunConfig
from rnnviz.core.history import MetricHistory
from rnnviz.core.messages import (
    Divergence,
    Failure,
    MetricsBatch,
    ParamSnapshot,
    RunInfo,
    Saved,
    StateChanged,
    StepRecord,
)
from rnnviz.core.snapshots import SnapshotStore, StoredSnapshot
from rnnviz.gui.state.histories import RunHistories

MAIN_RUN = 0
MAIN_RUN_LABEL = "main"  # the main run's name in the legends once compare runs exist


@dataclass(frozen=True)
class RunStatus:
    """One run as the engine last reported it."""

    state: str = "idle"
    step: int = 0
    epoch: int = 0
    tokens_per_s: float = 0.0
    nonfinite_total: int = 0
    label: str = ""


class AppState(QObject):
    """Run configuration, every run's status and history, the snapshot, the probe's inputs."""

    config_changed = Signal(object)  # RunConfig: the one configuration (live lr / θ included)
    run_info_changed = Signal(object)  # RunInfo of the main run: a new run, the panels clear
    runs_changed = Signal()  # a compare run was added or removed
    run_status_changed = Signal(int)  # run_id: its status changed (every metric batch)
    run_state_changed = Signal(int)  # run_id: its state changed (training, paused, ...)
    metrics_appended = Signal(int)  # run_id: new records in its history
    history_truncated = Signal(int)  # run_id: a rollback cut its history
    snapshot_changed = Signal(object)  # ParamSnapshot of the main run
    # the model the probe panels show changed by the user's hand: the timeline moved to a
    # stored snapshot, or back to live (ParamSnapshot); a new live snapshot is snapshot_changed
    view_changed = Signal(object)
    timeline_changed = Signal()  # a snapshot was stored or dropped, or the view moved
    divergence_changed = Signal(object)  # Divergence | None
    failure = Signal(object)  # Failure
    useless = Signal(int)  # run_id: its recent losses are worse than uniform guessing
    saved = Signal(object)  # Saved
    message = Signal(str, int)  # a status-bar message and how long to show it (ms)
    probe_text_changed = Signal(object)  # str; object keeps a leading U+FEFF (see ProbeTextPanel)
    cursor_changed = Signal(int)
    unit_changed = Signal(int)

    def __init__(self, config: RunConfig, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._config = config
        self.histories = RunHistories()
        self._runs: dict[int, RunStatus] = {MAIN_RUN: RunStatus()}
        self._run_info: RunInfo | None = None
        self._snapshot: ParamSnapshot | None = None
        # the timeline: the main run's stored snapshots, and the one shown (None: live)
        self.snapshots = SnapshotStore()
        self._viewed: ParamSnapshot | None = None
        self._as_message: dict[int, tuple[StoredSnapshot, ParamSnapshot]] = {}
        self._pending_view: int | None = None  # a restored session's step, once a model is in
        self._divergence: Divergence | None = None
        # each run's newest divergence, shown or not: a rollback stays reachable after the
        # banner went (dismissed, or "Resume" pressed and the run diverged again)
        self._last_divergence: dict[int, Divergence] = {}
        self._failure: Failure | None = None
        self._records_received = 0
        self._watches: dict[int, health.LossWatch] = {}  # the worse-than-uniform rule per run
        self._unsaved = False  # the main run trained since it was built, loaded or saved
        # runs read from metrics CSVs (run_id -> label, history): drawn, never trained
        self._opened: dict[int, tuple[str, MetricHistory]] = {}
        self._probe_text = ""
        self._cursor = 0
        self._unit = 0

    # ---------------------------------------------------------------- the configuration

    @property
    def config(self) -> RunConfig:
        return self._config

    def set_config(self, config: RunConfig) -> None:
        if config != self._config:
            self._config = config
            self.config_changed.emit(config)

    # ---------------------------------------------------------------- runs

    @property
    def run_info(self) -> RunInfo | None:
        return self._run_info

    @property
    def read_only(self) -> bool:
        """The main run is a model opened from a file (OpenModel): nothing trains it."""
        return self._run_info is not None and bool(self._run_info.opened)

    @property
    def snapshot(self) -> ParamSnapshot | None:
        """The newest parameter snapshot of the main run."""
        return self._snapshot

    @property
    def records_received(self) -> int:
        return self._records_received

    @property
    def unsaved_training(self) -> bool:
        """The main run trained since it was built, loaded or last saved by the user."""
        return self._unsaved

    def mark_saved(self) -> None:
        self._unsaved = False

    def status(self, run_id: int = MAIN_RUN) -> RunStatus | None:
        return self._runs.get(run_id)

    @property
    def main(self) -> RunStatus:
        return self._runs[MAIN_RUN]

    @property
    def training(self) -> bool:
        return self.main.state == "training"

    def compare_runs(self) -> dict[int, str]:
        """The compare runs (run_id -> label); the main run is 0."""
        return {r: s.label for r, s in sorted(self._runs.items()) if r != MAIN_RUN}

    def run_ids(self) -> list[int]:
        return sorted(self._runs)

    def run_name(self, run_id: int) -> str:
        """How the legends name a run: "main", a compare or opened run by its label."""
        if run_id == MAIN_RUN:
            return MAIN_RUN_LABEL
        if run_id in self._opened:
            return self._opened[run_id][0]
        status = self._runs.get(run_id)
        return (status.label if status is not None else "") or f"run {run_id}"

    def legend_label(self, run_id: int) -> str:
        """The run's name in a legend: "" while the main run is alone."""
        return self.run_name(run_id) if len(self._runs) + len(self._opened) > 1 else ""

    def set_main_state(self, state: str) -> None:
        """The window's own view of the engine: "starting", "stopped" (it died)."""
        self._set_status(MAIN_RUN, state=state)

    def _set_status(self, run_id: int, **changes: Any) -> None:
        old = self._runs.get(run_id)
        if old is None:
            return
        new = replace(old, **changes)
        if new != old:
            self._runs[run_id] = new
            self.run_status_changed.emit(run_id)
            if new.state != old.state:
                self.run_state_changed.emit(run_id)

    def remove_run(self, run_id: int) -> None:
        """A compare run is gone (closed, or a fresh engine has the main run only)."""
        if run_id == MAIN_RUN or run_id not in self._runs:
            return
        del self._runs[run_id]
        self.histories.clear(run_id)
        self.forget_divergence(run_id)
        self.runs_changed.emit()

    def remove_compare_runs(self) -> None:
        for run_id in list(self._runs):
            self.remove_run(run_id)

    def add_opened_run(self, label: str, metrics: MetricHistory) -> int:
        """A run read from a metrics CSV, drawn in the metric panels beside the engine's runs
        until the window closes (a reset keeps it); its run id (negative). It is no run of
        the engine: never trained, saved in a session, or in Export metrics."""
        run_id = min(self._opened, default=MAIN_RUN) - 1  # the engine's ids count up from 0
        self._opened[run_id] = (label, metrics)
        self.histories.restore(run_id, metrics)
        self.metrics_appended.emit(run_id)
        return run_id

    def opened_runs(self) -> dict[int, str]:
        """The runs read from metrics CSVs (run_id -> label)."""
        return {r: label for r, (label, _) in sorted(self._opened.items())}

    # ---------------------------------------------------------------- the timeline

    @property
    def live(self) -> bool:
        """The probe panels show the newest model (not a stored snapshot)."""
        return self._viewed is None

    @property
    def shown_snapshot(self) -> ParamSnapshot | None:
        """The model the probe panels show: the stored one the timeline is on, else the newest."""
        return self._snapshot if self._viewed is None else self._viewed

    @property
    def viewed_step(self) -> int | None:
        """The step of the stored snapshot shown; None while live."""
        return None if self._viewed is None else self._viewed.step

    def view_step(self, step: int | None) -> None:
        """Show the stored snapshot nearest to ``step`` (None, or the newest one: live)."""
        live = self._snapshot
        stored = None if step is None else self.snapshots.nearest(step)
        if stored is None or live is None or stored is self.snapshots.newest():
            viewed = None
        else:
            viewed = self._message(stored, live)
        if viewed is self._viewed:
            return
        self._viewed = viewed
        self.view_changed.emit(self.shown_snapshot)
        self.timeline_changed.emit()

    def view_neighbour(self, direction: int) -> None:
        """The stored snapshot before (direction < 0) or after (> 0) the one shown."""
        here = self.viewed_step
        if here is None:
            if direction > 0:
                return  # live is the newest already
            newest = self.snapshots.newest()
            if newest is None:
                return
            here = newest.step
        other = self.snapshots.neighbour(here, direction)
        if other is not None:
            self.view_step(other.step)
        elif direction < 0 and self._viewed is None:
            self.view_step(here)

    def go_live(self) -> None:
        self.view_step(None)

    def neighbour_messages(self, snapshot: ParamSnapshot) -> list[ParamSnapshot]:
        """The stored snapshots before and after ``snapshot`` as the messages the timeline
        would show (the same objects: the probe scheduler probes them ahead)."""
        live = self._snapshot
        if live is None:
            return []
        newest = self.snapshots.newest()
        out = []
        for direction in (-1, +1):
            stored = self.snapshots.neighbour(snapshot.step, direction)
            if stored is not None and stored is not newest:
                out.append(self._message(stored, live))
        return out

    def timeline_label(self) -> str:
        """What the panels say about the model they show: "model at step 400 of 2,000"."""
        newest = self.main.step
        if self._viewed is None:
            return f"live: step {newest:,}"
        return f"model at step {self._viewed.step:,} of {newest:,}"

    def restore_timeline(self, store: SnapshotStore, step: int | None) -> None:
        """A saved session's stored snapshots (after its run was loaded), shown at ``step``
        once the loaded run's first snapshot is in (the view needs its configuration)."""
        self.snapshots = store
        self._as_message.clear()
        self._viewed = None
        self._pending_view = step
        self.timeline_changed.emit()
        if step is not None and self._snapshot is not None:
            self._pending_view = None
            self.view_step(step)

    def restore_history(self, run_id: int, metrics: MetricHistory) -> None:
        """A saved session's metric history of ``run_id`` in place of the one recorded."""
        self.histories.restore(run_id, metrics)
        if run_id == MAIN_RUN:
            self._records_received = len(metrics.columns().get("step", ()))
        self.metrics_appended.emit(run_id)

    def fill_messages(self, snapshot: ParamSnapshot) -> list[ParamSnapshot]:
        """Every stored snapshot but the newest (live), nearest to ``snapshot`` first, as the
        messages the timeline would show: the probe scheduler probes them ahead while paused."""
        live = self._snapshot
        snaps = self.snapshots.snapshots()[:-1]
        if live is None or not snaps:
            return []
        steps = [s.step for s in snaps]
        here = bisect.bisect_left(steps, snapshot.step)
        order = sorted(range(len(snaps)), key=lambda i: (abs(i - here), i))
        return [self._message(snaps[i], live) for i in order]

    def _message(self, stored: StoredSnapshot, like: ParamSnapshot) -> ParamSnapshot:
        """The stored snapshot as the message the probes take, made once per snapshot: the
        probe scheduler keeps a model per message (identity)."""
        cached = self._as_message.get(stored.step)
        if cached is not None and cached[0] is stored:
            return cached[1]
        message = ParamSnapshot(
            MAIN_RUN, stored.step, like.config, like.vocab_tokens, dict(stored.params)
        )
        if len(self._as_message) > 2 * len(self.snapshots):
            # only the stored ones: the probe scheduler's models of them stay found
            kept = {s.step for s in self.snapshots.snapshots()}
            self._as_message = {k: v for k, v in self._as_message.items() if k in kept}
        self._as_message[stored.step] = (stored, message)
        return message

    def _store_snapshot(self, event: ParamSnapshot) -> None:
        try:
            self.snapshots.add(event.step, event.params)
        except ValueError:  # another model without a RunInfo between: a new timeline
            self.snapshots.clear()
            self.snapshots.add(event.step, event.params)
        self.timeline_changed.emit()

    def _timeline_cut(self, step: int) -> None:
        """A rollback to ``step``: later snapshots are gone, a view of one of them too."""
        self.snapshots.truncate_after(step)
        if self._viewed is not None and self._viewed.step > step:
            self._viewed = None
            self.view_changed.emit(self.shown_snapshot)
        self.timeline_changed.emit()

    # ---------------------------------------------------------------- divergence, failure

    @property
    def divergence(self) -> Divergence | None:
        """The divergence the banner shows (None after a reset or a dismissal)."""
        return self._divergence

    def last_divergence(self, run_id: int | None = None) -> Divergence | None:
        """The newest divergence of ``run_id`` (None: of any run), shown or not."""
        if run_id is not None:
            return self._last_divergence.get(run_id)
        events = list(self._last_divergence.values())
        return max(events, key=lambda e: e.step) if events else None

    def forget_divergence(self, run_id: int) -> None:
        """The run was rolled back or closed: its divergence is over."""
        self._last_divergence.pop(run_id, None)
        if self._divergence is not None and self._divergence.run_id == run_id:
            self.set_divergence(None)

    def set_divergence(self, event: Divergence | None) -> None:
        if event is not self._divergence:
            self._divergence = event
            self.divergence_changed.emit(event)

    @property
    def last_failure(self) -> Failure | None:
        return self._failure

    def clear_failure(self) -> None:
        self._failure = None

    def report_failure(self, failure: Failure) -> None:
        self._failure = failure
        if failure.fatal:
            self.set_main_state("stopped")
        self.failure.emit(failure)

    # ---------------------------------------------------------------- the probe's inputs

    @property
    def probe_text(self) -> str:
        return self._probe_text

    def set_probe_text(self, text: str) -> None:
        if text != self._probe_text:
            self._probe_text = text
            self.probe_text_changed.emit(text)

    @property
    def cursor(self) -> int:
        """The time step t of the probe text every panel shows."""
        return self._cursor

    def set_cursor(self, t: int) -> None:
        t = max(0, min(int(t), max(len(self._probe_text) - 1, 0)))
        if t != self._cursor:
            self._cursor = t
        # emitted even when unchanged: a new probe result re-reads it
        self.cursor_changed.emit(t)

    @property
    def unit(self) -> int:
        """The selected hidden unit (the text is coloured by it)."""
        return self._unit

    def set_unit(self, unit: int) -> None:
        if unit != self._unit:
            self._unit = int(unit)
            self.unit_changed.emit(self._unit)

    # ---------------------------------------------------------------- engine events

    def apply(self, event: object) -> None:
        """Apply one engine event: the one place that turns messages into state."""
        if isinstance(event, MetricsBatch):
            self._apply_metrics(event)
        elif isinstance(event, ParamSnapshot):
            if event.run_id == MAIN_RUN:  # probes follow the main run
                self._snapshot = event
                self._store_snapshot(event)
                self.snapshot_changed.emit(event)
                if self._pending_view is not None:
                    step, self._pending_view = self._pending_view, None
                    self.view_step(step)
        elif isinstance(event, StateChanged):
            self._apply_state(event)
        elif isinstance(event, RunInfo):
            self._apply_run_info(event)
        elif isinstance(event, Divergence):
            if event.run_id in self._runs:
                self._last_divergence[event.run_id] = event
                self.set_divergence(event)
        elif isinstance(event, Failure):
            self.report_failure(event)
        elif isinstance(event, Saved):
            self.saved.emit(event)
            self.message.emit(f"Saved checkpoint at step {event.step} to {event.path}", 8000)

    def _apply_metrics(self, batch: MetricsBatch) -> None:
        records = batch.records
        if not records or batch.run_id not in self._runs:
            return  # a run closed since: its last steps are no news
        self.histories.append(batch.run_id, records)
        self._watch(batch.run_id, records)
        last = records[-1]
        if batch.run_id == MAIN_RUN:
            self._records_received += len(records)
            self._unsaved = True
            self._set_status(
                MAIN_RUN,
                step=last.step,
                epoch=last.epoch,
                tokens_per_s=last.tokens_per_s,
                nonfinite_total=last.nonfinite_total,
            )
        else:
            self._set_status(batch.run_id, step=last.step, epoch=last.epoch)
        self.metrics_appended.emit(batch.run_id)

    def _watch(self, run_id: int, records: tuple[StepRecord, ...]) -> None:
        info = self._run_info
        if info is None:
            return
        watch = self._watches.get(run_id)
        if watch is None:
            watch = self._watches[run_id] = health.LossWatch(len(info.vocab_tokens))
        was_useless = watch.useless
        for record in records:
            watch.add(record.step, record.loss)
        if watch.useless and not was_useless:
            self.useless.emit(run_id)

    def uselessness(self, run_id: int) -> str:
        """Why the run is judged worse than uniform guessing ("" if it is not)."""
        watch = self._watches.get(run_id)
        if watch is None or not watch.useless:
            return ""
        return (
            f"its median loss over the last {watch.window} steps is {watch.median:.3g}: "
            + health.uniform_sentence(watch.vocab_size)
        )

    def _apply_state(self, event: StateChanged) -> None:
        run_id = event.run_id
        if run_id not in self._runs:
            return
        # the run is at event.step: steps after it were abandoned (a rollback)
        before = self.histories.last_step(run_id)
        self.histories.truncate_after(run_id, event.step)
        if before is not None and before > event.step:
            self._watches.pop(run_id, None)  # rolled back: judged afresh
        if before != self.histories.last_step(run_id):
            self.history_truncated.emit(run_id)
        if run_id == MAIN_RUN:
            newest = self.snapshots.newest()
            if newest is not None and newest.step > event.step:
                self._timeline_cut(event.step)
        if run_id != MAIN_RUN and event.state == "stopped":  # CloseRun, or a load replaced it
            self.remove_run(run_id)
            return
        self._set_status(run_id, state=event.state, step=event.step, epoch=event.epoch)
        last = self._last_divergence.get(run_id)
        if event.state == "training" and self._divergence is not None:
            self.set_divergence(None)  # training on: the banner's "paused" is over
        elif event.state == "diverged" and last is not None and self._divergence is None:
            # the run gave up after more bad steps: its banner, with a rollback, again
            self.set_divergence(last)
        if run_id == MAIN_RUN and event.message:
            self.message.emit(event.message, 6000)

    def _apply_run_info(self, info: RunInfo) -> None:
        if info.run_id != MAIN_RUN:
            self._runs[info.run_id] = RunStatus(label=info.label or f"run {info.run_id}")
            self.histories.clear(info.run_id)
            self.runs_changed.emit()
            return
        self._run_info = info
        self.histories.clear()  # every run's curves start again (a reset resets the forks)
        for run_id, (_, metrics) in self._opened.items():
            self.histories.restore(run_id, metrics)  # a file's run is no part of the reset
        self._records_received = 0
        self._unsaved = False
        self._snapshot = None
        self.snapshots = SnapshotStore()
        self._as_message.clear()
        if self._viewed is not None:
            self._viewed = None
            self.view_changed.emit(None)
        self.timeline_changed.emit()
        for run_id in list(self._runs):
            if run_id != MAIN_RUN:
                self._runs[run_id] = replace(self._runs[run_id], step=0, epoch=0)
        self._runs[MAIN_RUN] = replace(
            self._runs[MAIN_RUN], step=0, epoch=0, tokens_per_s=0.0, nonfinite_total=0
        )
        self._last_divergence.clear()
        self._watches.clear()
        self.set_divergence(None)
        self.set_config(info.config)
        self.run_info_changed.emit(info)
        self.run_status_changed.emit(MAIN_RUN)

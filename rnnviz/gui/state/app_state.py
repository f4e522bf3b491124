"""The one application state of the window: what the engine reported, what the user chose.

Every engine event is applied here, in :meth:`AppState.apply`, and nowhere else; panels and the
window read the state and subscribe to its typed signals (as napari's widgets subscribe to its
``components``). QtCore only: no widget, no pyqtgraph, so it is tested without a window.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from rnnviz.core import health
from rnnviz.core.config import RunConfig
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
        self._divergence: Divergence | None = None
        # each run's newest divergence, shown or not: a rollback stays reachable after the
        # banner went (dismissed, or "Resume" pressed and the run diverged again)
        self._last_divergence: dict[int, Divergence] = {}
        self._failure: Failure | None = None
        self._records_received = 0
        self._watches: dict[int, health.LossWatch] = {}  # the worse-than-uniform rule per run
        self._unsaved = False  # the main run trained since it was built, loaded or saved
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
        """How the legends name a run: "main", a compare run by its label."""
        if run_id == MAIN_RUN:
            return MAIN_RUN_LABEL
        status = self._runs.get(run_id)
        return (status.label if status is not None else "") or f"run {run_id}"

    def legend_label(self, run_id: int) -> str:
        """The run's name in a legend: "" while the main run is alone."""
        return self.run_name(run_id) if len(self._runs) > 1 else ""

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
                self.snapshot_changed.emit(event)
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
        self._records_received = 0
        self._unsaved = False
        self._snapshot = None
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

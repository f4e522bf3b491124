"""The controller: user intents in, validated commands out; the only caller of the engine.

Panels and actions call these methods (play, step, reset, set hyperparameters, fork, save,
load, roll back); each intent is validated once, against the one configuration in
:class:`~rnnviz.gui.state.app_state.AppState`, and becomes a command for the engine. What is
refused is said through ``rejected`` (the window shows it). QtCore only.
"""

from __future__ import annotations

import contextlib
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from rnnviz.core import divergence as verdicts
from rnnviz.core.config import ConfigError, RunConfig
from rnnviz.core.messages import (
    CloseRun,
    Command,
    Divergence,
    Failure,
    Fork,
    Load,
    OpenModel,
    Pause,
    Reset,
    Rollback,
    Save,
    Saved,
    SetHyper,
    Start,
    Step,
)
from rnnviz.core.presets import Preset
from rnnviz.gui.state.app_state import MAIN_RUN, MAIN_RUN_LABEL, AppState
from rnnviz.gui.state.engine import EngineClient


def unique_label(label: str, taken: set[str]) -> str:
    """``label``, or ``label (2)``, ``label (3)``… if a run has that name already."""
    if label not in taken:
        return label
    n = 2
    while f"{label} ({n})" in taken:
        n += 1
    return f"{label} ({n})"


AUTOSAVE_INTERVAL_S = 60.0  # a crash loses at most this much training


class Controller(QObject):
    """Turns intents into engine commands (see the module doc)."""

    rejected = Signal(str)  # an intent that could not be carried out, and why
    not_running = Signal()  # a command found no engine (it died): the window says so
    saves_settled = Signal()  # no save is in flight any more

    def __init__(
        self,
        state: AppState,
        engine: EngineClient,
        parent: QObject | None = None,
        *,
        autosave_path: Path | None = None,
        autosave_interval_s: float = AUTOSAVE_INTERVAL_S,
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.engine = engine
        engine.received.connect(self._on_event)
        state.divergence_changed.connect(self._on_divergence)
        state.useless.connect(self._on_useless)
        state.saved.connect(self._on_saved)
        state.failure.connect(self._on_failure)
        # saves sent and not yet answered, oldest first: closing waits for them
        self.pending_saves: list[str] = []
        self.autosave_path = autosave_path
        self.autosaved_step: int | None = None
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(int(autosave_interval_s * 1000))
        self._autosave_timer.timeout.connect(self.autosave)
        if autosave_path is not None:
            self._autosave_timer.start()

    @Slot(object)
    def _on_event(self, event: object) -> None:
        try:
            self.state.apply(event)
        except Exception as exc:  # a bug in a handler must not take the window down
            traceback.print_exc()
            self.state.report_failure(
                Failure(f"Internal error while handling {type(event).__name__}: {exc}")
            )

    # ---------------------------------------------------------------- the engine

    def send(self, command: Command) -> bool:
        ok = self.engine.send(command)
        if not ok and self.state.main.state == "stopped":
            self.not_running.emit()
        return ok

    def start_engine(self) -> None:
        """Spawn the engine if none runs (imports torch in the child)."""
        if not self.engine.is_running():
            self.restart_engine(self.state.config)

    def restart_engine(self, config: RunConfig) -> None:
        self.state.remove_compare_runs()  # a fresh engine has the main run only
        self.state.set_config(config)
        try:
            self.engine.restart(config)
        except Exception as exc:  # e.g. torch missing: say so, keep the window
            self.engine.shutdown()
            self.state.report_failure(
                Failure(f"Could not start the training engine: {exc}", fatal=True)
            )
            return
        self.state.set_main_state("starting")

    def shutdown(self) -> None:
        """Pause and stop the engine; commands already queued (a Save) are served first."""
        self._autosave_timer.stop()
        if self.engine.is_running() and self.state.training:
            self.engine.send(Pause())
        self.engine.shutdown()

    # ---------------------------------------------------------------- training

    @Slot()
    def play(self) -> None:
        self.send(Start())

    @Slot()
    def pause(self) -> None:
        self.send(Pause())

    @Slot()
    def toggle_play(self) -> None:
        self.pause() if self.state.training else self.play()

    def set_playing(self, play: bool) -> None:
        self.play() if play else self.pause()

    @Slot()
    def step(self, n: int = 1) -> None:
        self.send(Step(n))

    @Slot()
    def reset(self) -> None:
        """Back to the initial parameters (same seed); a fresh engine if it died."""
        self.state.clear_failure()
        if self.engine.is_running():
            self.send(Reset(None))
        else:
            self.restart_engine(self.state.config)

    def set_hyper(
        self,
        lr: float | None = None,
        clip_theta: float | None = None,
        clip_enabled: bool | None = None,
    ) -> bool:
        """Live hyperparameters: the configuration changes now (the θ line moves), the engine
        applies them at its next step. False (and ``rejected``) if they are invalid."""
        changes = {
            k: v
            for k, v in (("lr", lr), ("clip_theta", clip_theta), ("clip_enabled", clip_enabled))
            if v is not None
        }
        try:
            config = self.state.config.replace(train=changes)
        except ConfigError as exc:
            self.rejected.emit(str(exc))
            return False
        self.state.set_config(config)
        self.send(SetHyper(lr=lr, clip_theta=clip_theta, clip_enabled=clip_enabled))
        return True

    def apply_config(self, config: RunConfig) -> None:
        """Rebuild the run from ``config`` (the panels clear when the new RunInfo arrives)."""
        if self.engine.is_running():
            self.send(Reset(config))
        else:
            self.restart_engine(config)

    def apply_preset(self, preset: Preset) -> None:
        """Restart the main run from ``preset`` (made from the defaults), with its compare
        runs instead of the ones there were; the commands are served in order, so each fork
        starts from the new run."""
        self.close_compare_runs()
        self.apply_config(preset.config())
        for run in preset.compare:
            self.send(Fork(run.changes, label=run.label))

    def corpus_config(self, path: str) -> RunConfig | None:
        """The configuration with the corpus at ``path`` (None, and ``rejected``: invalid)."""
        try:
            return self.state.config.replace(corpus={"source": path})
        except ConfigError as exc:
            self.rejected.emit(str(exc))
            return None

    # ---------------------------------------------------------------- files

    def save(self, path: str) -> bool:
        """Save the main run to ``path``; closing waits until the engine answers."""
        if not self.send(Save(path)):
            self.rejected.emit(f"Not saved: the training engine is not running ({path})")
            return False
        self.pending_saves.append(path)
        return True

    @Slot()
    def autosave(self) -> None:
        """Save for crash recovery, if the run trained since the last one."""
        path = self.autosave_path
        if path is None or not self.state.unsaved_training or str(path) in self.pending_saves:
            return
        if self.state.main.step != self.autosaved_step and self.engine.is_running():
            # the settings folder is made when the window first closes: until then the engine
            # refused every autosave of a first session (no folder), and a crash lost it all
            with contextlib.suppress(OSError):  # then the save fails, and says so
                path.parent.mkdir(parents=True, exist_ok=True)
            self.save(str(path))

    def restart_from_autosave(self) -> bool:
        """A fresh engine that continues from the last autosave (after the engine died)."""
        path = self.autosave_path
        if path is None or self.autosaved_step is None or not path.is_file():
            return False
        self.restart_engine(self.state.config)
        self.load(str(path))
        return True

    def discard_autosave(self) -> None:
        """A clean exit: nothing to recover next time."""
        if self.autosave_path is not None:
            self.autosave_path.unlink(missing_ok=True)

    @Slot(object)
    def _on_saved(self, event: Saved) -> None:
        if event.path in self.pending_saves:
            self.pending_saves.remove(event.path)
        if self.autosave_path is not None and event.path == str(self.autosave_path):
            self.autosaved_step = event.step
        else:
            self.state.mark_saved()
        if not self.pending_saves:
            self.saves_settled.emit()

    @Slot(object)
    def _on_failure(self, failure: Failure) -> None:
        # a save that failed is answered by a Failure that names its path; an engine that
        # died answers none of them
        failed = [p for p in self.pending_saves if p in failure.message or failure.fatal]
        for path in failed:
            self.pending_saves.remove(path)
        if failed and not self.pending_saves:
            self.saves_settled.emit()

    def load(self, path: str) -> None:
        self.state.clear_failure()
        self.send(Load(path))

    def open_model(self, path: str, spec: str) -> None:
        """Someone else's PyTorch model, read-only, in place of the main run."""
        self.state.clear_failure()
        self.send(OpenModel(path, spec))

    def log_to_tensorboard(self, path: str | None) -> None:
        """TensorBoard event files of every run under ``path`` (None: stop), written by the
        engine process; the path is checked by the caller (and again by the engine)."""
        self.engine.log_to_tensorboard(path)

    # ---------------------------------------------------------------- compare runs

    def fork(self, changes: dict[str, dict[str, Any]], label: str, *, reset: bool = False) -> None:
        """Fork the main run with ``changes`` (the session answers with a RunInfo)."""
        try:
            self.state.config.replace(**changes)  # say what is wrong before the engine does
        except ConfigError as exc:
            self.rejected.emit(str(exc))
            return
        taken = set(self.state.compare_runs().values()) | {MAIN_RUN_LABEL}
        self.send(Fork(changes, label=unique_label(label, taken)))
        if reset:
            self.send(Reset(None))  # every run from step 0: the session resets the forks too

    def close_run(self, run_id: int) -> None:
        self.send(CloseRun(run_id))

    def close_compare_runs(self) -> None:
        """Stop every compare run (their curves go when the engine confirms)."""
        for run_id in self.state.compare_runs():
            self.send(CloseRun(run_id))

    # ---------------------------------------------------------------- divergence

    @Slot(object)
    def _on_divergence(self, event: Divergence | None) -> None:
        # the session stops the runs that diverged; a compare run's divergence leaves the
        # others training (the banner says so), the main run's pauses everything
        if event is not None and event.run_id == MAIN_RUN and self.state.training:
            self.send(Pause())

    @Slot(int)
    def _on_useless(self, run_id: int) -> None:
        if self.state.training:  # as for a divergence: stop before it gets worse
            self.send(Pause())

    def can_roll_back(self) -> bool:
        event = self.state.divergence or self.state.last_divergence()
        if event is not None and verdicts.rollback_target(event) is not None:
            return True
        return self._useless_run() is not None

    def _useless_run(self) -> int | None:
        """A run judged worse than uniform guessing (the main run first), else None.

        Such a run can always roll back: the trainer keeps a snapshot at its first step and
        takes none while the loss is worse than uniform, so its newest is a good one."""
        for run_id in self.state.run_ids():
            if self.state.uselessness(run_id):
                return run_id
        return None

    def _useless_rollback(self, run_id: int) -> None:
        status = self.state.status(run_id)
        if status is not None:  # the newest kept snapshot at or before now: a good one
            self.send(Rollback(status.step, run_id=run_id))

    def rollback(self) -> bool:
        """Roll the diverged run (the one shown, else the newest) back to its newest good
        snapshot before the divergence, or a run worse than uniform to its newest good
        snapshot; False if there is none."""
        event = self.state.divergence or self.state.last_divergence()
        target = None if event is None else verdicts.rollback_target(event)
        if event is None or target is None:
            useless = self._useless_run()
            if useless is None:
                return False
            self._useless_rollback(useless)
            return True
        self.send(Rollback(target, run_id=event.run_id))
        self.state.forget_divergence(event.run_id)
        return True

    def resume_with_clipping(self) -> None:
        """Back to the last good snapshot (the parameters after a divergence are blown up),
        clipping on at a usable θ, then train on."""
        event = self.state.divergence or self.state.last_divergence(MAIN_RUN)
        theta = verdicts.resume_theta(self.state.config.train.clip_theta)
        target = None if event is None else verdicts.rollback_target(event)
        if target is not None:
            self.send(Rollback(target, run_id=MAIN_RUN))
        elif self.state.uselessness(MAIN_RUN):
            self._useless_rollback(MAIN_RUN)
        if not self.set_hyper(clip_theta=theta, clip_enabled=True):
            return
        self.send(Start())
        self.state.forget_divergence(MAIN_RUN)

    def resume(self) -> None:
        self.send(Start())
        self.state.set_divergence(None)

    def close_diverged_run(self) -> None:
        event = self.state.divergence
        if event is not None and event.run_id != MAIN_RUN:
            self.send(CloseRun(event.run_id))
        self.state.set_divergence(None)

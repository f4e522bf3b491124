"""The main window: it builds the state, the controller, the probe scheduler and the panels,
wires them together, and shuts them down. Decisions live in those units, not here.

torch is imported lazily (first probe, first engine start), so the window shows quickly.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QResizeEvent, QShowEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QVBoxLayout, QWidget

from rnnviz.core import divergence as verdicts
from rnnviz.core import probe_defaults
from rnnviz.core.config import RunConfig
from rnnviz.core.messages import Divergence, Failure, RunInfo
from rnnviz.gui.panels.compare_dialog import CompareDialog
from rnnviz.gui.panels.controls import ControlsPanel
from rnnviz.gui.panels.grad_norms import GradNormPanel
from rnnviz.gui.panels.gradflow import GradFlowPanel
from rnnviz.gui.panels.hidden_states import HiddenStatesPanel
from rnnviz.gui.panels.probe_text import ProbeTextPanel
from rnnviz.gui.panels.softmax import SoftmaxPanel
from rnnviz.gui.panels.stepview import StepViewPanel
from rnnviz.gui.panels.time_cursor import TimeCursor
from rnnviz.gui.panels.training_curves import TrainingCurvesPanel
from rnnviz.gui.panels.unrolled import UnrolledPanel
from rnnviz.gui.state.app_state import MAIN_RUN, AppState
from rnnviz.gui.state.controller import AUTOSAVE_INTERVAL_S, Controller
from rnnviz.gui.state.engine import EngineClient, EngineDied
from rnnviz.gui.state.probe_scheduler import ProbeScheduler
from rnnviz.gui.state.settings import SettingsStore
from rnnviz.gui.window import actions as action_table
from rnnviz.gui.window import dialogs
from rnnviz.gui.window import docks as dock_table
from rnnviz.gui.window.banner import BannerBar
from rnnviz.gui.window.closing import CloseGuard
from rnnviz.gui.window.dialogs import ShortcutsDialog
from rnnviz.gui.window.file_actions import FileActions
from rnnviz.gui.window.focus import FOCUS_ORDER, FocusView
from rnnviz.gui.window.keyboard import TrainingKeys
from rnnviz.gui.window.lecture import Lecture
from rnnviz.gui.window.lecture_mode import ZOOM, LectureMode
from rnnviz.gui.window.probe_display import ProbeDisplay
from rnnviz.gui.window.redraw import RedrawScheduler
from rnnviz.gui.window.run_warnings import RunWarnings
from rnnviz.gui.window.status_bar import StatusLabels

RECOVERY_FILE = "recovery.safetensors"  # the autosave, beside the settings file


RECOVERY_FILE = "recovery.safetensors"  # the autosave, beside the settings file


def _app() -> QApplication:
    app = QApplication.instance()
    assert isinstance(app, QApplication)  # a window needs one
    return app


@dataclass(frozen=True)
class Panels:
    controls: ControlsPanel
    curves: TrainingCurvesPanel
    gradnorms: GradNormPanel
    probe_text: ProbeTextPanel
    time_cursor: TimeCursor
    hidden: HiddenStatesPanel
    softmax: SoftmaxPanel
    gradflow: GradFlowPanel
    stepview: StepViewPanel
    unrolled: UnrolledPanel

    def probe_views(self) -> tuple[Any, ...]:
        """The panels that show a probe result, in the order they are shown."""
        return (self.probe_text, self.hidden, self.softmax, self.gradflow, self.unrolled)


class MainWindow(QMainWindow):
    """rnnviz's window. Every method runs in the GUI thread."""

    probe_shown = Signal()  # a probe result was set on every probe panel

    def __init__(
        self,
        config: RunConfig | None = None,
        *,
        settings: SettingsStore | None = None,
        persist: bool = True,
        engine_target: Any = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("rnnviz — a character-level RNN, live")
        self.setObjectName("rnnviz_main_window")
        self.setDockNestingEnabled(True)
        self.settings = settings if settings is not None else SettingsStore()
        self._persist = persist  # read the last session's layout and settings; write on close
        saved = self.settings.config() if persist else None
        self.app_state = AppState(config or saved or RunConfig(), self)
        self.engine = EngineClient(self, target=engine_target)
        recovery = self.settings.path.parent / RECOVERY_FILE
        # a recovery file that outlived the last session: it did not end cleanly
        self._recoverable = recovery if persist and recovery.is_file() else None
        self.controller = Controller(
            self.app_state,
            self.engine,
            self,
            autosave_path=recovery if persist else None,
            autosave_interval_s=float(os.environ.get("RNNVIZ_AUTOSAVE_S", AUTOSAVE_INTERVAL_S)),
        )
        self.close_guard = CloseGuard(self, ask=persist)
        self.probes = ProbeScheduler(self)
        # the text size, before any panel is built
        self.lecture_mode = LectureMode(self, self.settings.get(ZOOM) if persist else 1.0)
        self.panels = self._build_panels()
        self.files = FileActions(self)
        self.docks = dock_table.build_docks(self, self._dock_widgets())
        self.banner_bar = BannerBar(self)
        self.focus_view = FocusView(self, self.docks)
        self.lecture = Lecture(self)
        self.actions_by_name = action_table.build_actions(self, self._action_handlers())
        self.actions_by_name["act_rollback"].setEnabled(False)  # until a divergence
        action_table.build_menus(
            self,
            self.actions_by_name,
            [self.docks[n].toggleViewAction() for n, _ in dock_table.DOCKS],
        )
        self.lecture.build_toolbar(self.actions_by_name)
        self.lecture_mode.built()
        self.lecture_mode.changed.connect(
            lambda: self.actions_by_name["act_lecture"].setChecked(self.lecture_mode.lecture)
        )
        self.status = StatusLabels(self.statusBar())
        p = self.panels
        self.redraw = RedrawScheduler((p.curves, p.gradnorms, p.gradflow), self.probes, self)
        self.warnings = RunWarnings(self.app_state, self.controller, self.probes, self.banner_bar)
        self.probe_display = ProbeDisplay(
            self.app_state,
            self.probes,
            self.redraw,
            p.time_cursor,
            p.probe_views(),
            p.stepview,
            self,
        )
        self.compare_dialog: CompareDialog | None = None
        self._wire()
        self._keys = TrainingKeys(self)
        self.resize(*dock_table.first_size(dock_table.available_screen()))
        self._compact = dock_table.apply_default_layout(self, self.docks)
        self._layout = {"shown": False, "restored": False}
        if persist:
            self._restore_layout()
            if self.settings.probe_text():
                p.probe_text.line_edit().setText(self.settings.probe_text())
        self.app_state.set_probe_text(p.probe_text.text())
        self.probes.set_text(p.probe_text.text())
        if self._recoverable is not None:
            self.banner_bar.show_recovery(self._recoverable)
        self._update_status()
        self.redraw.start()

    # ================================================================ construction

    def _build_panels(self) -> Panels:
        state = self.app_state
        return Panels(
            controls=ControlsPanel(state.config),
            curves=TrainingCurvesPanel(state),
            gradnorms=GradNormPanel(state),
            probe_text=ProbeTextPanel(),
            time_cursor=TimeCursor(),
            hidden=HiddenStatesPanel(),
            softmax=SoftmaxPanel(),
            gradflow=GradFlowPanel(state),
            stepview=StepViewPanel(),
            unrolled=UnrolledPanel(),
        )

    def _dock_widgets(self) -> dict[str, QWidget]:
        p = self.panels
        probe_box = QWidget()
        layout = QVBoxLayout(probe_box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(p.probe_text, 1)
        layout.addWidget(p.time_cursor)
        return {
            "dock_controls": p.controls,
            "dock_curves": p.curves,
            "dock_gradnorms": p.gradnorms,
            "dock_probe_text": probe_box,
            "dock_hidden": p.hidden,
            "dock_softmax": p.softmax,
            "dock_gradflow": p.gradflow,
            "dock_stepview": p.stepview,
            "dock_unrolled": p.unrolled,
        }

    def _action_handlers(self) -> dict[str, Any]:
        c, cursor = self.controller, self.panels.time_cursor
        return {
            "act_play": c.toggle_play,
            "act_step": lambda: c.step(),
            "act_reset": c.reset,
            "act_compare": self.open_compare_dialog,
            "act_rollback": self._rollback,
            "act_prev": lambda: cursor.step(-1),
            "act_next": lambda: cursor.step(1),
            "act_first": cursor.home,
            "act_last": cursor.end,
            "act_play_time": self.panels.unrolled.toggle_playing,
            "act_open_corpus": self.files.open_corpus,
            "act_save": self.files.save_checkpoint,
            "act_load": self.files.load_checkpoint,
            "act_export": self.files.ask_export_metrics,
            "act_quit": self.close,
            "act_lecture": self.lecture_mode.toggle,
            "act_zoom_in": self.lecture_mode.zoom_in,
            "act_zoom_out": self.lecture_mode.zoom_out,
            "act_zoom_reset": self.lecture_mode.zoom_reset,
            "act_reset_layout": self.reset_layout,
            "act_shortcuts": self.show_shortcuts,
            "act_about": lambda: dialogs.show_about(self),
            "act_dismiss": self._on_escape,
            **{
                f"act_focus_{i}": functools.partial(self.focus_view.focus, name)
                for i, name in enumerate(FOCUS_ORDER, start=1)
            },
            **self.lecture.handlers(),
        }

    def _wire(self) -> None:
        s, c, p, probes = self.app_state, self.controller, self.panels, self.probes
        # state -> window and panels
        s.config_changed.connect(p.controls.set_config)
        s.run_info_changed.connect(self._on_run_info)
        s.run_state_changed.connect(self._on_run_state)
        s.runs_changed.connect(self._update_status)
        s.snapshot_changed.connect(probes.snapshot_arrived)
        s.divergence_changed.connect(self._on_divergence)
        s.failure.connect(self._on_failure)
        s.message.connect(self.statusBar().showMessage)
        c.rejected.connect(lambda text: self.banner_bar.show_message(text, "warning"))
        c.not_running.connect(
            lambda: self.statusBar().showMessage(
                "The training engine is not running: press Reset", 5000
            )
        )
        # panels -> controller
        p.controls.play_toggled.connect(c.set_playing)
        p.controls.step_requested.connect(c.step)
        p.controls.reset_requested.connect(c.reset)
        p.controls.hyper_changed.connect(
            lambda lr, theta, on: c.set_hyper(lr=lr, clip_theta=theta, clip_enabled=on)
        )
        p.controls.config_changed.connect(self._on_controls_config)
        p.controls.corpus_file_requested.connect(self.files.open_corpus)
        p.controls.invalid_setting.connect(
            lambda text: self.banner_bar.show_message(text, "warning")
        )
        p.controls.compare_requested.connect(self.open_compare_dialog)
        for plots in (p.curves, p.gradnorms, p.gradflow, p.softmax, p.hidden):  # Export… failed
            plots.export_failed.connect(lambda text: self.banner_bar.show_message(text, "warning"))
        # the probe
        p.probe_text.text_edited.connect(self._on_text_edited)
        p.probe_text.cursor_requested.connect(self.probe_display.move_cursor)
        p.hidden.cursor_requested.connect(self.probe_display.move_cursor)
        p.unrolled.cursor_requested.connect(self.probe_display.move_cursor)
        p.hidden.unit_selected.connect(s.set_unit)
        s.unit_changed.connect(p.probe_text.set_unit)
        s.unit_changed.connect(p.unrolled.set_unit)
        self.probe_display.shown.connect(self.probe_shown.emit)
        probes.failed.connect(
            lambda text: self.statusBar().showMessage(f"Probe failed: {text}", 6000)
        )
        # hidden panels cost nothing: gradient flow is probed, and the step view computed,
        # only while their dock is on screen
        self.docks["dock_gradflow"].visibilityChanged.connect(probes.set_grad_flow_wanted)
        self.docks["dock_stepview"].visibilityChanged.connect(
            self.probe_display.set_stepview_on_screen
        )
        # the banner's actions
        b = self.banner_bar
        b.rollback_requested.connect(self._rollback)
        b.resume_with_clipping_requested.connect(c.resume_with_clipping)
        b.resume_requested.connect(c.resume)
        b.close_run_requested.connect(c.close_diverged_run)
        b.dismissed.connect(s.clear_failure)
        b.recover_requested.connect(self._recover)
        b.restart_requested.connect(c.restart_from_autosave)
        b.reset_requested.connect(c.reset)
        b.discard_recovery_requested.connect(c.discard_autosave)
        self.redraw.drew.connect(self._update_status)

    # ================================================================ layout

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if not self.banner_bar.isHidden():
            self.banner_bar.place()
        self.lecture.blank.cover()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._layout["shown"]:
            self._layout["shown"] = True
            if not self._layout["restored"]:
                QTimer.singleShot(0, self._first_layout)  # dock sizes take once it has its size

    @Slot()
    def _first_layout(self) -> None:
        """The default layout for the size the window is shown at: two rows or three."""
        self.lay_out_for_size()

    def lay_out_for_size(self) -> None:
        """The default layout for the window's size now (``--size`` calls it before the
        window shows: three rows of docks' least heights and a lesson bar grew a 720 px
        window to 830 as it showed)."""
        if (self.height() < dock_table.COMPACT_HEIGHT) != self._compact:
            self._compact = dock_table.apply_default_layout(self, self.docks)
        self._size_docks()
        self.focus_view.refocus()

    def _size_docks(self) -> None:
        width = self.panels.controls.sizeHint().width()
        dock_table.size_default_docks(self, self.docks, width, self._compact)

    def show_panel(self, name: str) -> None:
        """Bring a panel's dock to the front (``rnnviz --show unrolled``)."""
        dock = self.docks[f"dock_{name}"]
        dock.show()
        dock.raise_()

    @Slot()
    def _on_escape(self) -> None:
        if not self.focus_view.unfocus():
            self.banner_bar.hide_message()

    def reset_layout(self) -> None:
        """Every dock back to its default place and size (View ▸ Reset layout)."""
        self.focus_view.unfocus()
        self.lecture_mode.set_lecture(False)
        self._compact = dock_table.apply_default_layout(self, self.docks)
        self._size_docks()

    def _restore_layout(self) -> None:
        geometry = self.settings.geometry()
        if geometry:
            self.restoreGeometry(QByteArray(geometry))
        state = self.settings.window_state()
        if state:
            restored = self.restoreState(QByteArray(state), dock_table.LAYOUT_VERSION)
            self._layout["restored"] = restored
        self.banner_bar.hide()  # a message from the last session is not news

    def save_settings(self) -> None:
        """Layout, geometry, the run settings and the probe text, for the next start."""
        self.settings.set_geometry(bytes(self.saveGeometry().data()))
        self.settings.set_window_state(bytes(self.saveState(dock_table.LAYOUT_VERSION).data()))
        self.settings.set_config(self.app_state.config)
        self.settings.set_probe_text(self.panels.probe_text.text())
        self.settings.save()

    # ================================================================ what tests and the bench read

    @property
    def probe_result(self) -> Any:
        shown = self.probes.current
        return None if shown is None else shown.result

    def banner_text(self) -> str:
        return self.banner_bar.text()

    def show_on_screen(self) -> None:
        """As it was left last time, else maximised: the whole screen is the lecture's."""
        if self._layout["restored"] or self.settings.geometry():
            self.show()
        else:
            self.showMaximized()

    def start_engine(self) -> None:
        self.controller.start_engine()

    # ================================================================ state -> window

    @Slot(object)
    def _on_run_info(self, info: RunInfo) -> None:
        p = self.panels
        if self.app_state.last_failure is None and not self.banner_bar.showing_recovery():
            self.banner_bar.hide_message()
        self._follow_corpus_probe_text(info)
        notes = "; ".join(info.notes)
        p.controls.set_run_info(
            f"<b>{info.corpus_name}</b>: {info.corpus_chars:,} characters, "
            f"vocabulary {len(info.vocab_tokens)}" + (f"<br>{notes}" if notes else "")
        )
        self._update_status()

    @Slot(int)
    def _on_run_state(self, run_id: int) -> None:
        self.actions_by_name["act_rollback"].setEnabled(self.controller.can_roll_back())
        if run_id == MAIN_RUN:
            training = self.app_state.training
            self.probes.set_training(training)
            self.panels.controls.set_training(training)
        self._update_status()

    def _follow_corpus_probe_text(self, info: RunInfo) -> None:
        """A new corpus brings its own probe text, unless the user typed one."""
        line = self.panels.probe_text.line_edit()
        hint = probe_defaults.alphabet_hint(info.config.corpus)
        line.setToolTip(hint or "Type any text: the model reads it one character at a time")
        wanted = probe_defaults.default_probe_text(info.config.corpus)
        if line.text() != wanted and probe_defaults.is_default_probe_text(line.text()):
            self.set_probe_text(wanted)

    def set_probe_text(self, text: str) -> None:
        """Show and probe ``text`` as if it had been typed (a corpus's default, ``--probe``)."""
        self.panels.probe_text.line_edit().setText(text)
        self.app_state.set_probe_text(text)
        self.probes.set_text(text)

    @Slot(object)
    def _on_divergence(self, event: Divergence | None) -> None:
        state = self.app_state
        self.actions_by_name["act_rollback"].setEnabled(self.controller.can_roll_back())
        if event is None:
            if state.last_failure is None:
                self.banner_bar.hide_message()
            return
        theta = verdicts.resume_theta(state.config.train.clip_theta)
        several = bool(state.compare_runs())
        self.banner_bar.show_divergence(
            event, state.run_name(event.run_id), several_runs=several, theta=theta
        )

    @Slot(object)
    def _on_failure(self, failure: Failure) -> None:
        if isinstance(failure, EngineDied):
            self.banner_bar.show_engine_died(failure.message, self.controller.autosaved_step)
        else:
            self.banner_bar.show_message(failure.message)
        self.statusBar().showMessage(failure.message, 10000)
        # a Reset the engine refused leaves the old run: show its settings again
        self.panels.controls.set_config(self.app_state.config)

    @Slot()
    def _update_status(self) -> None:
        self.status.update(self.app_state)

    # ================================================================ intents

    @Slot(object)
    def _on_controls_config(self, config: RunConfig) -> None:
        if self.app_state.main.step > 0 and not self.confirm_reset():
            self.panels.controls.set_config(self.app_state.config)
            return
        self.controller.apply_config(config)

    def confirm_reset(self) -> bool:
        return dialogs.confirm_reset(self, self.app_state.main.step)

    @Slot()
    def _recover(self) -> None:
        """Load the autosave the last session left (it ended without closing the window)."""
        if self._recoverable is not None:
            self.controller.start_engine()
            self.controller.load(str(self._recoverable))
            self._recoverable = None

    @Slot()
    def _rollback(self) -> None:
        if not self.controller.rollback():
            self.statusBar().showMessage("Nothing to roll back to: no divergence is shown", 5000)

    @Slot()
    def open_compare_dialog(self) -> CompareDialog:
        """Training ▸ Compare run… (Ctrl+K, the controls' button): the presets dialog."""
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        state, c = self.app_state, self.controller
        dialog = CompareDialog(state.config, state.compare_runs(), state.main.step, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fork_requested.connect(
            lambda changes, label, reset: c.fork(changes, label, reset=reset)
        )
        dialog.close_requested.connect(c.close_run)
        dialog.close_all_requested.connect(c.close_compare_runs)
        dialog.destroyed.connect(self._on_compare_dialog_destroyed)
        self.compare_dialog = dialog
        dialog.show()
        return dialog

    @Slot()
    def _on_compare_dialog_destroyed(self) -> None:
        self.compare_dialog = None

    def shortcut_rows(self) -> list[tuple[str, str]]:
        return action_table.shortcut_rows(self.actions_by_name)

    @Slot()
    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self.shortcut_rows(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    # ================================================================ the probe on screen

    @Slot(str)
    def _on_text_edited(self, text: str) -> None:
        self.app_state.set_probe_text(text)
        self.probes.text_edited(text)

    # ================================================================ closing

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        """Ask before unsaved training is lost, let every save in flight finish, then stop
        everything (see CloseGuard)."""
        if not self.close_guard.may_close():
            event.ignore()
            return
        self.lecture_mode.set_lecture(False)  # the next start opens as the window was
        if self._persist:
            self.save_settings()
        self.hide()  # gone from the screen at once; stopping the engine takes a moment
        self.shutdown()
        if not self.controller.pending_saves:
            self.controller.discard_autosave()  # a clean exit: nothing to recover
        event.accept()

    def shutdown(self) -> None:
        """Stop the timers, the probe thread and the engine; idempotent."""
        self.redraw.stop()
        self.probes.stop()
        self.controller.shutdown()
        self.lecture_mode.reset()

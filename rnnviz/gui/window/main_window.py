"""The main window: it builds the state, the controller, the probe scheduler and the panels,
wires them together, and shuts them down. Decisions live in those units, not here.

torch is imported lazily (first probe, first engine start), so the window shows quickly.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QResizeEvent, QShowEvent
from PySide6.QtWidgets import QApplication, QHBoxLayout, QMainWindow, QVBoxLayout, QWidget

from rnnviz.core.config import RunConfig
from rnnviz.gui.panels.compare_dialog import CompareDialog
from rnnviz.gui.panels.controls import ControlsPanel
from rnnviz.gui.panels.film import FilmPanel
from rnnviz.gui.panels.generation import GenerationPanel
from rnnviz.gui.panels.grad_norms import GradNormPanel
from rnnviz.gui.panels.gradflow import GradFlowPanel
from rnnviz.gui.panels.hidden_states import HiddenStatesPanel
from rnnviz.gui.panels.probe_text import ProbeTextPanel
from rnnviz.gui.panels.saturation import SaturationPanel
from rnnviz.gui.panels.softmax import SoftmaxPanel
from rnnviz.gui.panels.stepview import StepViewPanel
from rnnviz.gui.panels.time_cursor import TimeCursor
from rnnviz.gui.panels.timeline import TimelineBar
from rnnviz.gui.panels.training_curves import TrainingCurvesPanel
from rnnviz.gui.panels.unrolled import UnrolledPanel
from rnnviz.gui.state.app_state import AppState
from rnnviz.gui.state.controller import AUTOSAVE_INTERVAL_S, Controller
from rnnviz.gui.state.engine import EngineClient
from rnnviz.gui.state.probe_scheduler import ProbeScheduler
from rnnviz.gui.state.saturation_worker import SaturationFeed
from rnnviz.gui.state.settings import SettingsStore
from rnnviz.gui.window import actions as action_table
from rnnviz.gui.window import dialogs
from rnnviz.gui.window import docks as dock_table
from rnnviz.gui.window.banner import BannerBar
from rnnviz.gui.window.closing import CloseGuard
from rnnviz.gui.window.dialogs import ShortcutsDialog
from rnnviz.gui.window.export_menu import ExportMenus
from rnnviz.gui.window.file_actions import FileActions
from rnnviz.gui.window.focus import FOCUS_ORDER, FocusView
from rnnviz.gui.window.keyboard import TrainingKeys
from rnnviz.gui.window.layout import WindowLayout
from rnnviz.gui.window.lecture import Lecture
from rnnviz.gui.window.lecture_mode import ZOOM, LectureMode
from rnnviz.gui.window.probe_display import ProbeDisplay
from rnnviz.gui.window.reactions import StateReactions
from rnnviz.gui.window.redraw import RedrawScheduler
from rnnviz.gui.window.scheme import SCHEMES, SchemeChoice
from rnnviz.gui.window.session_files import SessionFiles
from rnnviz.gui.window.timeline import TimelineView

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
    timeline: TimelineBar
    hidden: HiddenStatesPanel
    softmax: SoftmaxPanel
    gradflow: GradFlowPanel
    stepview: StepViewPanel
    unrolled: UnrolledPanel
    film: FilmPanel
    generation: GenerationPanel
    saturation: SaturationPanel

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
        # Qt adds " — rnnviz" (the application's display name) on the title bar itself
        self.setWindowTitle("a character-level RNN, live")
        self.setObjectName("rnnviz_main_window")
        self.setDockNestingEnabled(True)
        self.settings = settings if settings is not None else SettingsStore()
        self._persist = persist  # read the last session's layout and settings; write on close
        saved = self.settings.config() if persist else None
        self.app_state = AppState(config or saved or RunConfig(), self)
        self.engine = EngineClient(self, target=engine_target)
        recovery = self.settings.path.parent / RECOVERY_FILE
        # a recovery file that outlived the last session: it did not end cleanly
        recoverable = recovery if persist and recovery.is_file() else None
        self.controller = Controller(
            self.app_state,
            self.engine,
            self,
            autosave_path=recovery if persist else None,
            autosave_interval_s=float(os.environ.get("RNNVIZ_AUTOSAVE_S", AUTOSAVE_INTERVAL_S)),
        )
        self.close_guard = CloseGuard(self, ask=persist)
        self.probes = ProbeScheduler(self)
        self.saturation = SaturationFeed(self.app_state, self)  # the gate saturation's thread
        # the text size, before any panel is built
        self.lecture_mode = LectureMode(self, self.settings.get(ZOOM) if persist else 1.0)
        self.panels = self._build_panels()
        self.files = FileActions(self)
        self.session_files = SessionFiles(self)
        self.docks = dock_table.build_docks(self, self._dock_widgets())
        self.banner_bar = BannerBar(self)
        self.exports = ExportMenus(self)
        self.focus_view = FocusView(self, self.docks)
        self.lecture = Lecture(self)
        self.actions_by_name = action_table.build_actions(self, self._action_handlers())
        self.actions_by_name["act_rollback"].setEnabled(False)  # until a divergence
        menus = action_table.build_menus(
            self,
            self.actions_by_name,
            [self.docks[n].toggleViewAction() for n, _ in dock_table.DOCKS],
        )
        self.exports.add_to(menus["&File"], self.actions_by_name["act_record_window"])
        self.lecture.build_toolbar(self.actions_by_name)
        self.scheme = SchemeChoice(self, self.actions_by_name)
        self.lecture_mode.built()
        self.lecture_mode.changed.connect(
            lambda: self.actions_by_name["act_lecture"].setChecked(self.lecture_mode.lecture)
        )
        p = self.panels
        self.redraw = RedrawScheduler((p.curves, p.gradnorms, p.gradflow), self.probes, self)
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
        self.reactions = StateReactions(self, recoverable)
        self.reactions.wire()
        self.timeline = TimelineView(self)
        self.timeline.wire()
        self.scheme.recoloured.connect(self.reactions.update_status)
        self._keys = TrainingKeys(self)
        self.dock_layout = WindowLayout(self)
        if persist:
            self.dock_layout.restore()
            if self.settings.probe_text():
                p.probe_text.line_edit().setText(self.settings.probe_text())
        self.app_state.set_probe_text(p.probe_text.text())
        self.probes.set_text(p.probe_text.text())
        self.reactions.offer_recovery()
        self.reactions.update_status()
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
            timeline=TimelineBar(),
            hidden=HiddenStatesPanel(),
            softmax=SoftmaxPanel(),
            gradflow=GradFlowPanel(state),
            stepview=StepViewPanel(),
            unrolled=UnrolledPanel(),
            film=FilmPanel(),
            generation=GenerationPanel(),
            saturation=SaturationPanel(),
        )

    def _dock_widgets(self) -> dict[str, QWidget]:
        p = self.panels
        probe_box = QWidget()
        layout = QVBoxLayout(probe_box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(p.probe_text, 1)
        # the time cursor and the timeline share a row: a row of its own made the probe text
        # dock too tall for a 540-px-high window (1920x1080 at scale 2)
        row = QHBoxLayout()
        row.setSpacing(12)
        row.addWidget(p.time_cursor, 1)
        row.addWidget(p.timeline, 1)
        layout.addLayout(row)
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
            "dock_film": p.film,
            "dock_generation": p.generation,
            "dock_saturation": p.saturation,
        }

    def _action_handlers(self) -> dict[str, Any]:
        c, cursor = self.controller, self.panels.time_cursor
        return {
            "act_play": c.toggle_play,
            "act_step": lambda: c.step(),
            "act_reset": c.reset,
            "act_compare": self.open_compare_dialog,
            "act_rollback": lambda: self.reactions.rollback(),
            "act_prev": lambda: cursor.step(-1),
            "act_next": lambda: cursor.step(1),
            "act_first": cursor.home,
            "act_last": cursor.end,
            "act_play_time": self.panels.unrolled.toggle_playing,
            "act_timeline_back": lambda: self.app_state.view_neighbour(-1),
            "act_timeline_forward": lambda: self.app_state.view_neighbour(+1),
            "act_timeline_live": self.app_state.go_live,
            "act_open_corpus": self.files.open_corpus,
            "act_save": self.files.save_checkpoint,
            "act_load": self.files.load_checkpoint,
            "act_open_model": self.files.open_model,
            "act_export": self.files.ask_export_metrics,
            "act_open_metrics": self.files.ask_open_metrics,
            "act_tensorboard": self.files.toggle_tensorboard,
            "act_save_session": self.session_files.ask_save,
            "act_open_session": self.session_files.ask_open,
            "act_export_all": self.exports.ask_export_all,
            "act_record_window": self.exports.ask_record_window,
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
            **{
                f"act_scheme_{name}": functools.partial(lambda n: self.scheme.choose(n), name)
                for name in SCHEMES
            },
        }

    # ================================================================ layout

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if not self.banner_bar.isHidden():
            self.banner_bar.place()
        self.lecture.blank.cover()
        self.focus_view.fit()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.dock_layout.first_show()

    def lay_out_for_size(self, size: tuple[int, int] | None = None) -> None:
        self.dock_layout.lay_out_for_size(size)

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
        self.dock_layout.reset()

    def save_settings(self) -> None:
        """Layout, geometry, the run settings and the probe text, for the next start."""
        self.dock_layout.save()
        self.settings.set_config(self.app_state.config)
        self.settings.set_probe_text(self.panels.probe_text.text())
        self.settings.save()

    # ================================================================ what tests and the bench read

    @property
    def status(self) -> Any:
        """The status bar's labels (tests read them)."""
        return self.reactions.status

    @property
    def probe_result(self) -> Any:
        shown = self.probes.current
        return None if shown is None else shown.result

    def banner_text(self) -> str:
        return self.banner_bar.text()

    def show_on_screen(self) -> None:
        self.dock_layout.show_on_screen()

    def start_engine(self) -> None:
        self.controller.start_engine()

    # ================================================================ state -> window

    def set_probe_text(self, text: str) -> None:
        """Show and probe ``text`` as if it had been typed (a corpus's default, ``--probe``)."""
        self.panels.probe_text.line_edit().setText(text)
        self.app_state.set_probe_text(text)
        self.probes.set_text(text)

    # ================================================================ intents

    def confirm_reset(self) -> bool:
        return dialogs.confirm_reset(self, self.app_state.main.step)

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
        self.timeline.stop()
        self.saturation.stop()
        self.exports.stop()
        self.session_files.stop()
        self.controller.shutdown()
        self.lecture_mode.reset()

"""The main window: docks, menus, shortcuts, the redraw timer, and the wiring between them.

The window owns an :class:`~rnnviz.gui.engine.EngineClient` (the engine process and the
training thread that reads it) and reacts to its events in bound slots, in the GUI thread:

* ``MetricsBatch`` → the metric panels' buffers (drawn by the 30 Hz redraw timer, only if new)
* ``ParamSnapshot`` → kept; the typed string is re-probed on it (at most ~4 per second while
  training), **in this process** with ``core.probe`` (a few ms at batch 1, so typing never
  waits for a training step)
* ``StateChanged`` / ``RunInfo`` / ``Divergence`` / ``Failure`` / ``Saved`` → controls, status
  bar and the banner

torch is imported lazily (first probe, first engine start), so the window shows quickly.
"""

from __future__ import annotations

import html
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QKeySequence,
    QResizeEvent,
    QShowEvent,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

import rnnviz
from rnnviz.core.config import ConfigError, RunConfig
from rnnviz.core.messages import (
    CloseRun,
    Divergence,
    Failure,
    Fork,
    Load,
    MetricsBatch,
    ParamSnapshot,
    Pause,
    Reset,
    Rollback,
    RunInfo,
    Save,
    Saved,
    SetHyper,
    Start,
    StateChanged,
    Step,
)
from rnnviz.gui import theme
from rnnviz.gui.compare import CompareDialog, unique_label
from rnnviz.gui.controls import ControlsPanel
from rnnviz.gui.engine import EngineClient
from rnnviz.gui.gradflow_panel import GradFlowPanel
from rnnviz.gui.metric_panels import GradNormPanel, TrainingCurvesPanel, run_colour
from rnnviz.gui.probe_panels import HiddenStatesPanel, ProbeTextPanel, SoftmaxPanel, TimeCursor
from rnnviz.gui.probe_worker import ProbeRequest, ProbeWorker
from rnnviz.gui.stepview_panel import PLACEHOLDER_GATED, StepViewPanel

# The redraw timer ticks at ~80 Hz and redraws ONE dirty panel per tick, round robin (a
# re-probe's panels first, one per tick): the three metric panels then redraw at ~20 Hz or more
# (metrics arrive every ~40 ms), and no single pass of the event loop paints more than one
# panel, which keeps the loop's lag short.
REDRAW_INTERVAL_MS = 12
# typing: keystrokes that arrive in one pass of the event loop are coalesced into one probe;
# a probe takes a few ms, so waiting for a pause in the typing would only add latency
PROBE_DEBOUNCE_MS = 0
PROBE_MIN_INTERVAL_S = 0.25  # while training: at most ~4 probes per second
REPROBE_COST_FACTOR = 4.0  # ... and at most a quarter of the time probing (long texts)
# while training, a re-probe of more multiply-adds than this (~2 ms here) runs on the probe
# thread; smaller ones, keystrokes and everything while paused run on the GUI thread
PROBE_INLINE_WORK = 20_000_000
# after a key in the probe text, the metric panels wait this long before their next redraw
TYPING_PRIORITY_S = 0.04
# while training, a re-probe on a new snapshot waits until the typing has paused this long
# (keys meanwhile are answered on the model on screen, one step each): a re-probe computing
# on the probe thread when a key came held the key back until it finished (the two threads
# share the GIL and the core the engine leaves), which made the slow keystrokes while training
TYPING_QUIET_S = 0.4
# ... but the model on screen is never older than this while the typing goes on
TYPING_MAX_STALE_S = 2.0
# while typing, a metric panel redraws at most this often (else at every redraw tick with
# news): a key that came while one painted (~5 ms for the gradient norms) waited for it
TYPING_METRIC_INTERVAL_S = 0.25
# while training, an edit whose probe is larger than this (a long text pasted: ~190 ms at 500
# characters, hidden 256, with the gradient flow) runs on the probe thread too, so the window
# does not freeze; keys typed meanwhile wait for it, then reuse what it computed
PROBE_KEY_THREAD_WORK = 2_000_000_000
# while paused, a probe of more multiply-adds than this uses this many torch threads
PROBE_TWO_THREADS_WORK = 100_000_000
PROBE_PAUSED_THREADS = min(2, os.cpu_count() or 1)
LAYOUT_VERSION = 2  # 2: the gradient-flow and step-view docks
SETTINGS_ORG = "rnnviz"
SETTINGS_APP = "rnnviz"

DOCKS: tuple[tuple[str, str], ...] = (
    ("dock_controls", "Controls"),
    ("dock_curves", "Training curves"),
    ("dock_gradnorms", "Gradient norms"),
    ("dock_probe_text", "Probe text"),
    ("dock_hidden", "Hidden states"),
    ("dock_softmax", "Softmax"),
    ("dock_gradflow", "Gradient flow"),
    ("dock_stepview", "Step view"),
)
MAIN_RUN_LABEL = "main"  # the main run's name in the legends once compare runs exist

# keys that are not QAction shortcuts but that the shortcuts dialog lists
EXTRA_KEYS: tuple[tuple[str, str], ...] = (
    ("click a row of the hidden-state heatmap", "trace that unit; colour the text by it"),
    ("click a character of the probe text", "move the time cursor there"),
)


def readable_cause(text: str) -> str:
    """core writes ``||g||`` and ``theta`` (plain ASCII); the banner uses the slides' symbols."""
    return text.replace("||g||", "‖g‖").replace("theta", "θ")


def rollback_target(event: Divergence) -> int | None:
    """The step to roll back to: the newest kept snapshot *before* the divergent step (one
    taken at that very step holds its result), else the newest there is."""
    steps = sorted(event.rollback_steps)
    before = [s for s in steps if s < event.step]
    if before:
        return before[-1]
    return steps[-1] if steps else None


def divergence_message(event: Divergence, run_name: str | None = None) -> str:
    """The banner's text (rich text): what happened at which step, ‖g‖, the likely cause."""
    loss, g = event.loss, event.grad_norm_before_clip
    if event.reason == "loss_spike":
        what = f"the loss jumped to {theme.plain_number(loss)}"
        median = event.recent_median_loss
        if median is not None and median > 0 and math.isfinite(loss):
            ratio = theme.plain_number(float(f"{loss / median:.2g}"))
            what += f", {ratio}× its recent median ({theme.plain_number(median)})"
    elif not math.isfinite(loss):
        what = (
            f"the loss became non-finite ({theme.plain_number(loss)}); the step was skipped, "
            "the parameters are the last good ones"
        )
    else:
        what = (
            f"a gradient became non-finite (loss {theme.plain_number(loss)}); the step was "
            "skipped, the parameters are the last good ones"
        )
    who = f"run '{html.escape(run_name)}', " if run_name else ""
    return (
        f"<b>⚠ {who}step {event.step}: {html.escape(what)}.</b> "
        f"‖g‖ before clipping = <b>{theme.plain_number(g)}</b>. "
        f"Likely cause: {html.escape(readable_cause(event.likely_cause))}. "
        "Training is paused."
    )


_torch_threads = 0  # what this process last set (0: not yet)


def _use_torch_threads(n: int) -> None:
    """Probes here use one torch thread while training: the engine process trains on the
    other core, and a second OpenMP thread in this process would wait on it at every op
    (measured: a 20-character probe took 140 ms instead of 3 ms while training with two
    threads). While paused that core is idle, and a large probe uses both (a 500-character
    probe with the gradient flow: 184 -> 106 ms). Setting it costs nothing measurable."""
    global _torch_threads
    if n != _torch_threads:
        import torch

        torch.set_num_threads(n)
        _torch_threads = n


def default_settings() -> QSettings:
    return QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, SETTINGS_ORG, SETTINGS_APP
    )


@dataclass(frozen=True)
class _ProbeTag:
    """The window's note on a probe request: how to show the answer, and the model and
    vocabulary it came from (the step view recomputes a step on the same model)."""

    staggered: bool
    keystroke: bool
    model: Any
    vocab: Any
    snapshot: ParamSnapshot


class Banner(QWidget):
    """A dismissable message across the top of the window (failures, divergences), with
    optional action buttons (a divergence's "Roll back" and "Resume with clipping on")."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self._label = QLabel()
        self._label.setWordWrap(True)
        self._label.setFont(theme.font(1.0))
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # its minimum size hint assumes a narrow width (many lines); the banner sizes it
        self._label.setMinimumSize(1, 1)
        close = QPushButton("Dismiss")
        close.setToolTip("Hide this message (Esc)")
        close.clicked.connect(self._on_dismiss_clicked)
        self._actions: list[QPushButton] = []
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self._label, 1)
        layout.addWidget(close)
        self._close = close
        self.set_kind("error")

    def set_actions(self, buttons: list[QPushButton]) -> None:
        """Show these buttons before "Dismiss" (and no others)."""
        layout = self.layout()
        for button in self._actions:
            if button not in buttons:
                layout.removeWidget(button)
                button.hide()
                button.setParent(None)
        for i, button in enumerate(buttons):
            layout.insertWidget(1 + i, button)
            button.show()
        self._actions = list(buttons)

    def actions_shown(self) -> list[QPushButton]:
        return list(self._actions)

    def set_kind(self, kind: str) -> None:
        colours = {"error": ("#fdecea", "#8a1c1c"), "warning": ("#fff4e5", "#7a4b00")}
        bg, fg = colours.get(kind, colours["warning"])
        self.setStyleSheet(f"#banner {{ background: {bg}; }} QLabel {{ color: {fg}; }}")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)

    def text(self) -> str:
        return self._label.text()

    def set_text(self, text: str, *, rich: bool = False) -> None:
        self._label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
        self._label.setText(text)
        self._fit_height()

    def plain_text(self) -> str:
        """The message without markup (what a test or a screen reader reads)."""
        if self._label.textFormat() != Qt.TextFormat.RichText:
            return self._label.text()
        doc = QTextDocument()
        doc.setHtml(self._label.text())
        return doc.toPlainText()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            # after this resize has been laid out: resizing inside it confuses the layout
            QTimer.singleShot(0, self._fit_height)

    @Slot()
    def _fit_height(self) -> None:
        # a tool bar knows nothing of height-for-width: without this, a wrapped message
        # would get the height it needs at a narrow width (a tall, mostly empty band)
        # hidden, the banner has no width of its own yet: it will span the window
        width = self.width() if self.isVisible() else self.window().width() - 16
        height = self.layout().totalHeightForWidth(max(width, 400))
        if height < 0:  # no height-for-width (yet): keep the size there is
            return
        if self.minimumHeight() != height or self.maximumHeight() != height:
            self.setFixedHeight(height)

    @Slot()
    def _on_dismiss_clicked(self) -> None:
        self.dismissed.emit()


class ShortcutsDialog(QDialog):
    """Every keyboard shortcut of the window, read from its actions."""

    def __init__(self, rows: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        table = QTableWidget(len(rows), 2)
        table.setObjectName("shortcuts_table")
        table.setHorizontalHeaderLabels(["key", "does"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, (keys, what) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(keys))
            table.setItem(i, 1, QTableWidgetItem(what))
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(560, 520)
        self.table = table


# the first window size, shrunk to fit a smaller screen
DEFAULT_SIZE = (1600, 1000)
# below this window height the default layout has two rows of plots, not three: the probe
# text on top, then one tab group a column (curves | hidden states, grad norms | softmax |
# gradient flow | step view). Three rows in 768 px squashed every plot to ~100 px (the
# softmax bars to a line, rotated axis labels running into each other).
COMPACT_HEIGHT = 900


def first_size(available: tuple[int, int] | None) -> tuple[int, int]:
    """DEFAULT_SIZE, or the screen's available size where that is smaller (a 1366x768 laptop
    or a 1280x720 projector: a 1600x1000 window would hang off it)."""
    if available is None:
        return DEFAULT_SIZE
    return (min(DEFAULT_SIZE[0], available[0]), min(DEFAULT_SIZE[1], available[1]))


def _available_screen() -> tuple[int, int] | None:
    """The primary screen's room for windows; None on the offscreen platform, whose fixed
    800x600 "screen" is no real one (screenshots, the bench and tests size their windows)."""
    from PySide6.QtGui import QGuiApplication

    screen = QGuiApplication.primaryScreen()
    if screen is None or QGuiApplication.platformName() == "offscreen":
        return None
    room = screen.availableGeometry()
    return (room.width(), room.height())


class MainWindow(QMainWindow):
    """rnnviz's window. Every method runs in the GUI thread."""

    probe_shown = Signal()  # a probe result was set on the probe panels
    _compact = False  # the two-row default layout (see COMPACT_HEIGHT) is in use

    def __init__(
        self,
        config: RunConfig | None = None,
        *,
        settings: QSettings | None = None,
        persist: bool = True,
        engine_target: Any = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("rnnviz — a character-level RNN, live")
        self.setObjectName("rnnviz_main_window")
        self.setDockNestingEnabled(True)
        self._settings = settings if settings is not None else default_settings()
        # persist: read the last session's layout and settings, and write them on close
        self._persist = persist
        saved_config = self._saved_config() if persist else None
        self._config: RunConfig = config or saved_config or RunConfig()

        # run state, as the engine last reported it
        self._state = "idle"
        self._step = 0
        self._epoch = 0
        self._tokens_per_s = 0.0
        self._nonfinite_total = 0
        self._run_info: RunInfo | None = None
        self._snapshot: ParamSnapshot | None = None
        self._records_received = 0
        self._last_divergence: Divergence | None = None
        self._last_failure: Failure | None = None
        # compare runs (run_id -> label) and every run's step and state, as last reported
        self._compare_runs: dict[int, str] = {}
        self._run_steps: dict[int, int] = {}
        self._run_states: dict[int, str] = {}
        self._compare_dialog: CompareDialog | None = None
        # the model + vocabulary the shown probe result came from (the step view uses them)
        self._step_view_source: tuple[Any, Any] | None = None
        self._step_view_stale = True
        # whether these docks are on screen (a tab behind another is not; isVisible() says
        # it is): kept from their visibilityChanged signals
        self._gradflow_wanted = False
        self._stepview_on_screen = False
        # probing
        self._probe_model: Any = None
        self._probe_model_snapshot: ParamSnapshot | None = None
        self._probe_vocab: Any = None
        self._prober: Any = None  # core.probe.Prober on _probe_model: reuses the unchanged prefix
        # probes run on the probe thread; tickets order them (see rnnviz.gui.probe_worker)
        self._probe_worker = ProbeWorker(self)
        self._probe_worker.done.connect(self._on_probe_done)
        self._probe_ticket = 0  # of the last request
        self._shown_ticket = 0  # of the result on screen
        self._reprobe_cost_s = 0.0  # how long the last re-probe on a new snapshot took
        self._typing_until = 0.0  # monotonic time until which typing has the event loop
        self._last_key_time = -math.inf  # monotonic time of the last edit of the probe text
        self._last_metric_redraw = -math.inf  # monotonic time a metric panel last redrew
        self._probe_snapshot: ParamSnapshot | None = None  # the shown result's parameters
        self._probe_result: Any = None
        self._probe_error = ""
        self._last_probe_time = -math.inf
        self.probe_with_grad_flow = False  # the gradient-flow panel turns it on

        self._redraw_next = 0  # the metric panel the next redraw tick looks at first
        self._pending_probe_panels: list[Any] = []  # a staggered probe result still to show
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setInterval(REDRAW_INTERVAL_MS)
        self._redraw_timer.timeout.connect(self._on_redraw_timer)
        self._probe_debounce = QTimer(self)
        self._probe_debounce.setSingleShot(True)
        self._probe_debounce.setInterval(PROBE_DEBOUNCE_MS)
        self._probe_debounce.timeout.connect(self._on_probe_timer)
        self._probe_throttle = QTimer(self)
        self._probe_throttle.setSingleShot(True)
        self._probe_throttle.timeout.connect(self._on_probe_throttle_timer)

        self.engine = EngineClient(self._config, self, target=engine_target)
        self.engine.event.connect(self._on_engine_event)

        self._build_panels()
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_status_bar()
        self._build_banner()
        self.resize(*first_size(_available_screen()))
        self._apply_default_layout()
        self._shown_once = False
        self._layout_restored = False
        if persist:
            self._restore_layout()
        text = self._settings.value("probe_text")
        if persist and isinstance(text, str) and text:
            self.probe_text.line_edit().setText(text)

        self._update_status()
        self._redraw_timer.start()

    # ================================================================ construction

    def _build_panels(self) -> None:
        self.controls = ControlsPanel(self._config)
        self.curves = TrainingCurvesPanel()
        self.gradnorms = GradNormPanel()
        self.probe_text = ProbeTextPanel()
        self.time_cursor = TimeCursor()
        self.hidden = HiddenStatesPanel()
        self.softmax = SoftmaxPanel()
        self.gradflow = GradFlowPanel()
        self.stepview = StepViewPanel()

        self.controls.play_toggled.connect(self._on_controls_play_toggled)
        self.controls.step_requested.connect(self._on_controls_step_requested)
        self.controls.reset_requested.connect(self._on_controls_reset_requested)
        self.controls.hyper_changed.connect(self._on_controls_hyper_changed)
        self.controls.config_changed.connect(self._on_controls_config_changed)
        self.controls.corpus_file_requested.connect(self._on_open_corpus)
        self.controls.invalid_setting.connect(self._on_controls_invalid_setting)
        self.controls.compare_requested.connect(self._on_action_compare)
        self.probe_text.text_edited.connect(self._on_probe_text_edited)
        self.probe_text.cursor_requested.connect(self._on_cursor_requested)
        self.hidden.cursor_requested.connect(self._on_cursor_requested)
        self.hidden.unit_selected.connect(self._on_hidden_unit_selected)
        self.time_cursor.cursor_changed.connect(self._on_time_cursor_changed)

    def _build_docks(self) -> None:
        probe_box = QWidget()
        probe_layout = QVBoxLayout(probe_box)
        probe_layout.setContentsMargins(0, 0, 0, 0)
        probe_layout.setSpacing(0)
        probe_layout.addWidget(self.probe_text, 1)
        probe_layout.addWidget(self.time_cursor)
        widgets = {
            "dock_controls": self.controls,
            "dock_curves": self.curves,
            "dock_gradnorms": self.gradnorms,
            "dock_probe_text": probe_box,
            "dock_hidden": self.hidden,
            "dock_softmax": self.softmax,
            "dock_gradflow": self.gradflow,
            "dock_stepview": self.stepview,
        }
        self.docks: dict[str, QDockWidget] = {}
        for name, title in DOCKS:
            dock = QDockWidget(title, self)
            dock.setObjectName(name)
            # an opaque panel: a label or field inside it that changes is repainted from the
            # panel's background, not from the dock's frame and title and the window's (that
            # was ~10 % of a keystroke's time)
            widgets[name].setAutoFillBackground(True)
            dock.setWidget(widgets[name])
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                | QDockWidget.DockWidgetFeature.DockWidgetClosable
            )
            self.docks[name] = dock
        # the docks fill the window: no central widget between them
        self.setCentralWidget(None)
        # tabs of tabbed docks above them, where a reader looks first
        self.setTabPosition(Qt.DockWidgetArea.AllDockWidgetAreas, QTabWidget.TabPosition.North)
        # hidden panels cost nothing: gradient flow is probed, and the step view computed,
        # only while their dock is on screen
        self.docks["dock_gradflow"].visibilityChanged.connect(self._on_gradflow_visibility)
        self.docks["dock_stepview"].visibilityChanged.connect(self._on_stepview_visibility)

    def _action(
        self, text: str, slot: Any, shortcut: Any = None, tip: str = "", name: str = ""
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            keys = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        if name:
            action.setObjectName(name)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work even while the menu bar is hidden (F11)
        return action

    def _build_actions(self) -> None:
        K = QKeySequence.StandardKey
        self.act_play = self._action(
            "Play / Pause",
            self._on_action_play,
            Qt.Key.Key_Space,
            "Start or pause training",
            "act_play",
        )
        self.act_step = self._action(
            "Step one minibatch",
            self._on_action_step,
            Qt.Key.Key_Right,
            "Train exactly one minibatch, then pause",
            "act_step",
        )
        self.act_reset = self._action(
            "Reset",
            self._on_action_reset,
            "Ctrl+R",
            "Back to the initial parameters (same seed, same init)",
            "act_reset",
        )
        self.act_compare = self._action(
            "Compare run…",
            self._on_action_compare,
            "Ctrl+K",
            "Train another run from the same start with one setting changed, and plot both",
            "act_compare",
        )
        self.act_prev = self._action(
            "Previous time step",
            self._on_action_prev,
            ["Alt+Left", "Ctrl+Left"],
            "Move the time-step cursor one character left",
            "act_prev",
        )
        self.act_next = self._action(
            "Next time step",
            self._on_action_next,
            ["Alt+Right", "Ctrl+Right"],
            "Move the time-step cursor one character right",
            "act_next",
        )
        self.act_first = self._action(
            "First time step",
            self._on_action_first,
            Qt.Key.Key_Home,
            "Time-step cursor to the first character",
            "act_first",
        )
        self.act_last = self._action(
            "Last time step",
            self._on_action_last,
            Qt.Key.Key_End,
            "Time-step cursor to the last character",
            "act_last",
        )
        self.act_open_corpus = self._action(
            "Open corpus…",
            self._on_open_corpus,
            K.Open,
            "Train on a text file (resets training)",
            "act_open_corpus",
        )
        self.act_save = self._action(
            "Save checkpoint…",
            self._on_save_checkpoint,
            K.Save,
            "Save model, optimizer and data position",
            "act_save",
        )
        self.act_load = self._action(
            "Load checkpoint…",
            self._on_load_checkpoint,
            "Ctrl+Shift+O",
            "Continue from a saved checkpoint",
            "act_load",
        )
        self.act_export = self._action(
            "Export metrics CSV…",
            self._on_export_metrics,
            None,
            "Every plotted number, one row per step",
            "act_export",
        )
        self.act_quit = self._action(
            "Quit", self.close, "Ctrl+Q", "Stop training and quit", "act_quit"
        )
        self.act_fullscreen = self._action(
            "Full screen",
            self._on_toggle_full_screen,
            "F11",
            "Full screen for the lecture hall",
            "act_fullscreen",
        )
        self.act_fullscreen.setCheckable(True)
        self.act_reset_layout = self._action(
            "Reset layout",
            self.reset_layout,
            None,
            "Every panel back to its default place",
            "act_reset_layout",
        )
        self.act_shortcuts = self._action(
            "Keyboard shortcuts",
            self.show_shortcuts,
            "F1",
            "List every keyboard shortcut",
            "act_shortcuts",
        )
        self.act_about = self._action("About rnnviz", self._on_about, None, "", "act_about")
        self.act_dismiss = self._action(
            "Dismiss message",
            self._on_banner_dismissed,
            "Esc",
            "Hide the message banner",
            "act_dismiss",
        )

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for act in (
            self.act_open_corpus,
            None,
            self.act_save,
            self.act_load,
            None,
            self.act_export,
            None,
            self.act_quit,
        ):
            if act is None:
                file_menu.addSeparator()
            else:
                file_menu.addAction(act)
        train_menu = bar.addMenu("&Training")
        for act in (
            self.act_play,
            self.act_step,
            self.act_reset,
            None,
            self.act_compare,
            None,
            self.act_prev,
            self.act_next,
            self.act_first,
            self.act_last,
        ):
            if act is None:
                train_menu.addSeparator()
            else:
                train_menu.addAction(act)
        view_menu = bar.addMenu("&View")
        for name, _ in DOCKS:
            view_menu.addAction(self.docks[name].toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(self.act_fullscreen)
        view_menu.addAction(self.act_reset_layout)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.act_shortcuts)
        help_menu.addAction(self.act_about)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        # the labels that change while training are SteadyLabels: a QLabel's new text
        # re-laid out the whole window (theme.SteadyLabel)
        self.state_label = theme.SteadyLabel()
        self.state_label.setObjectName("state_label")
        self.step_label = theme.SteadyLabel()
        self.step_label.setObjectName("step_label")
        self.speed_label = theme.SteadyLabel()
        self.nonfinite_label = theme.SteadyLabel()
        self.nonfinite_label.setToolTip(
            "Optimizer steps skipped because the loss or a gradient was NaN or infinite"
        )
        # every run's step, in its curve colour, while compare runs exist
        self.runs_label = theme.SteadyLabel()
        self.runs_label.setObjectName("runs_label")
        self.runs_label.label().setTextFormat(Qt.TextFormat.RichText)
        self.runs_label.setToolTip("Each run's optimizer step (the curves' colours)")
        self.runs_label.hide()
        for label in (
            self.state_label,
            self.runs_label,
            self.step_label,
            self.speed_label,
            self.nonfinite_label,
        ):
            label.label().setFont(theme.font(0.95, bold=label is self.state_label))
            bar.addPermanentWidget(label)

    def _build_banner(self) -> None:
        self.banner = Banner()
        self.banner.dismissed.connect(self._on_banner_dismissed)
        # a divergence's actions (shown by _on_divergence, for the run it names)
        self.rollback_button = self._banner_button("banner_rollback", self._on_banner_rollback)
        self.resume_clip_button = self._banner_button(
            "banner_resume_clip", self._on_banner_resume_with_clipping
        )
        self.resume_button = self._banner_button("banner_resume", self._on_banner_resume)
        self.resume_button.setText("Resume")
        self.resume_button.setToolTip("Train on; the compare run stays as it is")
        self.close_run_button = self._banner_button("banner_close_run", self._on_banner_close_run)
        self.banner_bar = QToolBar("Messages", self)
        self.banner_bar.setObjectName("banner_bar")
        self.banner_bar.setMovable(False)
        self.banner_bar.setFloatable(False)
        self.banner_bar.toggleViewAction().setVisible(False)
        self.banner_bar.addWidget(self.banner)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.banner_bar)
        self.banner_bar.hide()

    def _banner_button(self, name: str, slot: Any) -> QPushButton:
        """A divergence action; _on_divergence names it for the run and shows it."""
        button = QPushButton()
        button.setObjectName(name)
        button.setFont(theme.font(1.0, bold=True))
        button.clicked.connect(slot)
        button.hide()
        return button

    # ================================================================ layout

    def _apply_default_layout(self) -> None:
        """Controls left; curves + grad norms top; probe text middle; hidden + softmax bottom,
        with the gradient flow and the step view as tabs behind the softmax: beside the hidden
        states, the step view explains one column of them and the gradient flow reads as
        ‖∂L/∂H‖ of the same steps, under the gradient norms.

        Everything but the controls is nested in the right dock area. (With top and bottom
        areas and no central widget, Qt's dock layout widens the left column by a
        separator's width on every relayout: the controls crept across the window.)
        """
        d = self.docks
        for dock in d.values():
            dock.setFloating(False)
            dock.show()
        area = Qt.DockWidgetArea
        self.addDockWidget(area.LeftDockWidgetArea, d["dock_controls"])
        self._compact = self.height() < COMPACT_HEIGHT
        if self._compact:
            # two rows (see COMPACT_HEIGHT): the probe text, then a tab group a column
            self.addDockWidget(area.RightDockWidgetArea, d["dock_probe_text"])
            self.splitDockWidget(d["dock_probe_text"], d["dock_curves"], Qt.Orientation.Vertical)
            self.splitDockWidget(d["dock_curves"], d["dock_gradnorms"], Qt.Orientation.Horizontal)
            for first, then in (
                ("curves", "hidden"),
                ("gradnorms", "softmax"),
                ("softmax", "gradflow"),
                ("gradflow", "stepview"),
            ):
                self.tabifyDockWidget(d[f"dock_{first}"], d[f"dock_{then}"])
            d["dock_curves"].raise_()  # what training shows first, beside the predictions
            d["dock_softmax"].raise_()
            return
        self.addDockWidget(area.RightDockWidgetArea, d["dock_curves"])
        self.splitDockWidget(d["dock_curves"], d["dock_probe_text"], Qt.Orientation.Vertical)
        self.splitDockWidget(d["dock_probe_text"], d["dock_hidden"], Qt.Orientation.Vertical)
        self.splitDockWidget(d["dock_curves"], d["dock_gradnorms"], Qt.Orientation.Horizontal)
        self.splitDockWidget(d["dock_hidden"], d["dock_softmax"], Qt.Orientation.Horizontal)
        # one tab group: a second one made here leaves a stray copy of its tab bar drawn
        # over the other docks (Qt 6.11)
        self.tabifyDockWidget(d["dock_softmax"], d["dock_gradflow"])
        self.tabifyDockWidget(d["dock_gradflow"], d["dock_stepview"])
        d["dock_softmax"].raise_()

    @Slot()
    def _size_default_docks(self) -> None:
        """Default dock sizes for this window size (Qt applies them once the window shows)."""
        d = self.docks
        width, height = self.width(), self.height()
        # as wide as the controls want (no horizontal scroll bar), within reason
        wanted = self.controls.sizeHint().width() + 24
        controls_w = max(260, min(wanted, 360, int(width * 0.25)))
        plots_w = width - controls_w
        self.resizeDocks([d["dock_controls"]], [controls_w], Qt.Orientation.Horizontal)
        half = [plots_w // 2, plots_w - plots_w // 2]
        self.resizeDocks([d["dock_curves"], d["dock_gradnorms"]], half, Qt.Orientation.Horizontal)
        if self._compact:
            probe_h = 230  # the characters and two rows of the top-k under them
            self.resizeDocks(
                [d["dock_probe_text"], d["dock_curves"]],
                [probe_h, height - probe_h],
                Qt.Orientation.Vertical,
            )
            return
        self.resizeDocks([d["dock_hidden"], d["dock_softmax"]], half, Qt.Orientation.Horizontal)
        probe_h = 290  # room for all top-5 rows under the characters
        top_h = int((height - probe_h) * 0.45)
        self.resizeDocks(
            [d["dock_curves"], d["dock_probe_text"], d["dock_hidden"]],
            [top_h, probe_h, height - probe_h - top_h],
            Qt.Orientation.Vertical,
        )

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            if not self._layout_restored:
                # dock sizes only take once the window has its real size
                QTimer.singleShot(0, self._first_layout)

    @Slot()
    def _first_layout(self) -> None:
        """The default layout for the size the window is shown at (a screenshot or a small
        screen may have resized it since it was made): two rows or three, then dock sizes."""
        if (self.height() < COMPACT_HEIGHT) != self._compact:
            self._apply_default_layout()
        self._size_default_docks()

    @Slot()
    def reset_layout(self) -> None:
        """Every dock back to its default place and size (View ▸ Reset layout)."""
        if self.isFullScreen():
            self.showNormal()
            self.act_fullscreen.setChecked(False)
        self._apply_default_layout()
        self._size_default_docks()

    def _restore_layout(self) -> None:
        geometry = self._settings.value("geometry")
        if isinstance(geometry, QByteArray | bytes) and geometry:
            self.restoreGeometry(QByteArray(geometry))
        state = self._settings.value("window_state")
        if isinstance(state, QByteArray | bytes) and state:
            self._layout_restored = self.restoreState(QByteArray(state), LAYOUT_VERSION)
        self.banner_bar.hide()  # a message from the last session is not news

    def save_settings(self) -> None:
        """Layout, geometry, the run settings and the probe text, for the next start."""
        self._settings.setValue("geometry", self.saveGeometry())
        self._settings.setValue("window_state", self.saveState(LAYOUT_VERSION))
        self._settings.setValue("config", json.dumps(self.current_config().to_json()))
        self._settings.setValue("probe_text", self.probe_text.text())
        self._settings.sync()

    def _saved_config(self) -> RunConfig | None:
        raw = self._settings.value("config")
        if not isinstance(raw, str) or not raw:
            return None
        try:
            return RunConfig.from_json(json.loads(raw))
        except (ValueError, ConfigError, TypeError, AttributeError):
            return None  # an older or broken file: start from the defaults

    # ================================================================ public state

    def current_config(self) -> RunConfig:
        """The run's config as the engine last reported it, with the live lr / θ applied."""
        return self._config

    @property
    def state(self) -> str:
        return self._state

    @property
    def step(self) -> int:
        return self._step

    @property
    def last_divergence(self) -> Divergence | None:
        """The divergence the banner shows (None after a reset)."""
        return self._last_divergence

    @property
    def probe_error(self) -> str:
        """Why the last probe failed ("" if it did not)."""
        return self._probe_error

    @property
    def records_count(self) -> int:
        return self._records_received

    @property
    def snapshot(self) -> ParamSnapshot | None:
        return self._snapshot

    @property
    def probe_result(self) -> Any:
        return self._probe_result

    @property
    def probe_snapshot(self) -> ParamSnapshot | None:
        """The parameter snapshot the shown probe result was computed on."""
        return self._probe_snapshot

    @property
    def run_info(self) -> RunInfo | None:
        return self._run_info

    def banner_text(self) -> str:
        """The banner's message as plain text ("" while it is hidden)."""
        return self.banner.plain_text() if not self.banner_bar.isHidden() else ""

    @property
    def compare_runs(self) -> dict[int, str]:
        """The compare runs the engine reported (run_id -> label); the main run is 0."""
        return dict(self._compare_runs)

    def run_step(self, run_id: int) -> int | None:
        """A run's step, as last reported (None: no such run)."""
        if run_id == 0:
            return self._step
        return self._run_steps.get(run_id) if run_id in self._compare_runs else None

    def run_name(self, run_id: int) -> str:
        """How the legends name a run: "main" (or "" alone), a compare run by its label."""
        if run_id == 0:
            return MAIN_RUN_LABEL
        return self._compare_runs.get(run_id) or f"run {run_id}"

    def start_engine(self) -> None:
        """Spawn the engine (called once the window shows; imports torch in the child)."""
        if not self.engine.is_running():
            self._restart_engine(self._config)

    def _restart_engine(self, config: RunConfig) -> None:
        for run_id in list(self._compare_runs):  # a fresh engine has the main run only
            self._remove_compare_run(run_id)
        self.engine.set_config(config)
        try:
            self.engine.restart(config)
        except Exception as exc:  # e.g. torch missing: say so, keep the window
            self.engine.shutdown()
            self._on_failure(Failure(f"Could not start the training engine: {exc}", fatal=True))
            return
        self._set_state("starting")

    def send(self, command: Any) -> bool:
        ok = self.engine.send(command)
        if not ok and self._state == "stopped":
            self.statusBar().showMessage("The training engine is not running: press Reset", 5000)
        return ok

    # ================================================================ engine events

    @Slot(object)
    def _on_engine_event(self, event: object) -> None:
        try:
            if isinstance(event, MetricsBatch):
                self._on_metrics(event)
            elif isinstance(event, ParamSnapshot):
                self._on_snapshot(event)
            elif isinstance(event, StateChanged):
                self._on_state_changed(event)
            elif isinstance(event, RunInfo):
                self._on_run_info(event)
            elif isinstance(event, Divergence):
                self._on_divergence(event)
            elif isinstance(event, Failure):
                self._on_failure(event)
            elif isinstance(event, Saved):
                self.statusBar().showMessage(
                    f"Saved checkpoint at step {event.step} to {event.path}", 8000
                )
        except Exception as exc:  # a bug in a handler must not take the window down
            self._show_banner(f"Internal error while handling {type(event).__name__}: {exc}")

    def _on_metrics(self, batch: MetricsBatch) -> None:
        records = batch.records
        if not records:
            return
        if batch.run_id != 0 and batch.run_id not in self._compare_runs:
            return  # a run closed since: its last steps are no news
        self.curves.append(records, run_id=batch.run_id)
        self.gradnorms.append(records, run_id=batch.run_id)
        self.gradflow.append(records, run_id=batch.run_id)
        self._run_steps[batch.run_id] = records[-1].step
        if batch.run_id == 0:
            last = records[-1]
            self._step, self._epoch = last.step, last.epoch
            self._tokens_per_s = last.tokens_per_s
            self._nonfinite_total = last.nonfinite_total
            self._records_received += len(records)

    def _on_snapshot(self, snapshot: ParamSnapshot) -> None:
        if snapshot.run_id != 0:
            return  # probes follow the main run
        self._snapshot = snapshot
        if self._state != "training":
            self._run_probe()
            return
        wait = self._reprobe_wait()
        if wait <= 0:
            self._run_probe(staggered=True)
        elif not self._probe_throttle.isActive():
            self._probe_throttle.start(int(wait * 1000) + 1)

    def _on_state_changed(self, event: StateChanged) -> None:
        run_id = event.run_id
        if run_id != 0 and run_id not in self._compare_runs:
            return
        # the run is at event.step: steps after it were abandoned (a rollback)
        for panel in (self.curves, self.gradnorms, self.gradflow):
            panel.truncate_after(run_id, event.step)
        self._run_steps[run_id] = event.step
        self._run_states[run_id] = event.state
        if run_id != 0:
            if event.state == "stopped":  # CloseRun (or a checkpoint replaced the runs)
                self._remove_compare_run(run_id)
            self._update_status()
            return
        self._step, self._epoch = event.step, event.epoch
        self._set_state(event.state)
        if event.message:
            self.statusBar().showMessage(event.message, 6000)

    def _on_run_info(self, info: RunInfo) -> None:
        if info.run_id != 0:
            self._add_compare_run(info)
            return
        self._run_info = info
        self._config = info.config
        self.engine.set_config(info.config)
        self.controls.set_config(info.config)
        self.gradnorms.set_param_names(info.param_names)
        self.gradnorms.set_theta(info.config.train.clip_theta, info.config.train.clip_enabled)
        self.curves.clear()
        self.gradnorms.clear()
        self.gradflow.clear()
        self._run_steps = {rid: 0 for rid in self._run_steps}
        self._run_states.pop(0, None)
        self._records_received = 0
        self._step = self._epoch = 0
        self._nonfinite_total = 0
        self._tokens_per_s = 0.0
        self._snapshot = None
        self._last_divergence = None
        if not self.banner_bar.isHidden() and self._last_failure is None:
            self.banner_bar.hide()
        notes = "; ".join(info.notes)
        self.controls.set_run_info(
            f"<b>{info.corpus_name}</b>: {info.corpus_chars:,} characters, "
            f"vocabulary {len(info.vocab_tokens)}" + (f"<br>{notes}" if notes else "")
        )
        self._update_status()

    def _on_divergence(self, event: Divergence) -> None:
        if event.run_id != 0 and event.run_id not in self._compare_runs:
            return
        if self.controls.training:
            self.send(Pause())
        self._last_divergence = event
        several = bool(self._compare_runs)
        name = self.run_name(event.run_id) if several or event.run_id != 0 else None
        target = rollback_target(event)
        actions: list[QPushButton] = []
        if target is not None:
            who = "" if event.run_id == 0 else f"'{self.run_name(event.run_id)}' "
            self.rollback_button.setText(f"Roll back {who}to step {target}")
            self.rollback_button.setToolTip(
                f"Restore the parameters, optimizer state and data position of step {target} "
                "(the newest good snapshot before the divergence), then pause"
            )
            actions.append(self.rollback_button)
        if event.run_id == 0:
            theta = self._resume_theta()
            self.resume_clip_button.setText(f"Resume with clipping on (θ = {theta:g})")
            self.resume_clip_button.setToolTip(
                f"Turn gradient clipping on at θ = {theta:g} (g ← min(1, θ/‖g‖) g) and train on"
            )
            actions.append(self.resume_clip_button)
        else:
            self.close_run_button.setText(f"Close '{self.run_name(event.run_id)}'")
            self.close_run_button.setToolTip("Stop this compare run and remove its curves")
            actions += [self.resume_button, self.close_run_button]
        self._show_banner(
            divergence_message(event, name), kind="warning", actions=actions, rich=True
        )

    def _on_failure(self, failure: Failure) -> None:
        self._last_failure = failure
        self._show_banner(failure.message)
        self.statusBar().showMessage(failure.message, 10000)
        if failure.fatal:
            self._set_state("stopped")
        # a Reset the engine refused leaves the old run: show its settings again
        self.controls.set_config(self._config)

    # ================================================================ controls

    @Slot(bool)
    def _on_controls_play_toggled(self, play: bool) -> None:
        self.send(Start() if play else Pause())

    @Slot()
    def _on_controls_step_requested(self) -> None:
        self.send(Step(1))

    @Slot()
    def _on_controls_reset_requested(self) -> None:
        self._reset_run()

    @Slot(float, float, bool)
    def _on_controls_hyper_changed(self, lr: float, theta: float, clip_on: bool) -> None:
        try:
            self._config = self._config.replace(
                train={"lr": lr, "clip_theta": theta, "clip_enabled": clip_on}
            )
        except ConfigError as exc:
            self._show_banner(str(exc), kind="warning")
            self.controls.set_config(self._config)
            return
        self.engine.set_config(self._config)
        # the θ line moves now, not when the first step with the new θ is drawn
        self.gradnorms.set_theta(theta, clip_on, pending=True)
        self.send(SetHyper(lr=lr, clip_theta=theta, clip_enabled=clip_on))

    @Slot(object)
    def _on_controls_config_changed(self, config: RunConfig) -> None:
        if self._step > 0 and not self.confirm_reset():
            self.controls.set_config(self._config)
            return
        self.apply_config(config)

    @Slot(str)
    def _on_controls_invalid_setting(self, message: str) -> None:
        self._show_banner(message, kind="warning")

    def confirm_reset(self) -> bool:
        """Ask before settings that need a new model throw the trained one away."""
        answer = QMessageBox.question(
            self,
            "Reset training?",
            f"This resets training (now at step {self._step}). Continue?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def apply_config(self, config: RunConfig) -> None:
        """Rebuild the run from ``config`` (the panels clear when the new RunInfo arrives)."""
        self.engine.set_config(config)
        if self.engine.is_running():
            self.send(Reset(config))
        else:
            self._config = config
            self._restart_engine(config)

    def _reset_run(self) -> None:
        self._last_failure = None
        if self.engine.is_running():
            self.send(Reset(None))
        else:  # the engine died or never started: a fresh one from the current config
            self.banner_bar.hide()
            self._restart_engine(self._config)

    # ================================================================ actions

    @Slot()
    def _on_action_play(self) -> None:
        self._on_controls_play_toggled(not self.controls.training)

    @Slot()
    def _on_action_step(self) -> None:
        self._on_controls_step_requested()

    @Slot()
    def _on_action_reset(self) -> None:
        self._reset_run()

    @Slot()
    def _on_action_compare(self) -> CompareDialog:
        """Training ▸ Compare run… (Ctrl+K, the controls' button): the presets dialog."""
        if self._compare_dialog is not None:
            self._compare_dialog.close()
        dialog = CompareDialog(self._config, self.compare_runs, self._step, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fork_requested.connect(self._on_compare_fork_requested)
        dialog.close_requested.connect(self._on_compare_close_requested)
        dialog.close_all_requested.connect(self.close_compare_runs)
        dialog.destroyed.connect(self._on_compare_dialog_destroyed)
        self._compare_dialog = dialog
        dialog.show()
        return dialog

    @Slot()
    def _on_compare_dialog_destroyed(self) -> None:
        self._compare_dialog = None

    @Slot(object, str, bool)
    def _on_compare_fork_requested(self, changes: object, label: str, reset: bool) -> None:
        self.start_compare_run(changes, label, reset=reset)  # type: ignore[arg-type]

    def start_compare_run(
        self, changes: dict[str, dict[str, Any]], label: str, *, reset: bool = False
    ) -> None:
        """Fork the main run with ``changes`` (the session answers with a RunInfo)."""
        try:
            self._config.replace(**changes)  # say what is wrong before the engine does
        except ConfigError as exc:
            self._show_banner(str(exc), kind="warning")
            return
        taken = set(self._compare_runs.values()) | {MAIN_RUN_LABEL}
        self.send(Fork(changes, label=unique_label(label, taken)))
        if reset:
            self.send(Reset(None))  # every run from step 0: the session resets the forks too

    @Slot(int)
    def _on_compare_close_requested(self, run_id: int) -> None:
        self.send(CloseRun(run_id))

    @Slot()
    def close_compare_runs(self) -> None:
        """Stop every compare run (their curves go when the engine confirms)."""
        for run_id in sorted(self._compare_runs):
            self.send(CloseRun(run_id))

    def _add_compare_run(self, info: RunInfo) -> None:
        self._compare_runs[info.run_id] = info.label or f"run {info.run_id}"
        self._run_steps[info.run_id] = 0
        self._run_states[info.run_id] = "idle"
        label = self._compare_runs[info.run_id]
        for panel in (self.curves, self.gradnorms, self.gradflow):
            panel.clear(info.run_id)
            panel.set_run_label(0, MAIN_RUN_LABEL)
            panel.set_run_label(info.run_id, label)
        self._update_status()

    def _remove_compare_run(self, run_id: int) -> None:
        self._compare_runs.pop(run_id, None)
        self._run_steps.pop(run_id, None)
        self._run_states.pop(run_id, None)
        self.curves.clear(run_id)
        self.gradnorms.clear(run_id)
        self.gradflow.remove_run(run_id)
        if not self._compare_runs:
            for panel in (self.curves, self.gradnorms, self.gradflow):
                panel.set_run_label(0, "")
        event = self._last_divergence
        if event is not None and event.run_id == run_id:
            self._last_divergence = None
            self._hide_banner()

    @Slot()
    def _on_action_prev(self) -> None:
        self.time_cursor.step(-1)

    @Slot()
    def _on_action_next(self) -> None:
        self.time_cursor.step(1)

    @Slot()
    def _on_action_first(self) -> None:
        self.time_cursor.home()

    @Slot()
    def _on_action_last(self) -> None:
        self.time_cursor.end()

    @Slot()
    def _on_open_corpus(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a text file to train on", "", "Text files (*.txt *.md);;All files (*)"
        )
        if not path:
            return
        config = self._config.replace(corpus={"source": path})
        if self._step > 0 and not self.confirm_reset():
            return
        self.apply_config(config)

    @Slot()
    def _on_save_checkpoint(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Save checkpoint",
            f"rnnviz-step{self._step}.safetensors",
            "Checkpoints (*.safetensors)",
        )
        if path:
            self.send(Save(path))

    @Slot()
    def _on_load_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load checkpoint", "", "Checkpoints (*.safetensors);;All files (*)"
        )
        if path:
            self.send(Load(path))

    @Slot()
    def _on_export_metrics(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export metrics", f"rnnviz-metrics-step{self._step}.csv", "CSV (*.csv)"
        )
        if path:
            self.export_metrics(path)

    def export_metrics(self, path: str | Path, run_id: int = 0) -> None:
        try:
            self.curves.history(run_id).to_csv(path)
        except OSError as exc:
            self._show_banner(f"Could not write {path}: {exc}")
            return
        self.statusBar().showMessage(f"Metrics written to {path}", 6000)

    @Slot()
    def _on_toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()
        self.act_fullscreen.setChecked(self.isFullScreen())

    def shortcut_rows(self) -> list[tuple[str, str]]:
        rows = []
        for action in self.actions():
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()]
            if keys:
                what = action.toolTip() or action.text()
                rows.append(
                    (
                        " or ".join(keys),
                        f"{action.text()}: {what}" if what != action.text() else what,
                    )
                )
        return rows + list(EXTRA_KEYS)

    @Slot()
    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self.shortcut_rows(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    @Slot()
    def _on_about(self) -> None:
        QMessageBox.about(
            self,
            "About rnnviz",
            f"<b>rnnviz {getattr(rnnviz, '__version__', '')}</b><p>Train the character-level "
            "RNN of the d2l.ai chapter live, and watch its hidden states, predictions and "
            "gradients.</p>",
        )

    # ================================================================ probing

    @Slot(str)
    def _on_probe_text_edited(self, _text: str) -> None:
        # typing first: the metric panels skip their redraws until the key has been answered
        # and painted (they catch up a few ticks later; a curve redraw in the same pass as the
        # probe panels was most of the slow keystrokes while training)
        now = time.monotonic()
        self._typing_until = now + TYPING_PRIORITY_S
        self._last_key_time = now
        # a re-probe computing on the probe thread is for the text before this key: stop it
        # now, so the thread stops competing with this key for the GIL and the core (an
        # edit's own probe there goes on: this key reuses what it computes)
        if not self._worker_has_edit():
            self._probe_worker.cancel()
        self._probe_debounce.start()

    def _worker_has_edit(self) -> bool:
        """The probe thread computes (or is about to) an edit's probe (PROBE_KEY_THREAD_WORK)."""
        request = self._probe_worker.current()
        # (one answered already is not: the thread may not have cleared it yet)
        return request is not None and request.tag.keystroke and request.ticket > self._shown_ticket

    @Slot()
    def _on_probe_timer(self) -> None:
        self._run_probe(keystroke=True)

    @Slot()
    def _on_probe_throttle_timer(self) -> None:
        if self._state == "training":
            wait = self._reprobe_wait()
            if wait > 0:  # typing: the re-probe waits for a pause
                self._probe_throttle.start(int(wait * 1000) + 1)
                return
        self._run_probe(staggered=self._state == "training")

    def _run_probe(self, staggered: bool = False, keystroke: bool = False) -> None:
        """Probe the typed string with a ``core.probe.Prober``, which recomputes only the
        steps after the first changed character.

        A new snapshot means a new model and a probe of the whole text (at most every
        PROBE_MIN_INTERVAL_S while training, less often when that probe is slow). A
        ``keystroke`` while training stays on the model it has, at most that old, so it costs
        one step instead of the whole text; the newer snapshot follows by the throttle timer.
        While training, a re-probe larger than PROBE_INLINE_WORK (a long text with the gradient
        flow) runs on the probe thread, and keystrokes meanwhile go on with the model on
        screen; a probe answered here cancels an older one computing there.
        """
        self._probe_debounce.stop()
        snapshot = self._snapshot
        text = self.probe_text.text()
        if snapshot is None:
            return
        if self._worker_has_edit():
            return  # when it answers, the window probes again from its cache (_on_probe_done)
        self._probe_ticket += 1
        if not text:
            self._shown_ticket = self._probe_ticket
            self._set_probe_result(None)
            return
        keep_model = (
            keystroke
            and self._state == "training"
            and self._prober is not None
            and self._probe_model_snapshot is not None
            and self._probe_model_snapshot.config.model == snapshot.config.model
            and self._probe_vocab.tokens == snapshot.vocab_tokens
        )
        if keep_model and self._probe_model_snapshot is not snapshot:
            if not self._probe_throttle.isActive():  # the newer snapshot follows shortly
                self._probe_throttle.start(max(1, int(self._reprobe_wait() * 1000) + 1))
        else:
            self._probe_throttle.stop()
            self._last_probe_time = time.monotonic()
        with_grad_flow = self.probe_with_grad_flow
        try:
            _use_torch_threads(1)
            from rnnviz.core.probe import Prober, model_from_params
            from rnnviz.core.vocab import Vocab

            # the model is rebuilt once per snapshot (identity: a reset's step-0 snapshot
            # is a new one with the same step); typing re-probes the same model
            new_prober = None
            if self._probe_model_snapshot is not snapshot and not keep_model:
                vocab = self._probe_vocab
                if vocab is None or vocab.tokens != snapshot.vocab_tokens:
                    vocab = Vocab(snapshot.vocab_tokens)
                model = model_from_params(
                    snapshot.config.model, len(snapshot.vocab_tokens), dict(snapshot.params)
                )
                new_prober = Prober(model, vocab)
                tag = _ProbeTag(staggered, keystroke, model, vocab, snapshot)
            else:
                tag = _ProbeTag(
                    staggered,
                    keystroke,
                    self._probe_model,
                    self._probe_vocab,
                    self._probe_model_snapshot,
                )
            work = sum((new_prober or self._prober).work(text, with_grad_flow))
            threshold = PROBE_KEY_THREAD_WORK if keystroke else PROBE_INLINE_WORK
            if self._state == "training" and work > threshold:
                # a re-probe on a new snapshot: the probe thread gets a new Prober; the
                # window's stays for keystrokes, which are answered here (a key typed at the
                # end is one step and one row of G, cheap even on a long text). A large edit
                # (a long paste, a key early in a long text) takes the window's own Prober and
                # its cache along: keys wait for it anyway (_worker_has_edit)
                if new_prober is not None:
                    prober = new_prober
                elif keystroke:
                    prober = self._prober
                else:
                    prober = Prober(tag.model, tag.vocab)
                self._probe_worker.submit(
                    ProbeRequest(self._probe_ticket, prober, text, with_grad_flow, tag)
                )
                return
            self._probe_worker.cancel()  # whatever it computes is older than this answer
            if new_prober is not None:
                self._adopt_prober(new_prober, tag)
            if self._state != "training" and work > PROBE_TWO_THREADS_WORK:
                _use_torch_threads(PROBE_PAUSED_THREADS)
            started = time.perf_counter()
            result = self._prober.probe(text, with_grad_flow=with_grad_flow)
        except Exception as exc:  # a probe must never take the window down
            self._show_probe_error(f"{type(exc).__name__}: {exc}")
            return
        request = ProbeRequest(self._probe_ticket, self._prober, text, with_grad_flow, tag)
        self._on_probe_done(request, result, "", time.perf_counter() - started)

    def _adopt_prober(self, prober: Any, tag: _ProbeTag) -> None:
        """From now on keystrokes probe with ``prober`` (its model and snapshot)."""
        self._prober = prober
        self._probe_model, self._probe_vocab = tag.model, tag.vocab
        self._probe_model_snapshot = tag.snapshot

    def _reprobe_interval(self) -> float:
        """Seconds between re-probes on new snapshots while training: PROBE_MIN_INTERVAL_S, or
        a probe's cost times REPROBE_COST_FACTOR when that is longer (a long text with the
        gradient flow), so re-probing never takes most of a core."""
        return max(PROBE_MIN_INTERVAL_S, REPROBE_COST_FACTOR * self._reprobe_cost_s)

    def _reprobe_wait(self) -> float:
        """Seconds until a re-probe on a new snapshot may start while training (<= 0: now):
        the re-probe interval after the last one, and TYPING_QUIET_S after the last key unless
        the model on screen is TYPING_MAX_STALE_S old."""
        now = time.monotonic()
        since_probe = now - self._last_probe_time
        wait = self._reprobe_interval() - since_probe
        if since_probe < TYPING_MAX_STALE_S:
            wait = max(wait, TYPING_QUIET_S - (now - self._last_key_time))
        return wait

    def _show_probe_error(self, message: str) -> None:
        self._probe_error = message
        self.statusBar().showMessage(f"Probe failed: {message}", 6000)

    @Slot(object, object, str, float)
    def _on_probe_done(
        self, request: ProbeRequest, result: Any, error: str, seconds: float
    ) -> None:
        """A probe's answer, computed here or on the probe thread."""
        tag: _ProbeTag = request.tag
        if seconds > 0 and request.prober.reused_steps == 0:  # a whole text: what a re-probe costs
            self._reprobe_cost_s = seconds
        if request.ticket < self._shown_ticket:
            return  # a newer result is on screen already
        if error:
            self._show_probe_error(error)
            return
        if request.prober is not self._prober:  # from the probe thread: its model is newer
            self._adopt_prober(request.prober, tag)
        self._probe_error = ""
        self._shown_ticket = request.ticket
        self._probe_snapshot = tag.snapshot
        self._step_view_source = (tag.model, tag.vocab)
        self._set_probe_result(result, staggered=tag.staggered)
        # typed on while the thread computed, or paused meanwhile with a newer model than
        # the one this answer came from (the probes it held back were not made)
        newer_model = self._state != "training" and tag.snapshot is not self._snapshot
        if result.text != self.probe_text.text() or newer_model:
            self._probe_debounce.start()

    def _set_probe_result(self, result: Any, staggered: bool = False) -> None:
        """Show a probe result. ``staggered`` (re-probes while training): one panel per redraw
        tick instead of all in one pass, so the event loop never stalls for the whole set."""
        self._probe_result = result
        cursor = self.time_cursor.cursor()
        self.time_cursor.set_result(result)
        self.time_cursor.set_cursor(cursor)
        if result is None:
            self._step_view_source = None
        self._pending_probe_panels = [self.probe_text, self.hidden, self.softmax, self.gradflow]
        if not staggered:
            while self._pending_probe_panels:
                self._show_next_probe_panel()

    def _show_next_probe_panel(self) -> None:
        panel = self._pending_probe_panels.pop(0)
        panel.set_result(self._probe_result)
        panel.set_cursor(self.time_cursor.cursor())
        theme.settle_views(panel)
        if not self._pending_probe_panels:
            self._step_view_stale = True
            self._update_step_view()
            self.probe_shown.emit()

    @Slot(int)
    def _on_time_cursor_changed(self, t: int) -> None:
        for panel in (self.probe_text, self.hidden, self.softmax, self.gradflow):
            panel.set_cursor(t)
            theme.settle_views(panel)
        self._step_view_stale = True
        self._update_step_view()

    @property
    def probe_with_grad_flow(self) -> bool:
        """Probe with the gradient-flow matrix: while its dock is on screen (and the text is
        not longer than core computes it for)."""
        if not self._gradflow_wanted:
            return False
        # read here, not at the top: core.probe imports torch, which loads after the window
        from rnnviz.core.probe import MAX_GRAD_FLOW_CHARS

        return len(self.probe_text.text()) <= MAX_GRAD_FLOW_CHARS

    @probe_with_grad_flow.setter
    def probe_with_grad_flow(self, wanted: bool) -> None:
        self._gradflow_wanted = bool(wanted)

    @Slot(bool)
    def _on_gradflow_visibility(self, visible: bool) -> None:
        self.probe_with_grad_flow = visible
        result = self._probe_result
        if visible and result is not None and getattr(result, "grad_flow", None) is None:
            self._run_probe()  # the shown probe was made without it: probe again, with it

    @Slot(bool)
    def _on_stepview_visibility(self, visible: bool) -> None:
        self._stepview_on_screen = visible
        if visible:
            self._update_step_view()

    def _update_step_view(self) -> None:
        """``core.probe.step_detail`` at the cursor, while the step view is on screen."""
        if not self._step_view_stale or not self._stepview_on_screen:
            return
        self._step_view_stale = False
        result = self._probe_result
        if result is None:
            self.stepview.set_detail(None)
            return
        if getattr(result, "kind", "fast") not in ("scratch", "fast"):
            self.stepview.set_detail(None, placeholder=PLACEHOLDER_GATED)
            return
        model, vocab = self._step_view_source or (None, None)
        if model is None or vocab is None:
            self.stepview.set_detail(None)
            return
        try:
            from rnnviz.core.probe import step_detail

            detail = step_detail(model, vocab, result.text, self.time_cursor.cursor())
        except Exception as exc:  # like a probe: never take the window down
            self.stepview.set_detail(None, placeholder=f"Step view failed: {exc}")
            return
        self.stepview.set_detail(detail, result.vocab_tokens)

    @Slot(int)
    def _on_cursor_requested(self, t: int) -> None:
        self.time_cursor.set_cursor(t)
        self._on_time_cursor_changed(self.time_cursor.cursor())

    @Slot(int)
    def _on_hidden_unit_selected(self, unit: int) -> None:
        self.probe_text.set_unit(unit)

    # ================================================================ status, redraw

    def _set_state(self, state: str) -> None:
        self._state = state
        self.controls.set_training(state == "training")
        self._update_status()

    def _update_status(self) -> None:
        colours = {
            "training": "#1b7f3b",
            "paused": "#7a4b00",
            "diverged": "#b00020",
            "stopped": "#b00020",
        }
        self.state_label.setText(self._state)
        style = f"color: {colours.get(self._state, '#333')};"
        if theme.changed(self.state_label, "style", style):  # a new style sheet re-lays out
            self.state_label.label().setStyleSheet(style)
        # with compare runs, the runs label names every run's step
        step = "" if self._compare_runs else f"step {self._step:,}   "
        self.step_label.setText(f"{step}epoch {self._epoch}")
        self.speed_label.setText(f"{self._tokens_per_s:,.0f} tokens/s")
        self.nonfinite_label.setText(f"skipped non-finite steps: {self._nonfinite_total}")
        if self._compare_runs:
            parts = []
            for run_id in [0, *sorted(self._compare_runs)]:
                step = self._step if run_id == 0 else self._run_steps.get(run_id, 0)
                state = self._run_states.get(run_id, "")
                note = f" ({state})" if state in ("diverged", "stopped") else ""
                parts.append(
                    f"<span style='color:{run_colour(run_id)}'>━━</span> "
                    f"{html.escape(self.run_name(run_id))} step {step:,}{note}"
                )
            self.runs_label.setText("&nbsp;&nbsp;".join(parts))
            self.runs_label.show()
        else:
            self.runs_label.hide()

    @Slot()
    def _on_redraw_timer(self) -> None:
        if self._pending_probe_panels:
            self._show_next_probe_panel()
            return
        now = time.monotonic()
        if now < self._typing_until:
            return
        typing = now - self._last_key_time < TYPING_QUIET_S
        if typing and now - self._last_metric_redraw < TYPING_METRIC_INTERVAL_S:
            return
        panels = (self.curves, self.gradnorms, self.gradflow)
        for i in range(len(panels)):
            index = (self._redraw_next + i) % len(panels)
            if panels[index].redraw():
                self._redraw_next = (index + 1) % len(panels)
                self._last_metric_redraw = now
                self._update_status()
                return

    def redraw(self) -> bool:
        """Redraw the dirty metric panels; True if any drew."""
        drew = self.curves.redraw()
        drew = self.gradnorms.redraw() or drew
        drew = self.gradflow.redraw() or drew
        if drew:
            self._update_status()
        return drew

    def _show_banner(
        self,
        text: str,
        kind: str = "error",
        *,
        actions: list[QPushButton] | None = None,
        rich: bool = False,
    ) -> None:
        self.banner.set_kind(kind)
        self.banner.set_actions(actions or [])
        self.banner.set_text(text, rich=rich)
        self.banner_bar.show()

    def _hide_banner(self) -> None:
        self.banner_bar.hide()
        self.banner.set_actions([])

    @Slot()
    def _on_banner_dismissed(self) -> None:
        self._hide_banner()
        self._last_failure = None

    # ================================================================ divergence actions

    def _resume_theta(self) -> float:
        """θ for "Resume with clipping on": the one the controls show (1 if it is unusable)."""
        theta = self._config.train.clip_theta
        return theta if math.isfinite(theta) and theta > 0 else 1.0

    @Slot()
    def _on_banner_rollback(self) -> None:
        event = self._last_divergence
        target = None if event is None else rollback_target(event)
        if event is None or target is None:
            return
        self.send(Rollback(target, run_id=event.run_id))
        self._hide_banner()

    @Slot()
    def _on_banner_resume_with_clipping(self) -> None:
        """Clipping on at the current θ, then train on (the controls show it at once)."""
        event = self._last_divergence
        theta = self._resume_theta()
        if self._state == "diverged" and event is not None:
            # the run gave up after too many bad steps in a row: from its last good point
            target = rollback_target(event)
            if target is not None:
                self.send(Rollback(target, run_id=0))
        try:
            self._config = self._config.replace(train={"clip_enabled": True, "clip_theta": theta})
        except ConfigError as exc:
            self._show_banner(str(exc), kind="warning")
            return
        self.engine.set_config(self._config)
        self.controls.set_config(self._config)
        self.gradnorms.set_theta(theta, True, pending=True)
        self.send(SetHyper(clip_theta=theta, clip_enabled=True))
        self.send(Start())
        self._hide_banner()

    @Slot()
    def _on_banner_resume(self) -> None:
        self.send(Start())
        self._hide_banner()

    @Slot()
    def _on_banner_close_run(self) -> None:
        event = self._last_divergence
        if event is not None and event.run_id != 0:
            self.send(CloseRun(event.run_id))
        self._hide_banner()

    # ================================================================ closing

    def shutdown(self) -> None:
        """Stop timers, the probe thread and the engine; idempotent. Queued commands (a Save)
        are served first."""
        for timer in (self._redraw_timer, self._probe_debounce, self._probe_throttle):
            timer.stop()
        self._probe_worker.stop()
        if self.engine.is_running() and self.controls.training:
            self.engine.send(Pause())
        self.engine.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self._persist:
            self.save_settings()
        self.shutdown()
        event.accept()

"""The window's actions, declared once as data: the menus, the shortcuts and the F1 list are
all made from this table (as napari's ``_qapp_model/qactions`` declares its actions)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from rnnviz.core.presets import PRESETS
from rnnviz.gui.window.focus import FOCUS_ORDER

Keys = tuple[str | QKeySequence.StandardKey, ...]


@dataclass(frozen=True)
class ActionSpec:
    name: str  # objectName, and the handler's key
    text: str
    keys: Keys = ()
    tip: str = ""
    checkable: bool = False


_STD = QKeySequence.StandardKey

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("act_play", "Play / Pause", ("Space",), "Start or pause training"),
    ActionSpec(
        "act_step", "Step one minibatch", ("Right",), "Train exactly one minibatch, then pause"
    ),
    ActionSpec(
        "act_reset", "Reset", ("Ctrl+R",), "Back to the initial parameters (same seed, same init)"
    ),
    ActionSpec(
        "act_compare",
        "Compare run…",
        ("Ctrl+K",),
        "Train another run from the same start with one setting changed, and plot both",
    ),
    ActionSpec(
        "act_rollback",
        "Roll back to the last good step",
        ("Ctrl+Z",),
        "After a divergence: restore the newest good snapshot before it, then pause",
    ),
    ActionSpec(
        "act_prev",
        "Previous time step",
        ("Alt+Left", "Ctrl+Left"),
        "Move the time-step cursor one character left",
    ),
    ActionSpec(
        "act_next",
        "Next time step",
        ("Alt+Right", "Ctrl+Right"),
        "Move the time-step cursor one character right",
    ),
    ActionSpec(
        "act_first", "First time step", ("Home",), "Time-step cursor to the first character"
    ),
    ActionSpec("act_last", "Last time step", ("End",), "Time-step cursor to the last character"),
    ActionSpec(
        "act_play_time",
        "Play through time",
        ("P",),
        "Walk the unrolled network step by step, lighting each step's computation in order",
    ),
    ActionSpec(
        "act_timeline_back",
        "Earlier model",
        ("[",),
        "The probe panels show the stored snapshot before the one shown (training goes on)",
    ),
    ActionSpec(
        "act_timeline_forward",
        "Later model",
        ("]",),
        "The stored snapshot after the one shown; past the newest: live",
    ),
    ActionSpec(
        "act_timeline_live", "Live model", ("Ctrl+L",), "The probe panels follow training again"
    ),
    ActionSpec(
        "act_open_corpus", "Open corpus…", (_STD.Open,), "Train on a text file (resets training)"
    ),
    ActionSpec(
        "act_save", "Save checkpoint…", (_STD.Save,), "Save model, optimizer and data position"
    ),
    ActionSpec(
        "act_load", "Load checkpoint…", ("Ctrl+Shift+O",), "Continue from a saved checkpoint"
    ),
    ActionSpec(
        "act_open_model",
        "Open PyTorch model…",
        ("Ctrl+Shift+M",),
        "Your own torch.nn RNN, GRU or LSTM (a safetensors state_dict and its spec JSON), "
        "read-only: every probe panel on it; Reset trains a new model of its shape",
    ),
    ActionSpec(
        "act_save_session",
        "Save session…",
        ("Ctrl+Shift+S",),
        "One file: the checkpoint, every run's metrics, the timeline, the probe and the cursor",
    ),
    ActionSpec(
        "act_open_session",
        "Open session…",
        ("Ctrl+Alt+O",),
        "A saved session: the same run, curves, timeline and probe (training paused)",
    ),
    ActionSpec(
        "act_export",
        "Export metrics CSV…",
        (),
        "Every plotted number of every run, one row per run and step",
    ),
    ActionSpec(
        "act_open_metrics",
        "Open metrics CSV…",
        (),
        "A run's metrics CSV (rnnviz.telemetry, --metrics-out, Export): its curves, read-only",
    ),
    ActionSpec(
        "act_export_all",
        "Export all…",
        (),
        "Into a folder: every panel as PNG, the metrics of every run, the probe as JSON",
    ),
    ActionSpec(
        "act_tensorboard",
        "Log to TensorBoard…",
        (),
        "Every run's training as TensorBoard event files in a folder (rnnviz[tensorboard])",
        True,
    ),
    ActionSpec(
        "act_record_window",
        "Record window…",
        (),
        "The window as an animated GIF (or MP4 with rnnviz[video]); Stop in the status bar",
    ),
    ActionSpec("act_quit", "Quit", ("Ctrl+Q",), "Stop training and quit"),
    ActionSpec(
        "act_lecture",
        "Lecture mode",
        ("F11",),
        "Full screen, large text and thick lines, the model and data settings hidden",
        True,
    ),
    ActionSpec(
        "act_zoom_in",
        "Larger text",
        ("Ctrl+=", "Ctrl++"),
        "Every panel's text and lines larger, as a browser zooms (remembered)",
    ),
    ActionSpec(
        "act_zoom_out",
        "Smaller text",
        ("Ctrl+-",),
        "Every panel's text and lines smaller",
    ),
    ActionSpec(
        "act_zoom_reset", "Text at 100 %", ("Ctrl+0",), "Text and lines at their usual size"
    ),
    ActionSpec("act_scheme_system", "The desktop's", (), "Light or dark as the desktop is", True),
    ActionSpec("act_scheme_light", "Light", (), "Light colours whatever the desktop says", True),
    ActionSpec("act_scheme_dark", "Dark", (), "Dark colours whatever the desktop says", True),
    ActionSpec("act_reset_layout", "Reset layout", (), "Every panel back to its default place"),
    ActionSpec("act_shortcuts", "Keyboard shortcuts", ("F1",), "List every keyboard shortcut"),
    ActionSpec("act_about", "About rnnviz"),
    ActionSpec(
        "act_dismiss",
        "Overview / dismiss message",
        ("Esc",),
        "Back from a panel raised full size; else hide the message banner",
    ),
    ActionSpec(
        "act_lesson_chapter",
        "Lesson: the RNN chapter",
        (),
        "Walk the chapter's slides in order, each step setting up the window",
    ),
    ActionSpec(
        "act_open_lesson", "Open lesson…", (), "A lesson file of your own (docs/lessons.md)"
    ),
    ActionSpec("act_next_step", "Next lesson step", ("PgDown",), "The lesson's next step"),
    ActionSpec("act_prev_step", "Previous lesson step", ("PgUp",), "The lesson's step before"),
    ActionSpec("act_blank", "Blank the screen", ("B", "."), "Black and back, as a remote's key"),
    *(ActionSpec(f"act_preset_{p.key}", p.title, (), p.what) for p in PRESETS),
    *(
        ActionSpec(
            f"act_focus_{i}",
            f"{name.replace('_', ' ').capitalize()} full size",
            (str(i), f"Alt+{i}"),
            f"Raise the {name.replace('_', ' ')} panel over the whole window (Esc: back)",
        )
        for i, name in enumerate(FOCUS_ORDER, start=1)
    ),
)

# menu title -> action names (None: a separator); "docks" stands for each dock's toggle
MENUS: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    (
        "&File",
        (
            "act_open_corpus",
            "act_open_lesson",
            None,
            "act_save",
            "act_load",
            "act_open_model",
            "act_save_session",
            "act_open_session",
            None,
            "act_export",
            "act_open_metrics",
            "act_export_all",
            "act_tensorboard",
            "act_record_window",
            None,
            "act_quit",
        ),
    ),
    (
        "&Training",
        (
            "act_play",
            "act_step",
            "act_reset",
            "act_rollback",
            None,
            "act_compare",
            None,
            "act_prev",
            "act_next",
            "act_first",
            "act_last",
            "act_play_time",
            None,
            "act_timeline_back",
            "act_timeline_forward",
            "act_timeline_live",
        ),
    ),
    (
        "&Lecture",
        (
            "act_lesson_chapter",
            "act_open_lesson",
            "act_next_step",
            "act_prev_step",
            None,
            "presets",
            None,
            "act_blank",
        ),
    ),
    (
        "&View",
        (
            "docks",
            None,
            "act_lecture",
            "act_zoom_in",
            "act_zoom_out",
            "act_zoom_reset",
            "colours",
            "act_reset_layout",
            None,
            "focus",
        ),
    ),
    ("&Help", ("act_shortcuts", "act_about")),
)

# keys that are not actions but that the shortcuts dialog lists
EXTRA_KEYS: tuple[tuple[str, str], ...] = (
    ("click a row of the hidden-state heatmap", "trace that unit; colour the text by it"),
    ("click a character of the probe text", "move the time cursor there"),
    ("click a step of the unrolled network", "move the time cursor there; hover: its numbers"),
    ("click a row of the learning film", "show that stored snapshot of training"),
    ("right-click a panel's title", "export that panel as PNG or SVG"),
)


def build_actions(
    window: QMainWindow, handlers: Mapping[str, Callable[[], object]]
) -> dict[str, QAction]:
    """One QAction per spec, on the window (shortcuts work while the menu bar is hidden)."""
    actions: dict[str, QAction] = {}
    for spec in ACTIONS:
        action = QAction(spec.text, window)
        action.setObjectName(spec.name)
        action.setShortcuts([QKeySequence(k) for k in spec.keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if spec.tip:
            action.setToolTip(spec.tip)
            action.setStatusTip(spec.tip)
        action.setCheckable(spec.checkable)
        action.triggered.connect(handlers[spec.name])
        window.addAction(action)
        actions[spec.name] = action
    return actions


def build_menus(
    window: QMainWindow, actions: Mapping[str, QAction], dock_toggles: list[QAction]
) -> dict[str, QMenu]:
    menus: dict[str, QMenu] = {}
    for title, names in MENUS:
        menu = window.menuBar().addMenu(title)
        for name in names:
            if name is None:
                menu.addSeparator()
            elif name == "docks":
                for toggle in dock_toggles:
                    menu.addAction(toggle)
            elif name == "presets":
                for p in PRESETS:
                    menu.addAction(actions[f"act_preset_{p.key}"])
            elif name == "colours":
                colours = menu.addMenu("&Colours")
                for scheme in ("system", "light", "dark"):
                    colours.addAction(actions[f"act_scheme_{scheme}"])
            elif name == "focus":
                full_size = menu.addMenu("One panel full size")
                for i in range(1, len(FOCUS_ORDER) + 1):
                    full_size.addAction(actions[f"act_focus_{i}"])
            else:
                menu.addAction(actions[name])
        menus[title] = menu
    return menus


def shortcut_rows(actions: Mapping[str, QAction]) -> list[tuple[str, str]]:
    """(keys, what they do) for the F1 list, from the same table."""
    rows = []
    for spec in ACTIONS:
        action = actions[spec.name]
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()]
        if keys:
            what = f"{spec.text}: {spec.tip}" if spec.tip and spec.tip != spec.text else spec.text
            rows.append((" or ".join(keys), what))
    return rows + list(EXTRA_KEYS)

"""What the window adds for a lecture: presets, lessons, and a blank screen.

- Presets (``core.presets``), one click each from the Lecture menu and the presets toolbar
  (in the menu bar's right corner);
  one restarts the run from the defaults with its probe string and its compare runs.
- Lessons (``core.lessons``): the lesson bar above the panels; PageDown / PageUp move
  through the steps (the keys a presenter remote sends).
- B or . blanks the window to black and back (a remote's blank key).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import QFileDialog, QLabel, QToolBar, QWidget

from rnnviz.core.lessons import LessonError, load_lesson, shipped_path
from rnnviz.core.presets import PRESETS, Preset
from rnnviz.gui.window import dialogs
from rnnviz.gui.window.lesson_player import LessonBar, LessonPlayer

if TYPE_CHECKING:
    from rnnviz.gui.window.main_window import MainWindow


class Blank(QWidget):
    """A black sheet over the whole window, as a projector's blank key."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.setObjectName("blank_screen")
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, Qt.GlobalColor.black)
        self.setPalette(palette)
        self.setAutoFillBackground(True)
        self.hide()

    def toggle(self) -> None:
        if self.isHidden():
            self.cover()
            self.show()
            self.raise_()
        else:
            self.hide()

    def cover(self) -> None:
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())


class Lecture(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self.blank = Blank(window)
        self.bar = LessonBar()
        self._bar_holder = QToolBar("Lesson", window)
        self._bar_holder.setObjectName("lesson_toolbar")
        self._bar_holder.setMovable(False)
        self._bar_holder.addWidget(self.bar)
        window.addToolBar(Qt.ToolBarArea.TopToolBarArea, self._bar_holder)
        window.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
        self.player = LessonPlayer(window, self.bar)
        self.player.step_shown.connect(lambda _i: self._bar_holder.show())
        self.bar.close_requested.connect(self._bar_holder.hide)
        # in lecture mode the lesson bar takes the probe text's place above the view, and
        # gives it back when the lesson ends
        self.bar.close_requested.connect(window.focus_view.refocus)
        self._bar_holder.hide()
        self.presets_bar: QToolBar | None = None
        window.focus_view.lesson_running = self.lesson_running

    def lesson_running(self) -> bool:
        """A lesson's bar is up (End lesson closes it)."""
        return self.player.lesson() is not None and not self._bar_holder.isHidden()

    def handlers(self) -> dict[str, Any]:
        """The Lecture menu's actions (``actions.ACTIONS``), by name."""
        return {
            "act_lesson_chapter": lambda: self.start_lesson("chapter"),
            "act_open_lesson": self.ask_open_lesson,
            "act_next_step": self.player.next,
            "act_prev_step": self.player.back,
            "act_blank": self.blank.toggle,
            **{f"act_preset_{p.key}": self._preset_handler(p) for p in PRESETS},
        }

    def build_toolbar(self, actions: dict[str, QAction]) -> None:
        """The presets toolbar, in the menu bar's corner: a row of its own took 35 px from
        every plot of a 720 px window."""
        bar = QToolBar("Presets", self._window)
        bar.setObjectName("presets_toolbar")
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        bar.addWidget(QLabel("Presets:"))
        for p in PRESETS:
            button = bar.addAction(p.short)
            button.setObjectName(f"preset_button_{p.key}")
            button.setToolTip(f"{p.title}: {p.what}")
            button.triggered.connect(actions[f"act_preset_{p.key}"].trigger)
        self._window.menuBar().setCornerWidget(bar, Qt.Corner.TopRightCorner)
        self.presets_bar = bar

    def start_lesson(self, name_or_path: str, step: int = 0) -> bool:
        """A shipped lesson by name, or a file; False (and the banner says why) if refused."""
        shipped = "/" not in name_or_path and not name_or_path.endswith(".json")
        try:
            path = shipped_path(name_or_path) if shipped else Path(name_or_path)
            lesson = load_lesson(path)
        except LessonError as exc:
            self._window.banner_bar.show_message(f"Lesson not opened: {exc}", "warning")
            return False
        self._bar_holder.show()  # before the first step lays the views out (lesson_running)
        self.player.start(lesson, step)
        return True

    @Slot()
    def ask_open_lesson(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._window, "Open lesson", "", "Lessons (*.json);;All files (*)"
        )
        if path:
            self.start_lesson(path)

    def _preset_handler(self, preset: Preset) -> Any:
        def apply() -> None:
            w = self._window
            if w.app_state.main.step > 0 and not dialogs.confirm_reset(w, w.app_state.main.step):
                return
            w.controller.apply_preset(preset)
            if preset.probe is not None:
                w.set_probe_text(preset.probe)

        return apply

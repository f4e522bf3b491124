"""Text and line size (Ctrl+= / Ctrl+− / Ctrl+0, remembered) and lecture mode (F11).

Lecture mode is for the back row of a hall: full screen, one or two views at a time (the
one raised, else the unrolled network; a probe view with the probe text above it; 1-9 raise
another, as in the overview), text ``LECTURE_TEXT`` times larger and lines ``LECTURE_LINES``
times thicker than the zoom the user chose, and the run's model and data settings hidden (the
Live box and the buttons stay: a lecturer plays, steps and clips). Esc shows every panel, still
large; F11 again leaves lecture mode for the overview as it was.
At 1280×720 every label, tick and number a panel shows is then at least 16 px high
(``tests/gui/test_lecture_mode.py`` reads the fonts).

One state: ``level`` is the user's zoom; ``text_zoom()`` and ``line_zoom()`` are what is on
screen. ``theme.zoom`` is set to ``text_zoom()`` before a change is applied, so a widget built
afterwards (a dialog, a compare run's curve) has the size of those already built, which
``gui.rescale`` multiplies by the change's ratio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication

from rnnviz.gui import theme
from rnnviz.gui.rescale import rescale
from rnnviz.gui.state.settings import Key
from rnnviz.gui.window.focus import PROBE_VIEWS

if TYPE_CHECKING:
    from rnnviz.gui.window.main_window import MainWindow

ZOOMS = (0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0)
ZOOM = Key("zoom", float, 1.0, ZOOMS[0], ZOOMS[-1])
LECTURE_TEXT = 1.3
LECTURE_LINES = 2.0
LECTURE_APP_FONT = 0.9  # the least text size of menus, buttons, forms in lecture mode
LECTURE_VIEW = "unrolled"  # what F11 raises when no view is (the slides' picture)

THEMED_CLASSES = ("QMenuBar", "QMenu", "QTabBar", "QToolButton", "QDockWidget", "QStatusBar")

_app_font: QFont | None = None  # the application's font before any zoom, taken once


def _base_app_font() -> QFont:
    global _app_font
    if _app_font is None:
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        _app_font = QFont(app.font())
    return _app_font


class LectureMode(QObject):
    changed = Signal()  # the zoom or lecture mode changed (menus' checks follow)

    def __init__(self, window: MainWindow, level: float = 1.0) -> None:
        super().__init__(window)
        self._window = window
        self.level = level
        self.lecture = False
        theme.set_zoom(self.text_zoom())  # before the panels are built: they take this size
        theme.set_line_zoom(1.0)  # their pens are made at 1.0; built() scales them
        self._set_app_font()
        self._text, self._lines = self.text_zoom(), 1.0  # what the built widgets have

    def connect_focus(self) -> None:
        """The probe text shrinks to its box above a raised probe view in lecture mode."""
        self._window.focus_view.focused_changed.connect(self._on_focused)

    def _on_focused(self, name: str | None) -> None:
        self._window.panels.probe_text.set_compact(self.lecture and name in PROBE_VIEWS)

    # -- read
    def text_zoom(self) -> float:
        return self.level * (LECTURE_TEXT if self.lecture else 1.0)

    def line_zoom(self) -> float:
        return self.level * (LECTURE_LINES if self.lecture else 1.0)

    def built(self) -> None:
        """The window is built (its text at ``text_zoom()``): its lines take ``line_zoom()``."""
        self.connect_focus()
        self._apply(quiet=True)

    # -- change
    def zoom_in(self) -> None:
        self.set_level(next((z for z in ZOOMS if z > self.level + 1e-6), ZOOMS[-1]))

    def zoom_out(self) -> None:
        self.set_level(next((z for z in reversed(ZOOMS) if z < self.level - 1e-6), ZOOMS[0]))

    def zoom_reset(self) -> None:
        self.set_level(1.0)

    def set_level(self, level: float) -> None:
        level = min(max(level, ZOOMS[0]), ZOOMS[-1])
        if level != self.level:
            self.level = level
            self._window.settings.set(ZOOM, level)
            self._apply()

    def toggle(self) -> None:
        self.set_lecture(not self.lecture)

    def set_lecture(self, on: bool, *, full_screen: bool = True) -> None:
        """Full screen (unless not ``full_screen``: a screenshot at a given size), large and
        thick (on), or back as it was (off)."""
        if on == self.lecture:
            return
        self.lecture = on
        window = self._window
        window.panels.controls.set_advanced_shown(not on)
        focus = window.focus_view
        focus.with_probe_text = on
        if on:
            if full_screen:
                window.showFullScreen()
            # one or two views, large: the one raised, else the unrolled network
            focus.focus(focus.focused() or LECTURE_VIEW)
        else:
            if not focus.unfocus():
                self._on_focused(None)
            if window.isFullScreen():
                window.showNormal()
        self._apply()

    def reset(self) -> None:
        """The application's font and ``theme.zoom`` as before the window (it closes)."""
        theme.set_zoom(1.0)
        theme.set_line_zoom(1.0)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.setFont(_base_app_font())
            for name in THEMED_CLASSES:
                app.setFont(_base_app_font(), name)  # type: ignore[arg-type]

    # -- apply
    def _set_app_font(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            base = _base_app_font()
            font = QFont(base)
            if base.pointSizeF() > 0:
                size = base.pointSizeF() * self.text_zoom()
                if self.lecture:  # a desktop's small font still reads from the back row
                    size = max(size, theme.point_size(LECTURE_APP_FONT))
                font.setPointSizeF(size)
            app.setFont(font)
            # a platform theme gives some classes fonts of their own (the menu bar's), which
            # the application font does not change
            for name in THEMED_CLASSES:
                app.setFont(font, name)  # type: ignore[arg-type]  # a str at run time; stubs say bytes

    def _apply(self, *, quiet: bool = False) -> None:
        text, lines = self.text_zoom(), self.line_zoom()
        if (text, lines) != (self._text, self._lines):
            theme.set_zoom(text)
            theme.set_line_zoom(lines)
            rescale(self._window, text / self._text, lines / self._lines)
            self._set_app_font()
            self._text, self._lines = text, lines
            if quiet:
                return
            message = f"Text {text:.0%}"
            self._window.statusBar().showMessage(message, 3000)
        self.changed.emit()

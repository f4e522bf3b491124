"""One view full size: number keys 1-9 raise a panel over the whole window, Esc returns.

Every panel small at once cannot be read from the back of a hall. Raising one hides the
other docks (their probe work stops, as for any hidden dock) and keeps the window's dock
state to restore, so the overview comes back exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QByteArray, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QDockWidget, QMainWindow

# the number keys' panels, in the order the chapter tells them
FOCUS_ORDER = (
    "unrolled",
    "probe_text",
    "hidden",
    "softmax",
    "stepview",
    "gradflow",
    "curves",
    "gradnorms",
    "controls",
)

# the views that show the probe string's steps
PROBE_VIEWS = frozenset({"unrolled", "hidden", "softmax", "stepview", "gradflow"})


class FocusView(QObject):
    focused_changed = Signal(object)  # the name raised, or None: the overview

    def __init__(self, window: QMainWindow, docks: dict[str, QDockWidget]) -> None:
        super().__init__(window)
        self._window, self._docks = window, docks
        self._saved: QByteArray | None = None
        self._focused: str | None = None
        # lecture mode: a probe view comes with the probe text above it (two views, the
        # string it reads typed in front of the class)
        self.with_probe_text = False
        # ... unless a lesson runs: its bar is the second view, and the height is the view's
        self.lesson_running: Callable[[], bool] = lambda: False

    def _with_probe_text(self) -> bool:
        return self.with_probe_text and not self.lesson_running()

    def focused(self) -> str | None:
        """The panel raised full size, or None in the overview."""
        return self._focused

    def focus(self, name: str) -> None:
        """Show ``name`` (a FOCUS_ORDER entry) alone, over the whole window."""
        if self._saved is None:
            self._saved = self._window.saveState()
        shown = [self._docks[f"dock_{name}"]]
        if self._with_probe_text() and name in PROBE_VIEWS:
            shown.append(self._docks["dock_probe_text"])
        for dock in self._docks.values():
            if dock not in shown:
                dock.hide()
        for dock in shown:
            dock.setFloating(False)
            dock.show()
            dock.raise_()
        self._focused = name
        self.focused_changed.emit(name)  # lecture mode shrinks the probe text to its box
        self.fit()
        # and again once the dock layout has taken the new sizes (a real window had not: the
        # probe text kept its old height and cut the view's last row off)
        QTimer.singleShot(0, self, self.fit)

    @Slot()
    def fit(self) -> None:
        """With the probe text above the raised view (lecture mode): the probe text as low as
        it goes, the view is what is taught. Also after the window's size changed."""
        if self._focused is None or not self._with_probe_text():
            return
        probe, target = self._docks["dock_probe_text"], self._docks[f"dock_{self._focused}"]
        if probe is target or not probe.isVisible():
            return
        least = probe.minimumSizeHint().height()
        self._window.resizeDocks(
            [probe, target], [least, self._window.height()], Qt.Orientation.Vertical
        )

    def refocus(self) -> None:
        """After a default layout was applied (it shows every dock): the raised panel again."""
        if self._focused is not None:
            self.focus(self._focused)

    def unfocus(self) -> bool:
        """Back to the overview as it was; False if no panel was raised."""
        if self._saved is None:
            return False
        self._window.restoreState(self._saved)
        self._saved, self._focused = None, None
        self.focused_changed.emit(None)
        return True

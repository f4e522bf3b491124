"""One view full size: number keys 1-9 raise a panel over the whole window, Esc returns.

Every panel small at once cannot be read from the back of a hall. Raising one hides the
other docks (their probe work stops, as for any hidden dock) and keeps the window's dock
state to restore, so the overview comes back exactly as it was.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QObject
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


class FocusView(QObject):
    def __init__(self, window: QMainWindow, docks: dict[str, QDockWidget]) -> None:
        super().__init__(window)
        self._window, self._docks = window, docks
        self._saved: QByteArray | None = None
        self._focused: str | None = None

    def focused(self) -> str | None:
        """The panel raised full size, or None in the overview."""
        return self._focused

    def focus(self, name: str) -> None:
        """Show ``name`` (a FOCUS_ORDER entry) alone, over the whole window."""
        if self._saved is None:
            self._saved = self._window.saveState()
        target = self._docks[f"dock_{name}"]
        for dock in self._docks.values():
            if dock is not target:
                dock.hide()
        target.setFloating(False)
        target.show()
        target.raise_()
        self._focused = name

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
        return True

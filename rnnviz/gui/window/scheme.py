"""View ▸ Colours: the system's scheme, or light or dark whatever the desktop says (remembered).

A choice, or the desktop switching between light and dark while the window is open and the
choice is the desktop's, recolours the built window in place (``gui.recolour``) and gives the
application the matching palette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication
from PySide6.QtWidgets import QApplication

from rnnviz.gui import theme
from rnnviz.gui.recolour import recolour
from rnnviz.gui.state.settings import Key, SettingsStore

if TYPE_CHECKING:
    from rnnviz.gui.window.main_window import MainWindow

SCHEMES = ("system", "light", "dark")
SCHEME = Key("scheme", str, "system", max_length=6)


def saved_scheme(settings: SettingsStore) -> str:
    """The remembered choice ("system" for anything else a settings file holds)."""
    value = settings.get(SCHEME)
    return value if value in SCHEMES else "system"


def apply_saved_scheme(settings: SettingsStore) -> None:
    """At start, before any widget is built: the remembered light or dark, if one was chosen."""
    choice = saved_scheme(settings)
    if choice != "system":
        use_scheme(choice)


def use_scheme(choice: str) -> None:
    """Make ``choice`` the scheme ``theme.colours`` answers and the application's palette."""
    app = QApplication.instance()
    if choice == "system":
        theme.use_dark_scheme(None)
        if isinstance(app, QApplication):
            theme.restore_system_look(app)  # what the desktop says: its own palette
        return
    theme.use_dark_scheme(choice == "dark")
    if isinstance(app, QApplication):
        theme.apply_app_palette(app)


class SchemeChoice(QObject):
    recoloured = Signal()  # the window now shows theme.colours()

    def __init__(self, window: MainWindow, actions: dict[str, QAction]) -> None:
        super().__init__(window)
        self._window = window
        self.shown = theme.colours()  # what the panels are drawn in
        self.choice = saved_scheme(window.settings)
        group = QActionGroup(self)
        for name in SCHEMES:
            action = actions[f"act_scheme_{name}"]
            group.addAction(action)
            action.setChecked(name == self.choice)
        QGuiApplication.styleHints().colorSchemeChanged.connect(self.system_changed)

    def choose(self, name: str) -> None:
        self.choice = name
        self._window.settings.set(SCHEME, name)
        use_scheme(name)
        self.follow()

    @Slot(Qt.ColorScheme)
    def system_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self.choice == "system":
            self.follow()

    def follow(self) -> None:
        """Recolour the window if it is not drawn in the scheme in use."""
        new = theme.colours()
        if new is self.shown:
            return
        old, self.shown = self.shown, new
        recolour(self._window, old, new)
        self.recoloured.emit()

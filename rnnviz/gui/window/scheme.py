"""View ▸ Colours: the system's scheme, or light or dark whatever the desktop says (remembered).

The panels take their colours when they are built (``theme``), so a choice, or the desktop
switching between light and dark while the window is open, takes effect at the next start;
the window says so in its banner rather than showing half the panels in each scheme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication
from PySide6.QtWidgets import QApplication

from rnnviz.gui import theme
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
        theme.use_dark_scheme(choice == "dark")
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply_app_palette(app)


class SchemeChoice(QObject):
    def __init__(self, window: MainWindow, actions: dict[str, QAction]) -> None:
        super().__init__(window)
        self._window = window
        self.shown_dark = theme.colours().dark  # what the panels were built with
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
        self._tell()

    @Slot(Qt.ColorScheme)
    def system_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self.choice == "system":
            self._tell()

    def wanted_dark(self) -> bool:
        return theme.system_is_dark() if self.choice == "system" else self.choice == "dark"

    def _tell(self) -> None:
        dark = self.wanted_dark()
        if dark == self.shown_dark:
            self._window.banner_bar.hide_message()
            return
        self._window.banner_bar.show_message(
            f"{'Dark' if dark else 'Light'} colours from the next start: the panels take "
            "their colours when they are built.",
            "warning",
        )

"""Where the docks are: the default layout for the window's size (two rows or three), the
last session's layout read back and saved, View ▸ Reset layout."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QObject, QTimer, Slot

from rnnviz.gui.window import docks as dock_table

if TYPE_CHECKING:
    from rnnviz.gui.window.main_window import MainWindow


class WindowLayout(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        window.resize(*dock_table.first_size(dock_table.available_screen()))
        self.compact = dock_table.apply_default_layout(window, window.docks)
        self.shown = False  # the first show lays the docks out for the size it has
        self.restored = False  # the last session's layout was read back

    def first_show(self) -> None:
        """From the window's showEvent."""
        if not self.shown:
            self.shown = True
            if not self.restored:
                QTimer.singleShot(0, self.lay_out_for_size)  # dock sizes take once it is sized

    @Slot()
    def lay_out_for_size(self, size: tuple[int, int] | None = None) -> None:
        """The default layout for the window's size now, or resized to ``size`` (``--size``
        calls it before the window shows: three rows of docks' least heights and a lesson bar
        grew a 720 px window to 830 as it showed). A shown window asked for less than the
        three rows' least height stays near 900 px (its least size follows its layout) until
        the two rows are in: ``size`` is asked for again once they are, and says which
        layout is meant."""
        w = self._window
        if size is not None:
            w.resize(*size)
        height = w.height() if size is None else size[1]
        if (height < dock_table.COMPACT_HEIGHT) != self.compact:
            self.compact = dock_table.apply_default_layout(w, w.docks, height)
            if size is not None:
                layout = w.layout()
                if layout is not None:  # the window's least size is now the two rows'
                    layout.activate()
                w.resize(*size)
        self._size_docks()
        w.focus_view.refocus()

    def _size_docks(self) -> None:
        w = self._window
        width = w.panels.controls.sizeHint().width()
        dock_table.size_default_docks(w, w.docks, width, self.compact)

    def reset(self) -> None:
        """Every dock back to its default place and size (View ▸ Reset layout)."""
        w = self._window
        w.focus_view.unfocus()
        w.lecture_mode.set_lecture(False)
        self.compact = dock_table.apply_default_layout(w, w.docks)
        self._size_docks()

    def restore(self) -> None:
        """The last session's geometry and docks."""
        w = self._window
        geometry = w.settings.geometry()
        if geometry:
            w.restoreGeometry(QByteArray(geometry))
        state = w.settings.window_state()
        if state:
            self.restored = w.restoreState(QByteArray(state), dock_table.LAYOUT_VERSION)
        w.banner_bar.hide()  # a message from the last session is not news

    def save(self) -> None:
        """Geometry and docks into the settings (saved with them)."""
        w = self._window
        w.settings.set_geometry(bytes(w.saveGeometry().data()))
        w.settings.set_window_state(bytes(w.saveState(dock_table.LAYOUT_VERSION).data()))

    def show_on_screen(self) -> None:
        """As it was left last time, else maximised: the whole screen is the lecture's."""
        w = self._window
        if self.restored or w.settings.geometry():
            w.show()
        else:
            w.showMaximized()

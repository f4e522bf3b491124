"""A dock's title bar with a "?": what the panel shows, in two or three sentences and the
book's notation (``panels.help``), beside the float and close buttons Qt's own bar has.

Qt drags the dock by this bar and floats it on a double click, as by its own: the bar leaves
the mouse events it does not use to the dock (QDockWidget.setTitleBarWidget).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QSize, Qt, Slot
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from rnnviz.gui import theme
from rnnviz.gui.widgets import SteadyLabel


class HelpPopup(QFrame):
    """The help text under the "?", closed by a click elsewhere or Esc (a popup)."""

    def __init__(self, title: str, text: str, parent: QWidget) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("panel_help")
        self.setFrameShape(QFrame.Shape.Box)
        self._label = QLabel(f"<b>{title}</b><br><br>{text}")
        self._label.setTextFormat(Qt.TextFormat.RichText)
        self._label.setWordWrap(True)
        self._label.setFont(theme.font())
        # a paragraph a student reads in one go, not one line across a 1920-px screen
        self._label.setFixedWidth(round(34 * theme.point_size()))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addWidget(self._label)

    def text(self) -> str:
        return self._label.text()


class DockTitle(QWidget):
    def __init__(self, dock: QDockWidget, help_title: str, help_text: str) -> None:
        super().__init__(dock)
        self._dock = dock
        self._help = (help_title, help_text)
        self.popup: HelpPopup | None = None
        self._label = QLabel(dock.windowTitle())
        # "model at step 400 of 2,000" while the timeline shows an older model (window/timeline)
        self.note = SteadyLabel(shrink=True)  # "of 2,000" grows with every metrics batch
        self.note.setObjectName(f"note_{dock.objectName()}")
        self.note.label().setFont(theme.font(bold=True))
        self.note.hide()
        self._note_colour = ""
        style = self.style()
        self.help_button = self._button(
            "?", f"help_{dock.objectName()}", f"What {help_title} shows"
        )
        self.help_button.setFont(theme.font(0.9, bold=True))
        self.help_button.clicked.connect(self.show_help)
        float_button = self._button("", "", "Float the panel in its own window, or dock it back")
        float_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_TitleBarNormalButton))
        float_button.clicked.connect(lambda: dock.setFloating(not dock.isFloating()))
        close_button = self._button("", "", "Close the panel (View menu: open it again)")
        close_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        close_button.clicked.connect(dock.close)
        # no taller than Qt's own bar: the panels keep their height on a 720-px projector
        side = self.fontMetrics().height() + 2
        for button in (self.help_button, float_button, close_button):
            button.setFixedSize(side, side)
            button.setIconSize(QSize(side - 6, side - 6))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 2, 0)
        layout.setSpacing(2)
        layout.addWidget(self._label)
        layout.addWidget(self.note, 1)
        layout.addStretch(0)
        for button in (self.help_button, float_button, close_button):
            layout.addWidget(button)

    def title(self) -> str:
        """The whole title the bar shows (the dock's tab may say a shorter one)."""
        return self._label.text()

    def set_note(self, text: str) -> None:
        """A word beside the title in the warning colour ("" hides it)."""
        if text:
            self.note.setText(f"· {text}")
            colour = theme.colours().states["paused"]
            if colour != self._note_colour:  # a style sheet restyles the label: only on change
                self._note_colour = colour
                self.note.label().setStyleSheet(f"color: {colour};")
        self.note.setVisible(bool(text))

    def _button(self, text: str, name: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space stays the window's Play key
        return button

    @Slot()
    def show_help(self) -> HelpPopup:
        """The panel's help under the "?" (kept on the screen)."""
        if self.popup is not None:
            self.popup.close()
        self.popup = popup = HelpPopup(*self._help, self)
        popup.show()  # its size is final once shown
        below = self.help_button.mapToGlobal(QPoint(self.help_button.width(), self.height()))
        screen = self.screen().availableGeometry()
        size = popup.frameGeometry().size()
        x = max(screen.left(), min(below.x() - size.width(), screen.right() + 1 - size.width()))
        y = max(screen.top(), min(below.y(), screen.bottom() + 1 - size.height()))
        popup.move(x, y)
        return self.popup

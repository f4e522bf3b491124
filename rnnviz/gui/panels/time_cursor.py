"""The time cursor: which character of the probe string every probe panel marks.

Every method runs in the GUI thread. ``set_cursor`` never emits: ``cursor_changed`` reports
what the user did, so wiring the panels to the cursor cannot loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

from rnnviz.gui import theme
from rnnviz.gui.panels._probe_common import clamp, quoted, slider_style

if TYPE_CHECKING:
    from rnnviz.core.probe import ProbeResult


class TimeCursor(QWidget):
    """A slider over the time steps of the probe string and a label ``t = 5 / 15  'i' → 'm'``.

    ``cursor_changed`` is emitted when the user moves the slider or the main window calls
    ``step`` / ``home`` / ``end`` (its keyboard shortcuts); ``set_cursor`` is silent.
    """

    cursor_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._length = 0
        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.setRange(0, 0)
        self._slider.setPageStep(5)
        self._slider.setEnabled(False)
        self._slider.setToolTip("time step of the probe string (Alt+← / Alt+→, Home, End)")
        self._slider.setStyleSheet(slider_style())
        self._label = QLabel()
        self._label.setFont(theme.font(1.2, mono=True))
        self._label.setMinimumWidth(QFontMetrics(self._label.font()).horizontalAdvance("x" * 26))
        caption = QLabel("time step")
        caption.setFont(theme.font())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(caption)
        layout.addWidget(self._slider, 1)
        layout.addWidget(self._label)
        self._slider.valueChanged.connect(self._on_slider_value_changed)
        self._update_label()

    # -- state
    def cursor(self) -> int:  # type: ignore[override]
        """The time step (shadows QWidget.cursor, the mouse cursor, which this widget never sets;
        Qt's C++ side does not call it through Python)."""
        return int(self._slider.value())

    def length(self) -> int:
        return self._length

    def label_text(self) -> str:
        return self._label.text()

    def slider(self) -> QSlider:
        """The slider the user drags (moving it emits ``cursor_changed``)."""
        return self._slider

    # -- set from outside (silent)
    def set_result(self, result: ProbeResult | None) -> None:
        self.set_text("" if result is None else result.text)

    def set_text(self, text: str) -> None:
        """The probe string: its length bounds the cursor, its characters name the steps."""
        self._text = text
        self.set_length(len(text))

    def set_length(self, length: int) -> None:
        """Bound the cursor to ``0 .. length-1`` (clamped silently)."""
        self._length = max(0, int(length))
        if len(self._text) != self._length:
            self._text = ""
        self._slider.blockSignals(True)
        self._slider.setRange(0, max(self._length - 1, 0))
        self._slider.blockSignals(False)
        self._slider.setEnabled(self._length > 1)
        self._update_label()

    def set_cursor(self, t: int) -> None:
        self._slider.blockSignals(True)
        self._slider.setValue(clamp(int(t), self._length))
        self._slider.blockSignals(False)
        self._update_label()

    # -- user actions (emit cursor_changed when the cursor moves)
    def step(self, delta: int = 1) -> None:
        self._move_to(self.cursor() + delta)

    def home(self) -> None:
        self._move_to(0)

    def end(self) -> None:
        self._move_to(self._length - 1)

    def _move_to(self, t: int) -> None:
        if self._length:
            self._slider.setValue(clamp(t, self._length))  # emits through valueChanged

    def _on_slider_value_changed(self, value: int) -> None:
        self._update_label()
        self.cursor_changed.emit(value)

    def _update_label(self) -> None:
        if self._length == 0:
            self._label.setText("t = –")
            return
        t = self.cursor()
        text = f"t = {t} / {self._length - 1}"
        if self._text:
            following = quoted(self._text[t + 1]) if t + 1 < self._length else "end"
            text += f"   {quoted(self._text[t])} → {following}"
        self._label.setText(text)

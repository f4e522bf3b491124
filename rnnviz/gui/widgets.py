"""Small Qt widgets shared by the panels and the window."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLabel, QSizePolicy, QWidget

from rnnviz.gui import theme

# how much wider than its text a growing SteadyLabel becomes: a quarter, at least the first
# and at most the second number of average character widths (a long label's quarter would
# push its neighbours off a full status bar)
GROWTH_SLACK_CHARS = (3, 8)


class SteadyLabel(QWidget):
    """A label for a value that changes many times a second (a step count, a clip rate, a
    probe's readout), whose new text does not re-lay out the window.

    ``QLabel.setText`` asks its parent layout to re-lay out, and the request travels up every
    layout to the main window's, which re-lays out every dock (Qt even makes a geometry
    animation per dock each time), dozens of times a second while training. This widget
    holds the QLabel without a layout, so the request stops here; it asks its own layout for
    room only when a text needs more height, or more width than any before it. ``shrink``:
    the layout may make it narrower than its text (the text is then cut).
    ``wrap``: word-wrapped; its height follows the text at the width it has.
    """

    def __init__(
        self,
        text: str = "",
        parent: QWidget | None = None,
        *,
        shrink: bool = False,
        wrap: bool = False,
    ) -> None:
        super().__init__(parent)
        self._label = QLabel(text, self)
        self._label.setWordWrap(wrap)
        self._shrink = shrink or wrap
        self._hint = QSize(0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def label(self) -> QLabel:
        """The QLabel inside (its font, text format, style)."""
        return self._label

    def text(self) -> str:
        return self._label.text()

    def setText(self, text: str) -> None:  # noqa: N802 - QLabel's name
        self._label.setText(text)
        # here, not only on the label's LayoutRequest: a hidden widget posts none, and the
        # layout would keep the size it cached for the old text
        self._relayout_if_needed()

    def setToolTip(self, text: str) -> None:  # noqa: N802 - QWidget's name
        super().setToolTip(text)
        self._label.setToolTip(text)

    def _wanted(self) -> QSize:
        hint = self._label.sizeHint()
        m = self.contentsMargins()
        extra_w, extra_h = m.left() + m.right(), m.top() + m.bottom()
        height = hint.height()
        if self._label.wordWrap():
            # a label behind another dock's tab is never laid out: at its few pixels of
            # width the saturation panel's sentence asked for 506 px, and the tab group
            # (and the window) grew taller than a 1080-line screen. Its width decides once
            # it has one, and never fewer than a dozen characters' worth
            least = 12 * self._label.fontMetrics().averageCharWidth()
            at = self.width() - extra_w if self.width() > 1 else hint.width()
            height = self._label.heightForWidth(max(at, least))
            height = height if height > 0 else hint.height()
        width = hint.width() + extra_w
        if width > self._hint.width() and not self._label.wordWrap():
            # grows only, and with room to spare: a count that gains a digit, or a proportional
            # font's wider digits, would otherwise re-lay out the window again and again
            char = self._label.fontMetrics().averageCharWidth()
            least, most = (n * char for n in GROWTH_SLACK_CHARS)
            width += min(most, max(least, width // 4))
        return QSize(max(width, self._hint.width()), height + extra_h)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        self._hint = self._wanted()
        return QSize(self._hint)

    def refit(self) -> None:
        """Forget the widest text so far (a text that became shorter for good: a status bar
        that moved the step count elsewhere) and take the current one's width."""
        self._hint = QSize(0, 0)
        self.updateGeometry()

    def _needs_room(self) -> bool:
        wanted = self._wanted()
        if self._label.wordWrap():
            return wanted != self._hint
        return wanted.height() != self._hint.height() or wanted.width() > self._hint.width()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = self.sizeHint()
        return QSize(0 if self._shrink else hint.width(), hint.height())

    def _relayout_if_needed(self) -> None:
        if self._needs_room():
            self.updateGeometry()  # the layout asks sizeHint again

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:  # the label's text or font changed
            self._relayout_if_needed()
            return True
        return super().event(event)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._label.setGeometry(self.contentsRect())  # margins: room beside a neighbour
        super().resizeEvent(event)
        if self._label.wordWrap():
            self._relayout_if_needed()  # a new width: another height


class LogSpinBox(QDoubleSpinBox):
    """A spin box that steps through 1-2-5 (learning rates, θ) and shows values as ``%g``."""

    def __init__(self, minimum: float, maximum: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(6)
        self.setRange(minimum, maximum)
        self.setKeyboardTracking(False)

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt override
        value = self.value()
        for _ in range(abs(steps)):
            value = next_125(value, steps > 0)
        self.setValue(min(max(value, self.minimum()), self.maximum()))

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return f"{value:g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt override
        try:
            return float(text)
        except ValueError:
            return self.value()


def next_125(value: float, up: bool) -> float:
    """The next value of the 1-2-5 series (…, 0.1, 0.2, 0.5, 1, 2, 5, …) above or below."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    candidates = sorted(
        m * 10.0**e for e in (exponent - 1, exponent, exponent + 1) for m in (1.0, 2.0, 5.0)
    )
    eps = value * 1e-9
    if up:
        return next(c for c in candidates if c > value + eps)
    return next(c for c in reversed(candidates) if c < value - eps)


# ------------------------------------------------------------------ the layer/direction selectors


def selector(name: str, tooltip: str, items: tuple[tuple[str, object], ...] = ()) -> QComboBox:
    """A panel's selector that stays hidden until a result gives it a choice (a stacked
    layer, a direction): its object name, the panels' font, its tooltip and ``items``
    (label, data)."""
    box = QComboBox()
    box.setObjectName(name)
    box.setFont(theme.font())
    for label, value in items:
        box.addItem(label, value)
    box.setToolTip(tooltip)
    box.hide()
    return box


def select_data(box: QComboBox, value: object) -> None:
    """Show the entry whose data is ``value``, without ``currentIndexChanged``: the panel
    was told, not chosen on."""
    box.blockSignals(True)
    try:
        box.setCurrentIndex(box.findData(value))
    finally:
        box.blockSignals(False)


def fill_layers(box: QComboBox, layers: int, shown: int, tips: bool = False) -> None:
    """``layer L`` .. ``layer 1`` (data L-1 .. 0: the top one first, as every panel lists
    them), ``shown`` selected, silently; visible for more than one. ``tips``: the top and the
    bottom entry say what they read."""
    box.blockSignals(True)
    try:
        box.clear()
        for layer in range(layers - 1, -1, -1):  # short: two selectors share a 1280-px row
            box.addItem(f"layer {layer + 1}", layer)
            where = "the top one, read by the output layer" if layer == layers - 1 else ""
            where = "the bottom one, reading the characters" if layer == 0 else where
            if tips and where:
                box.setItemData(box.count() - 1, where, Qt.ItemDataRole.ToolTipRole)
        box.setCurrentIndex(box.findData(shown))
    finally:
        box.blockSignals(False)
    box.setVisible(layers > 1)


def direction_value(direction: str) -> str | None:
    """ "forward" or "reverse" (the backward direction, by either name); None for neither."""
    direction = "reverse" if direction == "backward" else direction
    return direction if direction in ("forward", "reverse") else None

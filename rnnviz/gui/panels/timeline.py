"""The timeline: which stored snapshot of training the probe panels show, and the way back.

A slider over the stored parameter snapshots (one position each, oldest at the left, the
rightmost "live"), the buttons and keys ``[`` / ``]`` for the snapshot before or after, and
Live. While the view is on an older model the step shown ("step 400 of 2,000") is drawn in
the warning colour, as every probe dock's title says it: a student must not mistake it for
the model training. While live the label is the bar's caption, "training time" (the status
bar has the step): the bar shares its row with the time cursor, with no room for both.

Every method runs in the GUI thread; ``set_timeline`` never emits, so wiring cannot loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QSlider, QToolButton, QWidget

from rnnviz.gui import theme
from rnnviz.gui.panels._probe_common import slider_style
from rnnviz.gui.widgets import SteadyLabel

LIVE_CAPTION = "training time"


class TimelineBar(QWidget):
    step_requested = Signal(int)  # the user moved the slider to the snapshot of this step
    neighbour_requested = Signal(int)  # -1 / +1: the snapshot before / after ([ and ])
    live_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._steps: list[int] = []
        self._live = True
        self._text = ""
        self._colour = ""
        self._earlier = self._arrow("◀", "The stored snapshot before this one ([)", -1)
        self._later = self._arrow("▶", "The stored snapshot after this one (])", +1)
        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.setObjectName("timeline_slider")
        self._slider.setRange(0, 0)
        self._slider.setEnabled(False)
        self._slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # [ and ] work from anywhere
        # no caption on its left: the row it shares with the time cursor has no room at 600 px;
        # the label on its right says "training time" while live (it may be cut, not widen)
        self._slider.setToolTip(
            "Training time: the probe panels show the model as it was at a stored snapshot "
            "(one position each; the right end is live)"
        )
        self._slider.setStyleSheet(slider_style())
        # its text changes with every snapshot while training; cut rather than widen the dock
        self._label = SteadyLabel(shrink=True)
        self._label.setObjectName("timeline_label")
        self._label.label().setFont(theme.font(1.1, bold=True))
        self._live_button = QToolButton(self)
        self._live_button.setText("Live")
        self._live_button.setObjectName("timeline_live")
        self._live_button.setToolTip("Back to the model training now")
        self._live_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._live_button.clicked.connect(self.live_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(self._earlier)
        layout.addWidget(self._slider, 1)
        layout.addWidget(self._later)
        layout.addWidget(self._label)
        layout.addWidget(self._live_button)
        self._slider.valueChanged.connect(self._on_slider)
        self.set_timeline([], None, "live")

    def _arrow(self, text: str, tip: str, direction: int) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        button.clicked.connect(lambda: self.neighbour_requested.emit(direction))
        return button

    # ---------------------------------------------------------------- from the window

    def set_timeline(self, steps: Sequence[int], viewed: int | None, label: str) -> None:
        """The stored steps, the one shown (None: live) and what to say about it (shown only
        while not live)."""
        self._steps = list(steps)
        self._live = viewed is None
        n = len(self._steps)
        index = n - 1 if viewed is None or viewed not in self._steps else self._steps.index(viewed)
        self._slider.blockSignals(True)
        self._slider.setRange(0, max(n - 1, 0))
        self._slider.setValue(max(index, 0))
        self._slider.blockSignals(False)
        self._slider.setEnabled(n > 1)
        self._earlier.setEnabled(n > 1 and index > 0)
        self._later.setEnabled(not self._live)
        self._live_button.setEnabled(not self._live)
        self._text = label
        scheme = theme.colours()
        if self._live:  # the bar's caption: the row has no room for one beside the slider
            shown, colour = LIVE_CAPTION, scheme.secondary_ink
        else:  # amber: not the model training now
            shown, colour = label.removeprefix("model at "), scheme.states["paused"]
        if shown != self._label.text():
            self._label.setText(shown)
        if colour != self._colour:  # a style sheet restyles the label: only when it changes
            self._colour = colour
            self._label.label().setStyleSheet(f"color: {colour};")

    # ---------------------------------------------------------------- reading (tests)

    def label_text(self) -> str:
        """What the bar says about the model shown ("model at step 400 of 2,000", "live: …")."""
        return self._text

    def shown_label(self) -> str:
        """The label's text on screen (the caption while live)."""
        return self._label.text()

    def slider(self) -> QSlider:
        return self._slider

    def live_button(self) -> QToolButton:
        return self._live_button

    def _on_slider(self, index: int) -> None:
        if not self._steps:
            return
        if index >= len(self._steps) - 1:
            self.live_requested.emit()
        else:
            self.step_requested.emit(self._steps[index])

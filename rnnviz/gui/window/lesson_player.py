"""The lesson bar: a lesson's narration above the panels, Back and Next, and what each step sets.

A step (``core.lessons.LessonStep``) sets what it declares and leaves the rest as it is: the
preset (the run restarts from it only when it is not the preset the lesson set last, so Back
and Next keep the training a step did), the probe string, one panel full size or the
overview, the panels brought to the front, the cursor, the MLP row, whether training runs, and
play through time.
PageDown / PageUp (a presenter remote's keys) move through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QRect, Qt, Signal, Slot
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from rnnviz.core.lessons import KEEP, Lesson, LessonStep
from rnnviz.core.presets import preset as preset_named
from rnnviz.gui import theme

if TYPE_CHECKING:
    from rnnviz.gui.window.main_window import MainWindow


NARRATION_LINES = 4  # a step's narration is a few sentences: four lines at 1280 px


class LessonBar(QFrame):
    """The narration of the step shown, and the buttons that move through the lesson."""

    back_requested = Signal()
    next_requested = Signal()
    close_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lesson_bar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._heading = QLabel()
        self._heading.setFont(theme.font(1.25, bold=True))
        self._narration = QLabel()
        self._narration.setFont(theme.font(1.1))
        self._narration.setWordWrap(True)
        self._narration.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        # a fixed height (the heading and NARRATION_LINES lines) and labels that take the width
        # they are given: a word-wrapped label in a tool bar otherwise widened the window to
        # its text, or grew as tall as the window at a narrow width
        for label in (self._heading, self._narration):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            label.setMinimumWidth(200)
        heading_h = QFontMetrics(self._heading.font()).height()
        # as tall as NARRATION_LINES wrapped lines are laid out (lineSpacing times the count,
        # a few pixels less, cut the last line's descenders)
        narration_h = (
            QFontMetrics(self._narration.font())
            .boundingRect(QRect(0, 0, 1000, 1000), 0, "\n".join(["Xg"] * NARRATION_LINES))
            .height()
        )
        self._heading.setFixedHeight(heading_h)
        self._narration.setFixedHeight(narration_h)
        self._narration.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.back_button = QPushButton("◀ Back")
        self.next_button = QPushButton("Next ▶")
        close = QPushButton("End lesson")
        for button, tip in (
            (self.back_button, "The step before (PageUp)"),
            (self.next_button, "The next step (PageDown)"),
            (close, "Close the lesson; the window stays as it is"),
        ):
            button.setFont(theme.font(1.1))
            button.setToolTip(tip)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # PageDown stays the window's
        # the buttons beside the heading: the narration takes the whole width (at lecture
        # mode's size, beside them, a step's narration ran past its four lines)
        heading_row = QHBoxLayout()
        heading_row.setContentsMargins(0, 0, 0, 0)
        heading_row.addWidget(self._heading, 1)
        for button in (self.back_button, self.next_button, close):
            heading_row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(2)
        layout.addLayout(heading_row)
        layout.addWidget(self._narration)
        button_h = self.next_button.sizeHint().height()
        self.setFixedHeight(max(heading_h, button_h) + narration_h + 14)
        self.back_button.clicked.connect(self.back_requested)
        self.next_button.clicked.connect(self.next_requested)
        close.clicked.connect(self.close_requested)

    def show_step(self, lesson: Lesson, index: int) -> None:
        step = lesson.steps[index]
        count = len(lesson.steps)
        self._heading.setText(f"{index + 1} / {count}  {step.title}")
        self._heading.setToolTip(f"{lesson.title} ({lesson.source})")
        self._narration.setText(step.narration)
        self.back_button.setEnabled(index > 0)
        self.next_button.setEnabled(index + 1 < count)

    def heading_text(self) -> str:
        return self._heading.text()

    def narration_text(self) -> str:
        return self._narration.text()


class LessonPlayer(QObject):
    """Moves through a lesson and applies each step to the window."""

    step_shown = Signal(int)  # the index of the step now shown

    def __init__(self, window: MainWindow, bar: LessonBar) -> None:
        super().__init__(window)
        self._window, self._bar = window, bar
        self._lesson: Lesson | None = None
        self._index = 0
        self._cursor_after_probe: int | None = None
        self._preset: str | None = None  # the preset this lesson applied last
        self._play_after_probe = False
        # False: a step's "train" is left alone (``--screenshot`` trains a fixed number of steps)
        self.drives_training = True
        bar.back_requested.connect(self.back)
        bar.next_requested.connect(self.next)
        bar.close_requested.connect(self.close)
        self._awaiting_run = False  # a preset restarted the run: wait for the new one's probe
        window.probe_shown.connect(self._on_probe_shown)
        window.app_state.run_info_changed.connect(self._on_new_run)
        bar.hide()

    def lesson(self) -> Lesson | None:
        return self._lesson

    def index(self) -> int:
        return self._index

    def start(self, lesson: Lesson, index: int = 0) -> None:
        self._lesson = lesson
        self._preset = None
        self._bar.show()
        self._window.setFocus()  # the remote's keys go to the window, not into a field
        self.go_to(index)

    @Slot()
    def close(self) -> None:
        self._lesson = None
        self._bar.hide()

    @Slot()
    def next(self) -> None:
        if self._lesson is not None and self._index + 1 < len(self._lesson.steps):
            self.go_to(self._index + 1)

    @Slot()
    def back(self) -> None:
        if self._lesson is not None and self._index > 0:
            self.go_to(self._index - 1)

    def go_to(self, index: int) -> None:
        assert self._lesson is not None
        index = min(max(index, 0), len(self._lesson.steps) - 1)
        self._index = index
        self._bar.show_step(self._lesson, index)
        self._apply(self._lesson.steps[index])
        self.step_shown.emit(index)

    # -- what a step sets
    def _apply(self, step: LessonStep) -> None:
        w = self._window
        unrolled = w.panels.unrolled
        unrolled.stop()
        restarted = False
        if step.preset is not None:
            preset = preset_named(step.preset)
            # by key, not by the configuration: "mlp" is d2l's configuration with a compare
            # run, and the state catches up only when the engine answers
            if step.preset != self._preset:
                w.controller.apply_preset(preset)
                self._preset = step.preset
                restarted = True
            if step.probe is None and preset.probe is not None:
                w.set_probe_text(preset.probe)
        if step.probe is not None:
            w.set_probe_text(step.probe)
        if step.full is None:
            w.focus_view.unfocus()
        elif step.full != KEEP:
            w.focus_view.focus(step.full)
        for name in step.show:
            w.show_panel(name)
        if step.mlp is not None:
            unrolled.mlp_check().setChecked(step.mlp)
        if step.train is True and self.drives_training:
            w.controller.play()
        elif step.train is False and not restarted and self.drives_training:
            w.controller.pause()  # a new run starts paused
        # the cursor and the animation wait for the probe of the text now in the box (of the
        # new run's model: the new run clears the panels, which stops an animation)
        self._awaiting_run = restarted
        self._cursor_after_probe = step.cursor
        self._play_after_probe = step.play_time
        result = w.probe_result
        if result is not None and result.text == w.panels.probe_text.text() and not restarted:
            self._on_probe_shown()

    @Slot(object)
    def _on_new_run(self, _info: object) -> None:
        self._awaiting_run = False

    @Slot()
    def _on_probe_shown(self) -> None:
        w = self._window
        result = w.probe_result
        if self._awaiting_run or result is None or result.text != w.panels.probe_text.text():
            return
        if self._cursor_after_probe is not None:
            w.probe_display.move_cursor(self._cursor_after_probe)
            self._cursor_after_probe = None
        if self._play_after_probe:
            self._play_after_probe = False
            if not w.panels.unrolled.is_playing():
                w.panels.unrolled.toggle_playing()

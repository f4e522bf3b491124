"""The status bar: the main run's state, step, epoch and speed, and every run's step."""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QStatusBar

from rnnviz.gui import plotting, theme
from rnnviz.gui.state.app_state import MAIN_RUN, AppState
from rnnviz.gui.widgets import SteadyLabel

LABEL_GAP = 10  # px each side of a label: "epoch 76" and "1,625 tokens/s" ran together


class StatusLabels(QObject):
    """The permanent labels of the window's status bar, refreshed from the state.

    They are SteadyLabels: a QLabel's new text re-lays out the whole window, and these
    change many times a second while training. Where the bar is too narrow for them all (a
    1280-px projector at lecture size, compare runs), the count of skipped NaN/inf steps
    gives way while it is 0; it is back as soon as there is one.
    """

    def __init__(self, bar: QStatusBar) -> None:
        super().__init__(bar)
        self._bar = bar
        self._compared = False
        self._read_only = False
        self.state_label = SteadyLabel()
        self.state_label.setObjectName("state_label")
        self.step_label = SteadyLabel()
        self.step_label.setObjectName("step_label")
        self.speed_label = SteadyLabel()
        self.nonfinite_label = SteadyLabel()
        self.nonfinite_label.setToolTip(
            "Optimizer steps skipped because the loss or a gradient was NaN or infinite"
        )
        # every run's step, in its curve colour, while compare runs exist
        self.runs_label = SteadyLabel()
        self.runs_label.setObjectName("runs_label")
        self.runs_label.label().setTextFormat(Qt.TextFormat.RichText)
        self.runs_label.setToolTip("Each run's optimizer step (the curves' colours)")
        self.runs_label.hide()
        for label in (
            self.state_label,
            self.runs_label,
            self.step_label,
            self.speed_label,
            self.nonfinite_label,
        ):
            label.label().setFont(theme.font(0.95, bold=label is self.state_label))
            label.setContentsMargins(LABEL_GAP, 0, LABEL_GAP, 0)
            bar.addPermanentWidget(label)
        self._nonfinite = 0
        bar.installEventFilter(self)
        bar.messageChanged.connect(self._fit)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self._bar and event.type() == QEvent.Type.Resize:
            self._fit()
        return False

    def _fit(self, *_: object) -> None:
        """Where the bar is too narrow, labels give way in turn (the NaN/inf count while it is
        0; while a message shows, the count, the speed and the step), so that the state,
        every run, and a message ("Probe failed: ...") are read whole."""
        message = self._bar.currentMessage()
        needed = self._bar.fontMetrics().horizontalAdvance(message) + 2 * LABEL_GAP
        grip = 2 * LABEL_GAP + 16  # the size grip and the bar's own margins
        room = self._bar.width() - grip - (needed if message else 0)
        # a message is short-lived: while it shows, a NaN/inf count that is not 0 gives way too
        yielding = [self.nonfinite_label] if self._nonfinite == 0 or message else []
        if message:
            yielding += [self.speed_label, self.step_label]
        labels = (
            self.state_label,
            self.runs_label,
            self.step_label,
            self.speed_label,
            self.nonfinite_label,
        )
        absent = {self.runs_label} if not self._compared else set()
        if self._read_only:  # an opened model trains at no speed
            absent.add(self.speed_label)
            self.speed_label.hide()
        shown = [label for label in labels if label not in absent]
        used = sum(label.sizeHint().width() for label in shown)
        hidden = set()
        for label in yielding:
            if used <= room:
                break
            hidden.add(label)
            used -= label.sizeHint().width()
        for label in shown:
            label.setVisible(label not in hidden)

    def update(self, state: AppState) -> None:
        main = state.main
        self.state_label.setText(main.state)
        # the scheme's shade: the light one's dark brown "paused" vanished on a dark bar
        style = f"color: {theme.state_colour(main.state)};"
        if plotting.changed(self.state_label, "style", style):  # a new style sheet re-lays out
            self.state_label.label().setStyleSheet(style)
        compare = state.compare_runs()
        # with compare runs, the runs label names every run's step
        step = "" if compare else f"step {main.step:,}   "
        if bool(compare) != self._compared:
            self._compared = bool(compare)
            self.step_label.refit()  # "step 1,234   epoch 5" is now "epoch 5"
        if state.read_only != self._read_only:
            self._read_only = state.read_only
            self.step_label.refit()
        if state.read_only:  # nothing trains it: no step, epoch or speed to tell
            self.step_label.setText("opened model, read-only")
        else:
            self.step_label.setText(f"{step}epoch {main.epoch}")
        # short texts: at lecture size, with compare runs, the longer ones cut the last label
        self.speed_label.setText(f"{theme.short_count(main.tokens_per_s)} tokens/s")
        self.nonfinite_label.setText(f"NaN/inf skipped: {main.nonfinite_total}")
        self._nonfinite = main.nonfinite_total
        if not compare:
            self.runs_label.hide()
            self._fit()
            return
        parts = []
        for run_id in [MAIN_RUN, *compare]:
            status = state.status(run_id)
            if status is None:
                continue
            note = f" ({status.state})" if status.state in ("diverged", "stopped") else ""
            parts.append(
                f"<span style='color:{theme.run_colour(run_id)}'>━━</span> "
                f"{html.escape(state.run_name(run_id))} step {status.step:,}{note}"
            )
        self.runs_label.setText("&nbsp;&nbsp;".join(parts))
        self.runs_label.show()
        self._fit()

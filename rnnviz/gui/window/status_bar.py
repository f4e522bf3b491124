"""The status bar: the main run's state, step, epoch and speed, and every run's step."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStatusBar

from rnnviz.gui import plotting, theme
from rnnviz.gui.state.app_state import MAIN_RUN, AppState
from rnnviz.gui.widgets import SteadyLabel

LABEL_GAP = 10  # px each side of a label: "epoch 76" and "1,625 tokens/s" ran together


class StatusLabels:
    """The permanent labels of the window's status bar, refreshed from the state.

    They are SteadyLabels: a QLabel's new text re-lays out the whole window, and these
    change many times a second while training.
    """

    def __init__(self, bar: QStatusBar) -> None:
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
        self.step_label.setText(f"{step}epoch {main.epoch}")
        self.speed_label.setText(f"{main.tokens_per_s:,.0f} tokens/s")
        self.nonfinite_label.setText(f"skipped non-finite steps: {main.nonfinite_total}")
        if not compare:
            self.runs_label.hide()
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

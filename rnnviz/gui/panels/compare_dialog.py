"""Compare runs: one-click presets for another run from the same start, with one change.

The dialog only says what the user chose: ``fork_requested(changes, label)`` with ``changes``
as for ``RunConfig.replace`` (the session's ``Fork`` command takes them as they are), and
``close_requested(run_id)`` / ``close_all_requested()``. The main window sends the commands;
the session builds the run from the main run's *initial* parameters and data order and
answers with a ``RunInfo`` that carries the label.

All methods run in the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from rnnviz.core.config import RunConfig
from rnnviz.gui import theme
from rnnviz.gui.theme import run_colour
from rnnviz.gui.widgets import LogSpinBox


@dataclass(frozen=True)
class Preset:
    """One compare run: its legend label, the config changes, and what the button says."""

    key: str
    label: str
    changes: dict[str, dict[str, Any]]
    button: str
    explanation: str


def clip_preset(config: RunConfig) -> Preset:
    """Clipping off (or on, when the main run trains without it)."""
    train = config.train
    if train.clip_enabled:
        return Preset(
            "clip",
            "clip off",
            {"train": {"clip_enabled": False}},
            "Clipping off",
            f"the same run without clipping (the main run clips at θ = {train.clip_theta:g})",
        )
    return Preset(
        "clip",
        f"clip θ={train.clip_theta:g}",
        {"train": {"clip_enabled": True}},
        f"Clipping on (θ = {train.clip_theta:g})",
        "the same run with clipping (the main run trains without it)",
    )


def theta_preset(theta: float) -> Preset:
    return Preset(
        "theta",
        f"θ={theta:g}",
        {"train": {"clip_theta": theta, "clip_enabled": True}},
        "Another θ",
        "clipping on, at this threshold",
    )


def lr_preset(lr: float) -> Preset:
    return Preset("lr", f"lr={lr:g}", {"train": {"lr": lr}}, "Another lr", "this learning rate")


def activation_preset(config: RunConfig) -> Preset | None:
    """ReLU instead of tanh or the other way round (the scratch and fast RNN only)."""
    if config.model.kind not in ("scratch", "fast"):
        return None
    other = "tanh" if config.model.activation == "relu" else "relu"
    name = {"tanh": "tanh", "relu": "ReLU"}
    return Preset(
        "activation",
        name[other],
        {"model": {"activation": other}},
        f"{name[other]} instead of {name[config.model.activation]}",
        f"φ = {name[other]} with the same initial weights",
    )


def recurrence_preset(config: RunConfig) -> Preset | None:
    """The slide's MLP beside the RNN: W_hh held at 0 (or back on, for a run without it)."""
    if config.model.kind not in ("scratch", "fast"):
        return None
    if config.model.num_layers > 1:  # one W_hh to hold at 0: ModelConfig refuses a stack
        return None
    if config.model.recurrence:
        return Preset(
            "recurrence",
            "no recurrence (MLP)",
            {"model": {"recurrence": False}},
            "No recurrence (the MLP)",
            "W_hh held at 0: H_t = φ(X_t W_xh + b_h) sees one character, the slide's MLP",
        )
    return Preset(
        "recurrence",
        "with recurrence",
        {"model": {"recurrence": True}},
        "With recurrence (the RNN)",
        "the same model with H_{t−1} W_hh back in (the main run holds W_hh at 0)",
    )


def default_other_theta(theta: float) -> float:
    """A θ worth comparing: ten times smaller (clips far more often)."""
    return max(theta / 10.0, 1e-4)


def default_other_lr(lr: float) -> float:
    """A learning rate worth comparing: ten times larger, within the config's limit."""
    return min(lr * 10.0, 9999.0)


def _value_spin(limits: tuple[float, float], value: float, key: str, what: str) -> LogSpinBox:
    spin = LogSpinBox(*limits)
    spin.setObjectName(f"compare_{key}_spin")
    spin.setValue(value)
    spin.setToolTip(f"{what} of the compare run (arrows: 1-2-5 steps)")
    return spin


class CompareDialog(QDialog):
    """A small window of presets; one click on a preset asks for that compare run."""

    fork_requested = Signal(object, str, bool)  # changes, label, reset all runs to step 0
    close_requested = Signal(int)  # one compare run
    close_all_requested = Signal()

    def __init__(
        self,
        config: RunConfig,
        compare_runs: dict[int, str],
        main_step: int,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("compare_dialog")
        self.setWindowTitle("Compare run")
        self.setFont(theme.font())
        self._config = config

        intro = QLabel(
            "Another run from the <b>same initial parameters</b> and the <b>same data "
            "order</b>, with one setting changed. Both train side by side; the curves show "
            "them in two colours."
        )
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)

        self.presets: dict[str, Preset] = {}
        self.preset_buttons: dict[str, QPushButton] = {}
        grid = QGridLayout()
        grid.setColumnStretch(2, 1)
        row = 0

        clip = clip_preset(config)
        self._add_preset(grid, row, clip, None)
        row += 1

        # the controls' ranges (TrainConfig's limits)
        self.theta_spin = _value_spin(
            (1e-4, 1e6), default_other_theta(config.train.clip_theta), "theta", "θ"
        )
        self._add_preset(grid, row, theta_preset(self.theta_spin.value()), self.theta_spin)
        row += 1

        self.lr_spin = _value_spin(
            (1e-5, 9999.0), default_other_lr(config.train.lr), "lr", "learning rate"
        )
        self._add_preset(grid, row, lr_preset(self.lr_spin.value()), self.lr_spin)
        row += 1

        activation = activation_preset(config)
        if activation is not None:
            self._add_preset(grid, row, activation, None)
            row += 1

        recurrence = recurrence_preset(config)
        if recurrence is not None:
            self._add_preset(grid, row, recurrence, None)
            row += 1

        presets_box = QGroupBox("Compare with")
        presets_box.setLayout(grid)

        self.reset_check = QCheckBox(
            f"start every run from step 0 (resets the main run, now at step {main_step:,})"
        )
        self.reset_check.setObjectName("compare_reset_check")
        self.reset_check.setToolTip(
            "A compare run starts at step 0 from the main run's initial parameters. Reset "
            "the main run too, so both curves start together; otherwise the main run goes "
            "on from where it is."
        )
        self.reset_check.setChecked(main_step > 0)
        self.reset_check.setVisible(main_step > 0)

        runs_box = QGroupBox("Compare runs now")
        runs_layout = QVBoxLayout(runs_box)
        self.close_buttons: dict[int, QPushButton] = {}
        for run_id, label in sorted(compare_runs.items()):
            line = QHBoxLayout()
            swatch = QLabel(f"<span style='color:{run_colour(run_id)}'>━━</span>")
            line.addWidget(swatch)
            line.addWidget(QLabel(label), 1)
            button = QPushButton("Close")
            button.setObjectName(f"compare_close_{run_id}")
            button.setProperty("run_id", run_id)
            button.setToolTip(f"Stop the compare run '{label}' and remove its curves")
            button.clicked.connect(self._on_close_clicked)
            line.addWidget(button)
            self.close_buttons[run_id] = button
            runs_layout.addLayout(line)
        self.close_all_button = QPushButton("Close compare runs")
        self.close_all_button.setObjectName("compare_close_all")
        self.close_all_button.setToolTip("Stop every compare run; the main run goes on")
        self.close_all_button.clicked.connect(self._on_close_all_clicked)
        self.close_all_button.setEnabled(bool(compare_runs))
        if not compare_runs:
            runs_layout.addWidget(QLabel("none"))
        runs_layout.addWidget(self.close_all_button)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(presets_box)
        layout.addWidget(self.reset_check)
        layout.addWidget(runs_box)
        layout.addWidget(buttons)
        self.resize(640, self.sizeHint().height())

    def _add_preset(
        self, grid: QGridLayout, row: int, preset: Preset, value_widget: QWidget | None
    ) -> None:
        button = QPushButton(preset.button)
        button.setObjectName(f"compare_{preset.key}")
        button.setProperty("preset", preset.key)
        button.setToolTip(f"Start a compare run: {preset.explanation}")
        button.clicked.connect(self._on_preset_clicked)
        grid.addWidget(button, row, 0)
        if value_widget is not None:
            grid.addWidget(value_widget, row, 1)
        note = QLabel(preset.explanation)
        note.setWordWrap(True)
        note.setStyleSheet("color: #444444;")
        grid.addWidget(note, row, 2)
        self.presets[preset.key] = preset
        self.preset_buttons[preset.key] = button

    def preset(self, key: str) -> Preset:
        """The preset as a click would send it now (θ and lr read from their boxes)."""
        if key == "theta":
            return theta_preset(self.theta_spin.value())
        if key == "lr":
            return lr_preset(self.lr_spin.value())
        return self.presets[key]

    @Slot()
    def _on_preset_clicked(self) -> None:
        key = str(self.sender().property("preset"))
        preset = self.preset(key)
        self.fork_requested.emit(preset.changes, preset.label, self.reset_check.isChecked())
        self.accept()

    @Slot()
    def _on_close_clicked(self) -> None:
        self.close_requested.emit(int(self.sender().property("run_id")))
        self.accept()

    @Slot()
    def _on_close_all_clicked(self) -> None:
        self.close_all_requested.emit()
        self.accept()

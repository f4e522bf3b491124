"""The controls panel: play / pause / step / reset, live hyperparameters, run settings.

Two kinds of settings:

* live ones (lr, clip θ, clipping on/off) take effect at the next optimizer step, so they
  are sent as ``hyper_changed`` while training runs;
* the others need a new model (``config_changed`` with the whole new RunConfig). The panel
  never resets anything itself: the main window asks the user first, and calls
  :meth:`ControlsPanel.set_config` with the old config to revert the widgets on "no".

The shortcuts themselves are QActions of the main window; tooltips here name them.
All methods run in the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from rnnviz.core.config import (
    BIDIRECTIONAL_LM_REFUSAL,
    BIDIRECTIONAL_LM_SHORT,
    LANGUAGE_MODEL,
    LAYERS_RANGE,
    ConfigError,
    RunConfig,
    bidirectional_allowed,
)
from rnnviz.gui import theme
from rnnviz.gui.widgets import LogSpinBox, SteadyLabel

MODEL_CHOICES: tuple[tuple[str, str], ...] = (
    ("scratch RNN", "scratch"),
    ("fast RNN", "fast"),
    ("GRU", "gru"),
    ("LSTM", "lstm"),
)
ACTIVATION_CHOICES: tuple[tuple[str, str], ...] = (("tanh", "tanh"), ("ReLU", "relu"))
# the kinds that stack layers: the fast RNN's hand-written BPTT is one layer's
STACKABLE: tuple[str, ...] = ("scratch", "gru", "lstm")
CORPUS_CHOICES: tuple[tuple[str, str], ...] = (
    ("built-in (Python docs)", "builtin"),
    ("synthetic: repeat 'machine'", "synthetic:repeat"),
    ("synthetic: delay task", "synthetic:delay"),
    ("synthetic: brackets", "synthetic:brackets"),
    ("The Time Machine (download)", "time-machine"),
)
MAX_WIDTH = 400  # px: the settings need about 290; the plots beside them need the rest
OPEN_FILE = "\0open-file"  # the combo entry that asks for a file
OPTIMIZER_CHOICES: tuple[tuple[str, str], ...] = (("SGD", "sgd"), ("Adam", "adam"))
PREPROCESS_CHOICES: tuple[tuple[str, str], ...] = (
    ("d2l: letters only, lower case", "d2l"),
    ("keep the text as is", "keep"),
)
PARTITION_CHOICES: tuple[tuple[str, str], ...] = (
    ("random windows", "random"),
    ("sequential (state carried)", "sequential"),
)


def _combo(choices: tuple[tuple[str, str], ...], tooltip: str, name: str) -> QComboBox:
    combo = QComboBox()
    combo.setObjectName(name)
    for label, value in choices:
        combo.addItem(label, value)
    combo.setToolTip(tooltip)
    # narrow when the dock is: long entries are elided, their full text is in the popup
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    return combo


def _spin(minimum: int, maximum: int, tooltip: str, name: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setObjectName(name)
    spin.setRange(minimum, maximum)
    spin.setKeyboardTracking(False)  # apply on Enter / focus out, not on every digit
    spin.setToolTip(tooltip)
    return spin


def _select(combo: QComboBox, value: str) -> None:
    index = combo.findData(value)
    if index >= 0:
        combo.setCurrentIndex(index)


def _icon(widget: QWidget, name: str) -> QIcon:
    """One of the style's standard icons (drawn by Qt, not taken from a font)."""
    return widget.style().standardIcon(getattr(QStyle.StandardPixmap, name))


class ControlsPanel(QWidget):
    """Buttons and settings; emits what the user asked for, changes nothing by itself."""

    play_toggled = Signal(bool)  # True: start training, False: pause
    step_requested = Signal()
    reset_requested = Signal()
    compare_requested = Signal()  # "Compare run…": the main window offers the presets
    hyper_changed = Signal(float, float, bool)  # lr, clip θ, clipping on
    config_changed = Signal(object)  # RunConfig: needs a new model (ask, then Reset)
    corpus_file_requested = Signal()  # "Open file…" in the corpus combo
    invalid_setting = Signal(str)  # a setting the config rejected (message for the user)

    def __init__(self, config: RunConfig | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._config = config or RunConfig()
        self._training = False

        # ------------------------------------------------------------ run buttons
        # standard icons: the ⏸ glyph is missing from common fonts and showed as a box
        self.play_button = QPushButton(_icon(self, "SP_MediaPlay"), "Play")
        self.play_button.setObjectName("play_button")
        self.play_button.setToolTip("Play / Pause training (Space)")
        self.play_button.clicked.connect(self._on_play_clicked)
        self.step_button = QPushButton(_icon(self, "SP_MediaSkipForward"), "Step")
        self.step_button.setObjectName("step_button")
        self.step_button.setToolTip("Train exactly one minibatch, then pause (→)")
        self.step_button.clicked.connect(self._on_step_clicked)
        self.reset_button = QPushButton(_icon(self, "SP_BrowserReload"), "Reset")
        self.reset_button.setObjectName("reset_button")
        self._reset_tip = (
            "Reset the model to its initial parameters: same seed, same initialisation, "
            "same data order (Ctrl+R)"
        )
        self.reset_button.setToolTip(self._reset_tip)
        self.reset_button.clicked.connect(self._on_reset_clicked)
        self.compare_button = QPushButton("Compare run…")
        self.compare_button.setObjectName("compare_button")
        self.compare_button.setToolTip(
            "Train another run from the same initial parameters and the same data order with "
            "one setting changed (clipping off, another θ or lr, another φ), and plot both "
            "(Ctrl+K)"
        )
        self.compare_button.clicked.connect(self._on_compare_clicked)
        for button in (self.play_button, self.step_button, self.reset_button, self.compare_button):
            button.setMinimumHeight(32)

        # ------------------------------------------------------------ live settings
        self.lr_spin = LogSpinBox(1e-5, 9999.0)  # TrainConfig: 0 < lr < 1e4
        self.lr_spin.setObjectName("lr_spin")
        self.lr_spin.setToolTip(
            "Learning rate η. Applies at the next step, also while training. "
            "Arrows step through 1-2-5 (…0.5, 1, 2, 5…); type any value and press Enter."
        )
        self.theta_spin = LogSpinBox(1e-4, 1e6)
        self.theta_spin.setObjectName("theta_spin")
        self.theta_spin.setToolTip(
            "Clipping threshold θ: g ← min(1, θ/‖g‖) g. Applies at the next step."
        )
        self.clip_check = QCheckBox("clip gradients")
        self.clip_check.setObjectName("clip_check")
        self.clip_check.setToolTip(
            "Gradient clipping on/off. Off: watch ‖g‖ explode. Applies at the next step."
        )
        for widget in (self.lr_spin, self.theta_spin):
            widget.valueChanged.connect(self._on_hyper_widget_changed)
        self.clip_check.toggled.connect(self._on_hyper_widget_changed)

        # ------------------------------------------------------------ settings that reset
        self.model_combo = _combo(
            MODEL_CHOICES,
            "The model. scratch RNN: the d2l loop in Python; fast RNN: the same maths, "
            "hand-written BPTT; GRU / LSTM: gated cells. Changing it resets training.",
            "model_combo",
        )
        self.activation_combo = _combo(
            ACTIVATION_CHOICES,
            "φ in H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h). GRU and LSTM use their own "
            "gates. Changing it resets training.",
            "activation_combo",
        )
        self.hidden_spin = _spin(1, 2048, "Hidden units H (resets training)", "hidden_spin")
        self.layers_spin = _spin(
            *LAYERS_RANGE,
            "Stacked recurrent layers (d2l 10.3, deep RNNs): layer l reads layer l-1's H_t, "
            "the output layer the top one. Scratch RNN, GRU and LSTM; the fast RNN's "
            "hand-written BPTT is one layer's. Changing it resets training.",
            "layers_spin",
        )
        # the task trained is the language model; core says whether it trains a bidirectional
        # model (it does not: the reverse direction would read the next character)
        self._task = LANGUAGE_MODEL
        self.bidirectional_check = QCheckBox("bidirectional")
        self.bidirectional_check.setObjectName("bidirectional_check")
        # a SteadyLabel: a wrapped QLabel in the form got the height of fewer lines than
        # its text took at the dock's width, and was cut at the top and the bottom
        self.bidirectional_why = SteadyLabel(BIDIRECTIONAL_LM_SHORT, wrap=True)
        self.bidirectional_why.setObjectName("bidirectional_why")
        self.bidirectional_why.label().setFont(theme.font(0.85))
        self.bidirectional_check.toggled.connect(self._on_config_widget_changed)
        self.num_steps_spin = _spin(
            1,
            1024,
            "num_steps: time steps per training window, the BPTT length (resets training)",
            "num_steps_spin",
        )
        self.batch_spin = _spin(1, 8192, "Minibatch size (resets training)", "batch_spin")
        self.seed_spin = _spin(
            0,
            2**31 - 1,
            "Random seed of the initialisation and the data order (resets training)",
            "seed_spin",
        )
        self.corpus_combo = _combo(
            CORPUS_CHOICES,
            "The training text. Open file… (Ctrl+O) trains on a text file of yours. "
            "Changing it resets training.",
            "corpus_combo",
        )
        self.corpus_combo.addItem("Open file…", OPEN_FILE)
        self.preprocess_combo = _combo(
            PREPROCESS_CHOICES,
            "d2l keeps letters only, lower case, as the book does; keep trains on the raw "
            "text. Changing it resets training.",
            "preprocess_combo",
        )
        self.partition_combo = _combo(
            PARTITION_CHOICES,
            "How the text is cut into minibatches: random windows, or d2l's sequential "
            "partitioning that carries the hidden state across batches (resets training)",
            "partition_combo",
        )
        self.optimizer_combo = _combo(
            OPTIMIZER_CHOICES,
            "SGD as in d2l, or Adam. Changing it resets training.",
            "optimizer_combo",
        )
        for combo in (
            self.model_combo,
            self.activation_combo,
            self.preprocess_combo,
            self.partition_combo,
            self.optimizer_combo,
        ):
            combo.currentIndexChanged.connect(self._on_config_widget_changed)
        self.corpus_combo.currentIndexChanged.connect(self._on_corpus_changed)
        for spin in (
            self.hidden_spin,
            self.layers_spin,
            self.num_steps_spin,
            self.batch_spin,
            self.seed_spin,
        ):
            spin.valueChanged.connect(self._on_config_widget_changed)

        self.info_label = QLabel("")
        self.info_label.setObjectName("run_info_label")
        self.info_label.setWordWrap(True)

        # ------------------------------------------------------------ layout
        buttons = QHBoxLayout()
        for button in (self.play_button, self.step_button, self.reset_button):
            buttons.addWidget(button)

        live = QGroupBox("Live (next step)")
        live_form = QFormLayout(live)
        live_form.addRow("learning rate", self.lr_spin)
        live_form.addRow("clip θ", self.theta_spin)
        live_form.addRow("", self.clip_check)

        model = QGroupBox("Model (resets)")
        model_form = QFormLayout(model)
        model_form.addRow("model", self.model_combo)
        model_form.addRow("φ", self.activation_combo)
        model_form.addRow("hidden size", self.hidden_spin)
        model_form.addRow("layers", self.layers_spin)
        model_form.addRow("", self.bidirectional_check)
        model_form.addRow("", self.bidirectional_why)
        model_form.addRow("optimizer", self.optimizer_combo)

        data = QGroupBox("Data (resets)")
        data_form = QFormLayout(data)
        data_form.addRow("corpus", self.corpus_combo)
        data_form.addRow("preprocess", self.preprocess_combo)
        data_form.addRow("batches", self.partition_combo)
        data_form.addRow("num_steps", self.num_steps_spin)
        data_form.addRow("batch size", self.batch_spin)
        data_form.addRow("seed", self.seed_spin)

        inner = QWidget()
        self._inner = inner
        column = QVBoxLayout(inner)
        column.addLayout(buttons)
        column.addWidget(self.compare_button)
        column.addWidget(live)
        column.addWidget(model)
        column.addWidget(data)
        self._advanced = (model, data, self.info_label)  # hidden in lecture mode
        column.addWidget(self.info_label)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        self.set_config(self._config)
        # a window the window manager maximises after the first layout gave the left dock
        # area most of the new width (the controls took 600 px of a 1920-px screen)
        self.setMaximumWidth(round(MAX_WIDTH * theme.zoom()))

    def rezoom(self) -> None:
        """Room for the settings at the new text size (``gui.rescale``)."""
        self.setMaximumWidth(round(MAX_WIDTH * theme.zoom()))
        self.updateGeometry()

    def set_advanced_shown(self, shown: bool) -> None:
        """The model and data settings and the run's summary (hidden in lecture mode: the
        buttons and the live settings are what a lecturer touches)."""
        for widget in self._advanced:
            widget.setVisible(shown)

    def advanced_shown(self) -> bool:
        return not self._advanced[0].isHidden()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """As wide as the settings need beside a vertical scroll bar: a narrower dock cut the
        buttons and the labels ("C…", "▶ Pl") behind a horizontal scroll bar instead."""
        hint = super().minimumSizeHint()
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self)
        return QSize(max(hint.width(), self._inner.minimumSizeHint().width() + bar), hint.height())

    # ------------------------------------------------------------ state from outside

    def set_config(self, config: RunConfig) -> None:
        """Show ``config`` in the widgets without emitting anything (also: revert)."""
        self._config = config
        widgets = (
            self.lr_spin,
            self.theta_spin,
            self.clip_check,
            self.model_combo,
            self.activation_combo,
            self.hidden_spin,
            self.layers_spin,
            self.bidirectional_check,
            self.num_steps_spin,
            self.batch_spin,
            self.seed_spin,
            self.corpus_combo,
            self.preprocess_combo,
            self.partition_combo,
            self.optimizer_combo,
        )
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.lr_spin.setValue(config.train.lr)
            self.theta_spin.setValue(config.train.clip_theta)
            self.clip_check.setChecked(config.train.clip_enabled)
            _select(self.model_combo, config.model.kind)
            _select(self.activation_combo, config.model.activation)
            self.hidden_spin.setValue(config.model.hidden_size)
            self.layers_spin.setValue(config.model.num_layers)
            self.bidirectional_check.setChecked(config.model.bidirectional)
            self.num_steps_spin.setValue(config.train.num_steps)
            self.batch_spin.setValue(config.train.batch_size)
            self.seed_spin.setValue(config.train.seed)
            self._select_corpus(config.corpus.source)
            _select(self.preprocess_combo, config.corpus.preprocess)
            _select(self.partition_combo, config.train.partition)
            _select(self.optimizer_combo, config.train.optimizer)
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self._update_enabled()

    def config(self) -> RunConfig:
        """The RunConfig the widgets show (raises ConfigError for an invalid combination)."""
        kind = self.model_combo.currentData()
        activation = "tanh" if kind in ("gru", "lstm") else self.activation_combo.currentData()
        return self._config.replace(
            corpus={
                "source": self.corpus_combo.currentData(),
                "preprocess": self.preprocess_combo.currentData(),
            },
            model={
                "kind": kind,
                "activation": activation,
                "hidden_size": self.hidden_spin.value(),
                "num_layers": self.layers_spin.value() if kind in STACKABLE else 1,
                # a change here asks for a model to train: where the task trains no
                # bidirectional model (the greyed-out box), one direction; the fast RNN
                # has only one
                "bidirectional": self.bidirectional_check.isEnabled()
                and self.bidirectional_check.isChecked()
                and kind != "fast",
            },
            train={
                "lr": self.lr_spin.value(),
                "clip_theta": self.theta_spin.value(),
                "clip_enabled": self.clip_check.isChecked(),
                "num_steps": self.num_steps_spin.value(),
                "batch_size": self.batch_spin.value(),
                "seed": self.seed_spin.value(),
                "partition": self.partition_combo.currentData(),
                "optimizer": self.optimizer_combo.currentData(),
            },
        )

    def set_training(self, training: bool) -> None:
        """Follow the session's state: the Play button shows what a click would do."""
        self._training = training
        self.play_button.setText("Pause" if training else "Play")
        self.play_button.setIcon(_icon(self, "SP_MediaPause" if training else "SP_MediaPlay"))

    @property
    def training(self) -> bool:
        return self._training

    def set_read_only(self, read_only: bool) -> None:
        """An opened model (File ▸ Open PyTorch model): Play, Step and Compare would train it;
        Reset stays, and trains a new model of its shape."""
        for button in (self.play_button, self.step_button, self.compare_button):
            button.setEnabled(not read_only)
        self.reset_button.setToolTip(
            "Leave the opened model: train a new one of its shape on the corpus (Ctrl+R)"
            if read_only
            else self._reset_tip
        )

    def set_run_info(self, text: str) -> None:
        self.info_label.setText(text)

    # ------------------------------------------------------------ slots

    @Slot()
    def _on_play_clicked(self) -> None:
        self.play_toggled.emit(not self._training)

    @Slot()
    def _on_step_clicked(self) -> None:
        self.step_requested.emit()

    @Slot()
    def _on_reset_clicked(self) -> None:
        self.reset_requested.emit()

    @Slot()
    def _on_compare_clicked(self) -> None:
        self.compare_requested.emit()

    @Slot()
    def _on_hyper_widget_changed(self) -> None:
        lr, theta, on = self.lr_spin.value(), self.theta_spin.value(), self.clip_check.isChecked()
        self._config = self._config.replace(
            train={"lr": lr, "clip_theta": theta, "clip_enabled": on}
        )
        self.hyper_changed.emit(lr, theta, on)

    @Slot()
    def _on_corpus_changed(self) -> None:
        if self.corpus_combo.currentData() == OPEN_FILE:
            # back to the current corpus until the main window applies the chosen file
            self.corpus_combo.blockSignals(True)
            self._select_corpus(self._config.corpus.source)
            self.corpus_combo.blockSignals(False)
            self.corpus_file_requested.emit()
            return
        self._on_config_widget_changed()

    @Slot()
    def _on_config_widget_changed(self) -> None:
        self._update_enabled()
        try:
            config = self.config()
        except ConfigError as exc:
            self.invalid_setting.emit(str(exc))
            self.set_config(self._config)
            return
        if config != self._config:
            self.config_changed.emit(config)

    # ------------------------------------------------------------ helpers

    def _update_enabled(self) -> None:
        kind = self.model_combo.currentData()
        allowed = bidirectional_allowed(self._task) and kind != "fast"
        # checked and greyed out for an opened bidirectional model: it shows what is on screen
        self.bidirectional_check.setEnabled(allowed)
        self.bidirectional_check.setToolTip(
            "A second recurrence over the reversed text (d2l 10.4); the output layer reads "
            "both directions. Changing it resets training."
            if allowed
            else BIDIRECTIONAL_LM_REFUSAL
        )
        self.bidirectional_why.setVisible(not bidirectional_allowed(self._task))
        gated = kind in ("gru", "lstm")
        self.activation_combo.setEnabled(not gated)
        self.layers_spin.setEnabled(kind in STACKABLE)
        if kind not in STACKABLE:
            self.layers_spin.blockSignals(True)
            self.layers_spin.setValue(1)
            self.layers_spin.blockSignals(False)
        if gated:
            self.activation_combo.blockSignals(True)
            _select(self.activation_combo, "tanh")
            self.activation_combo.blockSignals(False)

    def _select_corpus(self, source: str) -> None:
        index = self.corpus_combo.findData(source)
        if index < 0:  # a file: one entry per file used, before "Open file…"
            index = self.corpus_combo.count() - 1
            self.corpus_combo.insertItem(index, Path(source).name, source)
            self.corpus_combo.setItemData(index, source, Qt.ItemDataRole.ToolTipRole)
        self.corpus_combo.setCurrentIndex(index)

"""The generation panel: text the model writes after a prefix, each character tinted by the
probability it was sampled with (Karpathy's samples at iteration 100, 300, 500 …, live).

The panel is given a model (``show_model``) and generates from it with
``core.generation.Generating``; it draws nothing else from the model. The window calls
``show_model`` with every model it shows (a new snapshot while training, a timeline step);
the same model object again does nothing, a new one regenerates:

- at most once a second while the model is live (``LIVE_INTERVAL_S``), and four times a
  second while it comes from the timeline, on a single-shot QTimer that takes the newest
  model when it fires; a lone change after a quiet second is generated at once;
- in the GUI thread, a few characters per event-loop turn (``WORK_BUDGET_S`` each), never
  on another thread: the probes read the same model objects in the GUI thread, and the fast
  RNN's forward is not safe from two threads at once. 100 characters at hidden 256 took
  4-6 ms (scratch), 7-9 ms (fast), 9-12 ms (GRU) and 22-25 ms (LSTM) in one go on a shared
  2-core machine; in slices no turn took more than ~4 ms, and the text's drawing, a turn of
  its own, 3 ms at 100 characters and 5 ms at 500 (MAX_LENGTH);
- only while the panel is visible: behind a tab it keeps the newest model and generates when
  shown (as the unrolled view does).

The sampling seed is fixed until "New sample": a refresh then shows the model's change, not
the dice's. Every method runs in the GUI thread.
"""

from __future__ import annotations

import html
import time
from bisect import bisect_right
from typing import TYPE_CHECKING, Literal

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QTimer
from PySide6.QtGui import QColor, QHelpEvent, QShowEvent, QTextOption
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QTextEdit,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from rnnviz.gui import theme, widgets
from rnnviz.gui.panels._char_strip import ColourLegend
from rnnviz.gui.panels._probe_common import quoted

if TYPE_CHECKING:
    from rnnviz.core.generation import Generating, Generation
    from rnnviz.core.model import CharModel
    from rnnviz.core.vocab import Vocab

Mode = Literal["greedy", "sample"]

FALLBACK_PREFIX = "the time "  # d2l's example, when no probe text gives one
DEFAULT_LENGTH = 100
MAX_LENGTH = 500  # drawn in one turn: its layout takes ~5 ms at this length
MAX_PREFIX_CHARS = 100  # its warm-up runs in one event-loop turn: keep that turn short
MAX_TOP_K = 100
# the temperature slider: 0.1 .. 2.0 in steps of 0.1 (an integer slider of tenths)
TEMPERATURE_TENTHS = (1, 20)
DEFAULT_TEMPERATURE = 1.0
LIVE_INTERVAL_S = 1.0  # while training: at most one regeneration a second
TIMELINE_INTERVAL_S = 0.25  # scrubbing the timeline: follow it, but not every pixel of a drag
WORK_BUDGET_S = 0.004  # of one event-loop turn, for generating
PROBABILITY_LEVELS = (0.0, 1.0)


def default_prefix(probe_text: str) -> str:
    """The first word or two of the probe text, and a space: "the time machine" gives
    "the time ", as d2l's running example. FALLBACK_PREFIX when the text has no word."""
    words = [w for w in probe_text.split(" ") if w][:2]
    if not words:
        return FALLBACK_PREFIX
    if len(words[0]) >= 8 or len(words) == 1:  # a long first word says enough alone
        return words[0][:MAX_PREFIX_CHARS] + " "
    return f"{words[0]} {words[1]} "[:MAX_PREFIX_CHARS]


def probability_colours(probs: np.ndarray) -> list[QColor]:
    """The tint of each generated character: its p on the probability colour map, 0 .. 1
    (the softmax panel's, so that a colour means one probability in every panel)."""
    return theme.map_colours(theme.SEQUENTIAL, probs, PROBABILITY_LEVELS)


def _shown(char: str) -> str:
    """One character (or ``<unk>``) as it appears in the flowing text, HTML-escaped. A space
    stays a space (a tinted gap, and a place to wrap); a newline is ⏎ and a line break."""
    if char == " ":
        return " "
    shown = html.escape(theme.display_char(char))
    return shown + "<br>" if char == "\n" else shown


def _length_in_document(char: str) -> int:
    """How many positions ``_shown(char)`` takes in the QTextDocument (UTF-16 units)."""
    if char == " ":
        return 1
    units = len(theme.display_char(char).encode("utf-16-le")) // 2
    return units + 1 if char == "\n" else units


class GenerationPanel(QWidget):
    """A prefix, greedy or sampling (temperature, top-k), a length, "New sample", and the
    generated text tinted by the probability of each character; see the module doc."""

    def __init__(self, parent: QWidget | None = None, *, prefix: str = FALLBACK_PREFIX) -> None:
        super().__init__(parent)
        self._model: CharModel | None = None
        self._vocab: Vocab | None = None
        self._step = 0
        self._live = True
        self._seed = 0
        self._run: Generating | None = None
        self._run_for: tuple[int, bool] = (0, True)  # the step and liveness being generated
        self._run_model: CharModel | None = None
        self._result_model: CharModel | None = None  # the model the text shown came from
        self._starting = False  # a generation is asked for; the next work turn builds it
        self._stale = False  # a model or a setting changed while hidden
        self._on_screen = True  # the window clears it while the dock is behind a tab
        self._last_start: float | None = None  # time.monotonic() of the last model-led start
        self._result: Generation | None = None
        self._result_from: tuple[int, bool] = (0, True)
        self._colours: list[QColor] = []
        self._starts: list[int] = []  # document position of each generated character
        self._prefix_length = 0  # document positions the prefix takes
        self._generations = 0
        self._message = ""

        self._prefix = QLineEdit(prefix[:MAX_PREFIX_CHARS])
        self._prefix.setMaxLength(MAX_PREFIX_CHARS)
        self._prefix.setFont(theme.font(1.2))
        self._prefix.setPlaceholderText("a prefix to start from")
        self._prefix.setToolTip("the text the model reads first (its warm-up), then continues")
        self._length = QSpinBox()
        self._length.setRange(1, MAX_LENGTH)
        self._length.setValue(DEFAULT_LENGTH)
        self._length.setSuffix(" chars")
        self._length.setFont(theme.font())
        self._length.setToolTip("how many characters to generate after the prefix")
        self._new_sample = QPushButton("New sample")
        self._new_sample.setFont(theme.font())
        self._mode = QComboBox()
        self._mode.setFont(theme.font())
        self._mode.addItem("greedy", "greedy")
        self._mode.addItem("sample", "sample")
        self._mode.setToolTip(
            "greedy: always the most likely next character (d2l's predict); "
            "sample: draw it from softmax(O / T)"
        )
        self._temperature = QSlider(Qt.Orientation.Horizontal)
        self._temperature.setRange(*TEMPERATURE_TENTHS)
        self._temperature.setValue(round(DEFAULT_TEMPERATURE * 10))
        self._temperature.setToolTip(
            "temperature T: below 1 sharper (closer to greedy), above 1 flatter (wilder)"
        )
        self._temperature_label = QLabel()
        self._temperature_label.setFont(theme.font(1.0, bold=True))
        self._temperature_label.setMinimumWidth(
            self._temperature_label.fontMetrics().horizontalAdvance("T = 2.0") + 4
        )
        self._top_k = QSpinBox()
        self._top_k.setRange(0, MAX_TOP_K)
        self._top_k.setPrefix("top-k ")
        self._top_k.setSpecialValueText("top-k off")
        self._top_k.setFont(theme.font())
        self._top_k.setToolTip("sample only from the k most likely characters (0 = off)")
        # step labels change about once a second while training: they must not re-lay out
        self._model_label = widgets.SteadyLabel(shrink=True)
        self._model_label.label().setFont(theme.font(1.0, bold=True))
        self._legend = ColourLegend()
        self._legend.set_scale(theme.SEQUENTIAL, "0", "1")
        self._legend.setFixedWidth(110)  # its own hint is 240 px: most of a dock's row
        self._legend_caption = QLabel()
        self._legend_caption.setFont(theme.font(0.9))
        self._view = QTextEdit()
        self._view.setReadOnly(True)
        self._view.setFont(theme.font(1.5, mono=True))  # a tint per character, evenly wide
        self._view.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self._view.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self._view.setPlaceholderText("the text the model writes appears here")
        self._view.viewport().installEventFilter(self)
        self._message_label = widgets.SteadyLabel(shrink=True)
        self._message_label.label().setFont(theme.font(1.0, bold=True))
        self._message_label.hide()

        row1 = QHBoxLayout()
        prefix_label = QLabel("prefix")
        prefix_label.setFont(theme.font())
        row1.addWidget(prefix_label)
        row1.addWidget(self._prefix, 1)
        row1.addWidget(self._length)
        row1.addWidget(self._new_sample)
        row2 = QHBoxLayout()
        row2.addWidget(self._mode)
        row2.addWidget(self._temperature, 1)
        row2.addWidget(self._temperature_label)
        row2.addWidget(self._top_k)
        row3 = QHBoxLayout()
        row3.addWidget(self._model_label, 1)
        row3.addWidget(self._legend)
        row3.addWidget(self._legend_caption)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addLayout(row3)
        layout.addWidget(self._view, 1)
        layout.addWidget(self._message_label)

        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.timeout.connect(self._on_throttle)
        self._work = QTimer(self)
        self._work.setInterval(0)  # one slice per event-loop turn
        self._work.timeout.connect(self._on_work)

        self._prefix.textChanged.connect(self._regenerate)
        self._length.valueChanged.connect(self._regenerate)
        self._mode.currentIndexChanged.connect(self._on_mode_changed)
        self._temperature.valueChanged.connect(self._on_temperature_changed)
        self._top_k.valueChanged.connect(self._regenerate)
        self._new_sample.clicked.connect(self.new_sample)
        self.recolour()
        self._on_temperature_changed()
        self._on_mode_changed()

    # -- public API: the window
    def show_model(self, model: CharModel, vocab: Vocab, step: int, live: bool) -> None:
        """Generate from ``model`` (the snapshot at ``step``; ``live``: the newest, not a
        timeline step). The same model object again does not regenerate."""
        if model is self._model and vocab == self._vocab:  # equal: a rebuilt Vocab is fine
            # the same numbers: no new text, though the timeline may name them anew
            self._step, self._live = int(step), bool(live)
            if self._result is not None and self._result_model is model:
                self._result_from = (self._step, self._live)
                self._update_model_label()
            return
        self._model, self._vocab = model, vocab
        self._step, self._live = int(step), bool(live)
        if not self.on_screen():
            self._stale = True
            return
        if self._throttle.isActive() or self._starting:
            return  # the start asked for takes the newest model when it comes
        interval = LIVE_INTERVAL_S if self._live else TIMELINE_INTERVAL_S
        since = None if self._last_start is None else time.monotonic() - self._last_start
        if since is None or since >= interval:
            self._start()
        else:
            self._throttle.start(max(1, round((interval - since) * 1000)))

    def clear_model(self) -> None:
        """No model to generate from (a new run before its first snapshot)."""
        self._throttle.stop()
        self._cancel()
        self._model = self._vocab = None
        self._stale = False
        self._show_result(None)
        self._set_message("")

    def set_prefix(self, text: str) -> None:
        """The prefix field's text (cut at MAX_PREFIX_CHARS); regenerates."""
        self._prefix.setText(text[:MAX_PREFIX_CHARS])

    def prefix(self) -> str:
        return self._prefix.text()

    def set_mode(self, mode: Mode) -> None:
        """Greedy (the most likely character, d2l's ``predict``) or sampling."""
        index = self._mode.findData(mode)
        if index < 0:
            raise ValueError(f"mode must be 'greedy' or 'sample', not {mode!r}")
        self._mode.setCurrentIndex(index)

    def mode(self) -> Mode:
        return "sample" if self._mode.currentData() == "sample" else "greedy"

    def set_temperature(self, temperature: float) -> None:
        """The sampling temperature, to the slider's 0.1 steps within 0.1 .. 2.0."""
        self._temperature.setValue(round(temperature * 10))

    def temperature(self) -> float:
        """The temperature sampled with (0 in greedy mode)."""
        return self._temperature.value() / 10 if self.mode() == "sample" else 0.0

    def set_top_k(self, k: int) -> None:
        self._top_k.setValue(k)

    def set_length(self, n: int) -> None:
        self._length.setValue(n)

    def new_sample(self) -> None:
        """Another draw of the dice: the next seed, regenerated at once."""
        self._seed += 1
        self._regenerate()

    def seed(self) -> int:
        return self._seed

    # -- public API: tests, the screenshot
    def generation(self) -> Generation | None:
        """The generation shown (None: none yet, or the input was refused)."""
        return self._result

    def text(self) -> str:
        """The text shown: the prefix and what the model wrote after it ("" with none)."""
        return "" if self._result is None else self._result.text

    def generated_text(self) -> str:
        return "" if self._result is None else self._result.generated

    def char_colours(self) -> list[QColor]:
        """The tint of each generated character."""
        return list(self._colours)

    def message(self) -> str:
        """The one-line message under the text ("" when there is none)."""
        return self._message

    def model_text(self) -> str:
        """Which model the text came from: ``model at step 400 (live)``."""
        return self._model_label.text()

    def generation_count(self) -> int:
        """How many generations have been shown since the panel was built."""
        return self._generations

    def is_generating(self) -> bool:
        """Whether a generation is asked for or under way (throttled ones included)."""
        return self._starting or self._run is not None or self._throttle.isActive()

    def tooltip_at(self, index: int) -> str:
        """The tooltip of generated character ``index``."""
        r = self._result
        if r is None or not 0 <= index < len(r.tokens):
            return ""
        lines = [f"generated character {index + 1}: {quoted(r.tokens[index])}"]
        p, own = float(r.probs[index]), float(r.model_probs[index])
        if r.temperature == 0.0:
            lines.append(f"p = {p:.3f}, the most likely (greedy)")
        else:
            lines.append(f"sampled with p = {p:.3f}")
            lines.append(f"the model's own p = {own:.3f} (before T and top-k)")
        return "\n".join(lines)

    def text_view(self) -> QTextEdit:
        return self._view

    def prefix_edit(self) -> QLineEdit:
        return self._prefix

    def mode_combo(self) -> QComboBox:
        return self._mode

    def temperature_slider(self) -> QSlider:
        return self._temperature

    def top_k_spin(self) -> QSpinBox:
        return self._top_k

    def length_spin(self) -> QSpinBox:
        return self._length

    def new_sample_button(self) -> QPushButton:
        return self._new_sample

    # -- live scheme switch (gui.recolour) and zoom (gui.rescale: the fonts set here)
    def recolour(self) -> None:
        """The colours of the scheme in use, and the text drawn again in them."""
        scheme = theme.colours()
        self._view.setStyleSheet(
            f"QTextEdit {{ background: {scheme.plot_background}; color: {scheme.ink}; }}"
        )
        warning = theme.on_background(theme.UNKNOWN)
        self._message_label.label().setStyleSheet(f"color: {warning};")
        self._render()

    # -- internals: when to generate
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._stale and self._on_screen:
            self._stale = False
            self._start()

    def on_screen(self) -> bool:
        """Shown and not behind another dock's tab (the window says which: ``set_on_screen``)."""
        return self.isVisible() and self._on_screen

    def set_on_screen(self, shown: bool) -> None:
        """The window's word on the dock: a tabbed-away dock's panel still counts as visible
        to Qt, and generating there cost the window its time for nothing."""
        self._on_screen = bool(shown)
        if shown and self._stale and self.isVisible():
            self._stale = False
            self._start()

    def _regenerate(self) -> None:
        """A setting changed: generate again now (no throttle, the user is waiting)."""
        if self.on_screen():
            self._start()
        else:
            self._stale = True

    def _on_throttle(self) -> None:
        if self.on_screen():
            self._start()
        else:
            self._stale = True

    def _start(self) -> None:
        """Generate from the newest model and settings, from the next event-loop turn on."""
        self._throttle.stop()
        self._cancel()
        self._starting = True
        self._work.start()

    def _cancel(self) -> None:
        self._run = None
        self._starting = False
        self._work.stop()

    def _on_work(self) -> None:
        deadline = time.perf_counter() + WORK_BUDGET_S
        run = self._run
        try:
            if self._starting:
                self._starting = False
                run = self._run = self._new_run()  # its warm-up reads the prefix, this turn
            if run is None:
                self._work.stop()
                return
            if not run.done:
                while not run.advance(1):
                    if time.perf_counter() >= deadline:
                        return  # the next turn goes on
                # drawing it is the next turn's work: 500 characters take ~5 ms to lay out
                return
        except ValueError as exc:  # the core's reason (a diverged model, a bad argument)
            self._cancel()
            self._refuse(str(exc))
            return
        self._work.stop()
        self._run = None
        self._result_from, self._result_model = self._run_for, self._run_model
        self._generations += 1
        self._set_message("")
        self._show_result(run.result())

    def _new_run(self) -> Generating | None:
        """The generation the settings ask for, or None with a message (bad input)."""
        if self._model is None or self._vocab is None:
            self._show_result(None)
            return None
        prefix = self._prefix.text()
        if not prefix:
            self._refuse("type a prefix: the model needs a character to start from")
            return None
        # torch loads after the window shows (the window module must not import it)
        from rnnviz.core.generation import Generating, unknown_prefix_message

        unknown = unknown_prefix_message(self._vocab, prefix)
        if unknown is not None:
            self._refuse(unknown)
            return None
        self._run_for, self._run_model = (self._step, self._live), self._model
        self._last_start = time.monotonic()  # what the throttle spaces out: work on a model
        return Generating(
            self._model,
            self._vocab,
            prefix,
            self._length.value(),
            temperature=self.temperature(),
            top_k=self._top_k.value() if self.mode() == "sample" else 0,
            seed=self._seed,
        )

    def _refuse(self, why: str) -> None:
        self._show_result(None)
        self._set_message(why)

    def _set_message(self, text: str) -> None:
        self._message = text
        self._message_label.setText(text)
        self._message_label.setToolTip(text)  # cut at the panel's width: all of it here
        self._message_label.setVisible(bool(text))

    # -- internals: drawing
    def _show_result(self, result: Generation | None) -> None:
        self._result = result
        if result is None:
            self._result_model = None
        self._colours = [] if result is None else probability_colours(result.probs)
        self._update_model_label()
        self._render()

    def _update_model_label(self) -> None:
        r = self._result
        if r is None and self._model is None:
            self._model_label.setText("")
            self._model_label.setToolTip("")
            return
        step, live = self._result_from if r is not None else (self._step, self._live)
        # short: it shares its row with the colour key, and a dock is often 500 px wide
        self._model_label.setText(f"step {step:,}" + (" (live)" if live else ""))
        how = (
            "no text: see the message below"
            if r is None
            else "greedy"
            if r.temperature == 0
            else f"sampled at T = {r.temperature:g}"
            + (f", top-k {r.top_k}" if r.top_k else "")
            + f", seed {r.seed}"
        )
        where = "the newest model, refreshed as it trains" if live else "a step of the timeline"
        self._model_label.setToolTip(f"generated by the model at step {step:,}, {where}; {how}")

    def _render(self) -> None:
        r = self._result
        self._starts = []
        if r is None:
            self._view.clear()  # the placeholder shows
            return
        scheme = theme.colours()
        # pre-wrap: spaces are characters with a tint of their own, not HTML's collapsed gaps
        parts = ['<div style="white-space: pre-wrap; line-height: 135%;">']
        # the prefix is what the model was given, not what it wrote: plain and dimmer
        parts.append(f'<span style="color: {scheme.secondary_ink};">')
        parts += [_shown(c) for c in r.prefix]
        parts.append("</span>")
        position = sum(_length_in_document(c) for c in r.prefix)
        self._prefix_length = position
        for token, colour in zip(r.tokens, self._colours, strict=True):
            self._starts.append(position)
            position += _length_in_document(token)
            ink = theme.text_colour_on(colour).name()
            parts.append(
                f'<span style="background-color: {colour.name()}; color: {ink};">'
                f"{_shown(token)}</span>"
            )
        parts.append("</div>")
        self._view.setHtml("".join(parts))

    def _on_mode_changed(self) -> None:
        sampling = self.mode() == "sample"
        for widget in (self._temperature, self._temperature_label, self._top_k, self._new_sample):
            widget.setEnabled(sampling)
        self._new_sample.setToolTip(
            "draw again with another seed (the seed stays fixed until then, so a refresh "
            "shows the model's change, not the dice)"
            if sampling
            else "greedy has no dice: switch to sample"
        )
        self._legend_caption.setText(
            "p of each sampled character" if sampling else "p of each character"
        )
        self._regenerate()

    def _on_temperature_changed(self) -> None:
        self._temperature_label.setText(f"T = {self._temperature.value() / 10:.1f}")
        if self.mode() == "sample":
            self._regenerate()

    def _index_at(self, x: int, y: int) -> int | None:
        """The generated character under a point of the view's viewport, None elsewhere."""
        if self._result is None or not self._starts:
            return None
        cursor = self._view.cursorForPosition(QPoint(x, y))
        position = cursor.position()
        if x < self._view.cursorRect(cursor).x():
            position -= 1  # the cursor sits after the character the point is on
        if position < self._prefix_length:
            return None
        index = bisect_right(self._starts, position) - 1
        return index if 0 <= index < len(self._starts) else None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if (
            watched is self._view.viewport()
            and event.type() == QEvent.Type.ToolTip
            and isinstance(event, QHelpEvent)
        ):
            index = self._index_at(event.pos().x(), event.pos().y())
            if index is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), self.tooltip_at(index), self._view)
            return True
        return False

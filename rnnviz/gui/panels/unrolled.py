"""The unrolled-network panel: the book's picture of the RNN reading the probe string, drawn
from the probe of the model on screen, with play through time and the MLP beside it.

The panel draws a ``core.probe.ProbeResult``; it computes nothing from the model (the MLP's
numbers are the probe's ``no_recurrence``). Every method runs in the GUI thread;
``set_cursor`` / ``set_unit`` never emit. Playing through time is the panel's own animation:
it lights the parts of the cursor step in order and asks for the next step with
``cursor_requested``, so every panel follows it as it follows a click.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QTimer, Signal, Slot
from PySide6.QtGui import QFontMetrics, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from rnnviz.core.health import perplexity
from rnnviz.gui import theme
from rnnviz.gui.panels._probe_common import PLACEHOLDER, clamp, quoted, readout_label
from rnnviz.gui.panels._unrolled_canvas import Phase, UnrolledCanvas, phases_for

if TYPE_CHECKING:
    from rnnviz.core.probe import ProbeResult

# milliseconds a part of a step stays lit, by the speed chosen
SPEEDS: tuple[tuple[str, int], ...] = (("slow", 900), ("medium", 450), ("fast", 150))
DEFAULT_SPEED = "medium"


class UnrolledPanel(QWidget):
    """X_t → H_t → O_t for every character of the probe string, H_{t−1} → H_t between them.

    A click on a column asks to move the time cursor there (``cursor_requested``); hovering a
    node shows its numbers. *Play through time* walks the cursor from the first step (or the
    cursor's) to the last, lighting the computation of each step in order. *Compare to the
    MLP* adds the row of the same weights with the recurrence cut.
    """

    cursor_requested = Signal(int)
    playing_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._result: ProbeResult | None = None
        self._cursor = 0
        self._phase_index: int | None = None  # while playing: the part of the step lit
        self._stale = False  # a result or cursor came while hidden: shown at the next show
        self._canvas = UnrolledCanvas()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._advance)

        self._play = QPushButton("Play through time")
        self._play.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self._play.setCheckable(True)
        self._play.setToolTip(
            "Walk the time cursor step by step, lighting each step's computation in order (P)"
        )
        self._speed = QComboBox()
        for name, _ in SPEEDS:
            self._speed.addItem(name)
        self._speed.setCurrentText(DEFAULT_SPEED)
        self._speed.setToolTip(
            "the speed of play through time: how long each part of a step stays lit"
        )
        self._mlp = QCheckBox("MLP row (Hₜ₋₁ = 0)")
        self._mlp.setToolTip(
            "Compare with the MLP: a row of the same weights with the recurrence cut,"
            " Hₜ = φ(Xₜ W_xh + b_h), so each prediction sees its character alone."
            " Red: the hidden state helped there."
        )
        for widget in (self._play, self._speed, self._mlp):
            widget.setFont(theme.font())
        self._readout = readout_label()
        self._caption = QLabel()
        self._caption.setFont(theme.font(1.3, bold=True))
        self._caption.setStyleSheet(f"color: {theme.HIGHLIGHT};")
        # two lines at most, in the width the panel has: a long phase name in one line made
        # the panel (and a 1280 px window) 1,460 px wide
        self._caption.setWordWrap(True)
        self._caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._caption.setFixedHeight(2 * QFontMetrics(self._caption.font()).lineSpacing() + 4)

        self._scroll = QScrollArea()
        self._scroll.setWidget(self._canvas)
        self._scroll.setWidgetResizable(False)
        self._scroll.viewport().installEventFilter(self)
        self._stack = QStackedWidget()
        placeholder = QLabel(PLACEHOLDER)
        placeholder.setFont(theme.font(1.3))
        placeholder.setStyleSheet(f"color: {theme.colours().placeholder_ink};")
        placeholder.setWordWrap(True)
        self._stack.addWidget(placeholder)
        self._stack.addWidget(self._scroll)

        bar = QHBoxLayout()
        bar.addWidget(self._play)
        bar.addWidget(self._speed)
        bar.addWidget(self._mlp)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self._readout)
        layout.addWidget(self._caption)
        layout.addWidget(self._stack, 1)

        self._play.toggled.connect(self._on_play_toggled)
        self._speed.currentTextChanged.connect(self._on_speed_changed)
        self._mlp.toggled.connect(self._on_mlp_toggled)
        self._canvas.step_clicked.connect(self._on_step_clicked)
        self._update_texts()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self._scroll.viewport() and event.type() == QEvent.Type.Resize:
            # less a scroll bar's width each way: fitted to the whole viewport, the picture
            # was a pixel too tall once a scroll bar showed, and then both showed
            size = self._scroll.viewport().size()
            bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
            self._canvas.set_view_size(size.width() - bar, size.height() - bar)
        return super().eventFilter(watched, event)

    # -- read (tests, the window)
    def canvas(self) -> UnrolledCanvas:
        return self._canvas

    def is_playing(self) -> bool:
        return self._phase_index is not None

    def phase(self) -> Phase | None:
        if self._phase_index is None or self._result is None:
            return None
        return phases_for(self._result.kind)[self._phase_index]

    def readout_text(self) -> str:
        return self._readout.text()

    def caption_text(self) -> str:
        return self._caption.text()

    def mlp_check(self) -> QCheckBox:
        return self._mlp

    def play_button(self) -> QPushButton:
        return self._play

    def set_speed(self, name: str) -> None:
        self._speed.setCurrentText(name)

    # -- set from outside (silent)
    def set_result(self, result: ProbeResult | None) -> None:
        self._result = result
        if result is None:
            self.stop()
        else:
            self._cursor = clamp(self._cursor, len(result.text))
        self._refresh()

    def set_cursor(self, t: int) -> None:
        n = 0 if self._result is None else len(self._result.text)
        self._cursor = clamp(t, n)
        self._refresh()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._stale:
            self._refresh()

    def _refresh(self) -> None:
        """Show the result and the cursor; behind a tab, only once the panel shows (each
        probe's re-layout of a hidden panel cost ~2 ms of every keystroke, paired bench)."""
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        result = self._result
        self._canvas.set_result(result)
        self._canvas.set_cursor(self._cursor)
        self._stack.setCurrentIndex(0 if result is None else 1)
        if result is not None:
            column = self._canvas.column_rect(self._cursor)
            self._scroll.ensureVisible(column.center().x(), 0, column.width(), 0)
        self._update_texts()

    def set_unit(self, unit: int) -> None:
        self._canvas.set_unit(unit)

    # -- play through time
    @Slot()
    def toggle_playing(self) -> None:
        """The P key and the button."""
        self._play.toggle()

    def stop(self) -> None:
        if self._play.isChecked():
            self._play.setChecked(False)  # -> _on_play_toggled(False)

    @Slot(bool)
    def _on_play_toggled(self, on: bool) -> None:
        if on and self._result is not None:
            if self._cursor >= len(self._result.text) - 1:
                self.cursor_requested.emit(0)  # at the end: from the start again
            self._phase_index = 0
            self._timer.start(self._interval_ms())
        else:
            self._phase_index = None
            self._timer.stop()
            if on:  # nothing to play
                self._play.blockSignals(True)
                self._play.setChecked(False)
                self._play.blockSignals(False)
        self._play.setText("Pause" if self.is_playing() else "Play through time")
        icon = (
            QStyle.StandardPixmap.SP_MediaPause
            if self.is_playing()
            else (QStyle.StandardPixmap.SP_MediaPlay)
        )
        self._play.setIcon(self.style().standardIcon(icon))
        self._canvas.set_phase(self.phase())
        self._update_texts()
        self.playing_changed.emit(self.is_playing())

    @Slot()
    def _advance(self) -> None:
        """One part of the step further; after the loss, the next step (the last: stop)."""
        if self._phase_index is None or self._result is None:
            return
        phases = phases_for(self._result.kind)
        if self._phase_index + 1 < len(phases):
            self._phase_index += 1
        elif self._cursor + 1 < len(self._result.text):
            self._phase_index = 0
            self.cursor_requested.emit(self._cursor + 1)
        else:
            self.stop()
            return
        self._canvas.set_phase(self.phase())
        self._update_texts()

    def _interval_ms(self) -> int:
        return dict(SPEEDS)[self._speed.currentText()]

    @Slot(str)
    def _on_speed_changed(self, _name: str) -> None:
        if self._timer.isActive():
            self._timer.setInterval(self._interval_ms())

    # -- the rest
    @Slot(bool)
    def _on_mlp_toggled(self, on: bool) -> None:
        self._canvas.set_mlp_shown(on)
        self._update_texts()

    @Slot(int)
    def _on_step_clicked(self, t: int) -> None:
        self.cursor_requested.emit(t)

    def _update_texts(self) -> None:
        r = self._result
        phase = self.phase()
        self._caption.setVisible(phase is not None)
        if r is None:
            self._readout.setText("")
            self._caption.setText("")
            return
        t = self._cursor
        head = f"t = {t}: reads {quoted(r.text[t])}"
        if t + 1 < len(r.text):
            head += f", target {quoted(r.text[t + 1])}, loss {_nats(float(r.step_loss[t]))}"
            if self._mlp.isChecked():
                head += f" (MLP {_nats(float(r.no_recurrence.step_loss[t]))})"
        if self._mlp.isChecked() and len(r.text) > 1:
            rnn, mlp = r.mean_loss, r.no_recurrence.mean_loss
            head += (
                f"  ·  mean loss RNN {_nats(rnn)}, perplexity {_ppl(rnn)}; "
                f"MLP {_nats(mlp)}, perplexity {_ppl(mlp)}"
            )
        self._readout.setText(head)
        if phase is None:
            self._caption.setText("")
        else:
            name = phase.name
            if t == 0 and "Hₜ₋₁" in name:
                name += "  (H₋₁ = 0: the probe starts from a zero state)"
            self._caption.setText(f"step {t}: {name}")


def _nats(loss: float) -> str:
    return theme.fixed_or_plain(loss, 2) if math.isfinite(loss) else "∞"


def _ppl(loss: float) -> str:
    return theme.fixed_or_plain(perplexity(loss), 1)

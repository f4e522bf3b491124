"""The probe text panel: the typed string, and the probed string as coloured characters.

The panel draws a ``core.probe.ProbeResult``; it computes nothing from the model, it slices
the result's arrays and maps them to colours. Every method runs in the GUI thread.
``set_cursor`` / ``set_unit`` never emit: the signals report what the user did, so wiring
panels to each other cannot loop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from rnnviz.core.probe_defaults import LANGUAGE_PROBE
from rnnviz.gui import theme
from rnnviz.gui.panels._char_strip import CharStrip, ColourLegend, StripScroll
from rnnviz.gui.panels._probe_common import clamp, quoted

if TYPE_CHECKING:
    from rnnviz.core.probe import ProbeResult

ColourMode = Literal["unit", "surprisal"]
DEFAULT_PROBE_TEXT = LANGUAGE_PROBE  # a corpus of its own brings its own (the window sets it)
MAX_VOCAB_LISTED = 40  # a larger vocabulary is natural text: listing it tells nothing
# the longest text the box takes (a longer paste is cut here): the panels draw each character,
# and at this length the window's longest pause while they update stays under 100 ms
MAX_PROBE_CHARS = 500


def _same_leading_rows(old: tuple[np.ndarray, ...], new: tuple[np.ndarray, ...]) -> int:
    """How many leading rows are equal (NaN equal to NaN) in every pair of arrays."""
    n = min(min(len(a) for a in old), min(len(b) for b in new))
    same = np.ones(n, dtype=bool)
    for a, b in zip(old, new, strict=True):
        equal = a[:n] == b[:n]
        if a.dtype.kind == "f":  # a NaN (a diverged model) equals a NaN here
            equal |= np.isnan(a[:n]) & np.isnan(b[:n])
        same &= equal.reshape(n, -1).all(axis=1)
    return n if same.all() else int(np.argmin(same))


def _plain_line(char: str, p: float) -> str:
    return f"{char} {theme.fixed_or_plain(p)}"


def _tooltip(r: ProbeResult, t: int) -> str:
    """The tooltip of character t of a probe: its surprise and the probability of the next."""
    text, T = r.text, len(r.text)
    lines = [f"t = {t}  {quoted(text[t])}"]
    if t in r.unknown:
        lines.append("not in the vocabulary: maps to <unk>")
    if t > 0:
        bits = theme.fixed_or_plain(float(r.surprisal_bits[t - 1]))
        lines.append(f"surprise on seeing it: {bits} bits")
    if t + 1 < T:
        p_next = r.probs[t, r.tokens[t + 1]]
        lines.append(f"P(next = {quoted(text[t + 1])}) = {p_next:.3f}")
    else:
        lines.append("last character: next one unknown")
    return "\n".join(lines)


class ProbeTextPanel(QWidget):
    """The typed string, and the probed string as coloured characters (Karpathy's view).

    Colour mode ``unit``: each character is coloured by the selected hidden unit's
    activation H_t[unit] after reading it (fixed levels, blue negative, red positive).
    Colour mode ``surprisal``: each character is coloured by how surprised the model was to
    see it, -log2 p(char | the characters before it), white 0 bits to red 8 bits; the first
    character has nothing before it and stays grey. Under each character: the k most likely
    next characters, the true next one in bold orange.
    """

    # object, not str: a str signal argument passes through QString::fromUtf16, which drops a
    # leading U+FEFF, so the text probed would differ from the text in the box
    text_edited = Signal(object)
    cursor_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._result: ProbeResult | None = None
        self._topk_lines: list[list[str]] = []  # the strip's top-k lines, made from _topk_of
        self._topk_of: ProbeResult | None = None
        # the strip's colours, made from these values, levels and colour map
        self._colours_of: tuple[np.ndarray, tuple[float, float], pg.ColorMap] | None = None
        self._colours: list[QColor] = []
        self._mode: ColourMode = "unit"
        self._unit = 0
        self._cursor = 0
        self._alphabet_hint = ""

        self._edit = QLineEdit(DEFAULT_PROBE_TEXT)
        self._edit.setPlaceholderText("type a string to probe the model with")
        self._edit.setMaxLength(MAX_PROBE_CHARS)
        self._edit.setFont(theme.font(1.4))
        self._edit.setClearButtonEnabled(True)
        self._mode_combo = QComboBox()
        self._mode_combo.setFont(theme.font())
        self._mode_combo.addItem("colour: hidden unit", "unit")
        self._mode_combo.addItem("colour: surprisal (bits)", "surprisal")
        self._unit_label = QLabel()
        self._unit_label.setFont(theme.font(1.1, bold=True))
        self._topk_check = QCheckBox("top-k")
        self._topk_check.setFont(theme.font())
        self._topk_check.setChecked(True)
        self._topk_check.setToolTip("show the most likely next characters under each character")
        self._legend = ColourLegend()
        self._legend_caption = QLabel()
        self._legend_caption.setFont(theme.font(0.9))
        self._strip = CharStrip()
        self._scroll = StripScroll(self._strip)
        self._unknown_label = QLabel()
        self._unknown_label.setFont(theme.font(1.0, bold=True))
        # on_background: the generation panel hands out the same shade, and a live switch maps
        # the raw colour to it (one colour, one twin)
        self._unknown_label.setStyleSheet(f"color: {theme.on_background(theme.UNKNOWN)};")
        self._unknown_label.setWordWrap(True)
        self._unknown_label.hide()

        controls = QHBoxLayout()
        controls.addWidget(self._edit, 1)
        controls.addWidget(self._mode_combo)
        controls.addWidget(self._unit_label)
        controls.addWidget(self._topk_check)
        legend_row = QHBoxLayout()
        legend_row.addWidget(self._legend)
        legend_row.addWidget(self._legend_caption, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addLayout(legend_row)
        layout.addWidget(self._scroll, 1)
        layout.addWidget(self._unknown_label)

        self._edit.textChanged.connect(self._on_edit_text_changed)
        self._mode_combo.currentIndexChanged.connect(self._on_mode_combo_changed)
        self._topk_check.toggled.connect(self._on_topk_toggled)
        self._strip.clicked.connect(self._on_strip_clicked)
        self._update_unit_label()
        self._recolour()

    def set_compact(self, compact: bool) -> None:
        """The text box alone (lecture mode, above the view that shows the steps: the strip
        would say again what that view says, in the height the view needs)."""
        for widget in (self._mode_combo, self._unit_label, self._topk_check, self._legend):
            widget.setVisible(not compact)
        self._legend_caption.setVisible(not compact)
        self._scroll.setVisible(not compact)

    def is_compact(self) -> bool:
        return self._scroll.isHidden()

    # -- public API
    def text(self) -> str:
        """The typed string (what the main window probes)."""
        return self._edit.text()

    def line_edit(self) -> QLineEdit:
        return self._edit

    def colour_mode(self) -> ColourMode:
        return self._mode

    def unit(self) -> int:
        return self._unit

    def set_result(self, result: ProbeResult | None) -> None:
        self._result = result
        if result is None:
            self._strip.set_content([], [], [], None, frozenset())
            self._unknown_label.hide()
            self._recolour()
            return
        text, vocab = result.text, result.vocab_tokens
        T = len(text)
        self._cursor = clamp(self._cursor, T)
        chars = [theme.display_char(c) for c in text]
        shown_vocab = [theme.display_char(tok) for tok in vocab]
        # after a keystroke the rows before the edit are the same numbers: keep their lines
        keep = self._same_topk_rows(result)
        topk_ids = result.topk_ids[keep:].tolist()
        topk_probs = result.topk_probs[keep:].tolist()
        # probabilities are in [0, 1]: fixed_or_plain's two decimals by a C call, not its Python
        # one per line (500 lines at 100 characters, a tenth of a scrub's set_result)
        line: Callable[[str, float], str] = "{} {:.2f}".format
        if not np.isfinite(result.topk_probs[keep:]).all():
            line = _plain_line
        topk = self._topk_lines[:keep] + [
            [line(shown_vocab[v], p) for v, p in zip(ids, probs, strict=True)]
            for ids, probs in zip(topk_ids, topk_probs, strict=True)
        ]
        self._topk_lines, self._topk_of = topk, result
        topk_ids = result.topk_ids.tolist()
        tokens = result.tokens.tolist()
        true_next = tokens[1:] + [-1]
        topk_true = [
            ids.index(nxt) if nxt in ids else -1
            for ids, nxt in zip(topk_ids, true_next, strict=True)
        ]
        unknown = frozenset(result.unknown)
        self._strip.set_content(chars, topk, topk_true, partial(_tooltip, result), unknown)
        self._update_unknown_label(result)
        self._recolour()
        self.set_cursor(self._cursor)  # an edit may have moved the cursor's cell

    def set_cursor(self, t: int) -> None:
        length = 0 if self._result is None else len(self._result.text)
        self._cursor = clamp(int(t), length)
        self._strip.set_cursor(self._cursor)
        if length:
            self._scroll.show_cell(self._cursor)

    def cursor_cell_in_view(self) -> bool:
        """Whether the cursor's whole cell (its character and top-k lines) is on screen."""
        if self._result is None:
            return False
        cell = self._strip.cell_rect(self._cursor)
        top_left = self._strip.mapTo(self._scroll.viewport(), cell.topLeft())
        shown = cell.translated(top_left - cell.topLeft())
        return self._scroll.viewport().rect().contains(shown)

    def set_unit(self, unit: int) -> None:
        self._unit = max(0, int(unit))
        self._update_unit_label()
        if self._mode == "unit":
            self._recolour()

    def set_alphabet_hint(self, hint: str) -> None:
        """A sentence naming the corpus's alphabet (``core.probe_defaults.alphabet_hint``),
        shown under a probe with characters outside the vocabulary. Without one ("") a small
        vocabulary is listed there instead: on a synthetic task, a typed English word is
        mostly ``<unk>``, and the reader needs to know what the model does read."""
        self._alphabet_hint = hint
        if self._result is not None:
            self._update_unknown_label(self._result)

    def set_colour_mode(self, mode: ColourMode) -> None:
        if mode not in ("unit", "surprisal"):
            raise ValueError(f"colour mode must be 'unit' or 'surprisal', not {mode!r}")
        self._mode = mode
        self._mode_combo.blockSignals(True)
        self._mode_combo.setCurrentIndex(self._mode_combo.findData(mode))
        self._mode_combo.blockSignals(False)
        self._update_unit_label()
        self._recolour()

    # -- for tests and the screenshot
    def cell_colours(self) -> list[QColor]:
        return self._strip.colours()

    def topk_text(self, t: int) -> str:
        """The top-k lines under character t, one per line: ``"e 0.41\\na 0.20..."``."""
        return "\n".join(self._strip.topk_lines(t))

    def unknown_text(self) -> str:
        return self._unknown_label.text() if not self._unknown_label.isHidden() else ""

    def strip(self) -> QWidget:
        return self._strip

    def tooltip_text(self, t: int) -> str:
        """The tooltip of character t ("" with no result)."""
        return self._strip.tooltip_text(t)

    def legend_text(self) -> tuple[str, str]:
        """The colour legend's two ends, as written: ``("−1", "+1")``."""
        return self._legend.ends()

    def unit_label_text(self) -> str:
        return self._unit_label.text()

    def mode_combo(self) -> QComboBox:
        """The colour-mode box the user picks from (it follows ``set_colour_mode``)."""
        return self._mode_combo

    def time_step(self) -> int:
        """The character the strip marks (the time cursor, clamped to the text)."""
        return self._cursor

    # -- internals
    def _same_topk_rows(self, result: ProbeResult) -> int:
        """How many leading rows of top-k ids and probabilities ``result`` shares with the
        result the current top-k lines were made from."""
        old = self._topk_of
        if old is None or old.vocab_tokens != result.vocab_tokens:
            return 0
        return _same_leading_rows(
            (old.topk_ids, old.topk_probs), (result.topk_ids, result.topk_probs)
        )

    def _shown_unit(self) -> int:
        if self._result is None:
            return self._unit
        return min(self._unit, int(self._result.hidden.shape[1]) - 1)

    @staticmethod
    def _levels(r: ProbeResult) -> tuple[float, float]:
        return float(r.hidden_levels[0]), float(r.hidden_levels[1])

    def _colour_values(self) -> tuple[np.ndarray, tuple[float, float], pg.ColorMap]:
        assert self._result is not None
        r = self._result
        if self._mode == "unit":
            levels = self._levels(r)
            return r.hidden[:, self._shown_unit()], levels, theme.activation_colormap(levels)
        # character j is coloured by the surprise of seeing it: row j-1 predicted it
        seen = np.concatenate(([np.nan], np.asarray(r.surprisal_bits, dtype=np.float64)[:-1]))
        return seen, (0.0, theme.SURPRISAL_MAX_BITS), theme.SURPRISAL

    def _recolour(self) -> None:
        if self._mode == "unit":
            levels = (-1.0, 1.0) if self._result is None else self._levels(self._result)
            cmap = theme.activation_colormap(levels)
            self._legend.set_scale(
                cmap, theme.plain_number(levels[0]), theme.plain_number(levels[1], sign=True)
            )
            self._legend_caption.setText(
                f"H_t[{self._shown_unit()}] after reading each character"
                + (f" ({self._result.activation})" if self._result is not None else "")
            )
        else:
            self._legend.set_scale(theme.SURPRISAL, "0", f"{theme.SURPRISAL_MAX_BITS:g} bits")
            self._legend_caption.setText(
                "surprisal of each character given those before it, −log₂ p"
            )
        if self._result is None:
            self._colours_of, self._colours = None, []
            self._strip.set_colours([])
            return
        values, levels, cmap = self._colour_values()
        keep = 0
        if self._colours_of is not None:
            old_values, old_levels, old_cmap = self._colours_of
            if (old_levels, old_cmap) == (levels, cmap):
                keep = _same_leading_rows((old_values,), (values,))
        self._colours = self._colours[:keep] + theme.map_colours(cmap, values[keep:], levels)
        self._colours_of = (values, levels, cmap)
        self._strip.set_colours(self._colours)

    def _update_unit_label(self) -> None:
        self._unit_label.setText(f"unit {self._shown_unit()}")
        self._unit_label.setEnabled(self._mode == "unit")

    def _update_unknown_label(self, result: ProbeResult) -> None:
        if not result.unknown:
            self._unknown_label.hide()
            return
        distinct = list(dict.fromkeys(result.text[i] for i in result.unknown))
        n = len(result.unknown)
        hint = self._alphabet_hint
        known = [theme.display_char(tok) for tok in result.vocab_tokens if tok != "<unk>"]
        if not hint and len(known) <= MAX_VOCAB_LISTED:
            hint = "the model's vocabulary: " + " ".join(known)
        self._unknown_label.setText(
            f"{n} character{'s' if n != 1 else ''} not in the vocabulary: "
            + ", ".join(repr(c) for c in distinct)
            + " (the model reads <unk>)"
            + (f". {hint[0].upper()}{hint[1:]}" if hint else "")
        )
        self._unknown_label.show()

    def _on_edit_text_changed(self, text: str) -> None:
        self.text_edited.emit(text)

    def _on_mode_combo_changed(self, index: int) -> None:
        self.set_colour_mode(self._mode_combo.itemData(index))

    def _on_topk_toggled(self, show: bool) -> None:
        self._scroll.set_show_topk(show)
        if self._result is not None:
            self._scroll.show_cell(self._cursor)

    def _on_strip_clicked(self, t: int) -> None:
        self.cursor_requested.emit(t)

"""The probe text panel colours the typed string by what core.probe computed."""

from __future__ import annotations

import numpy as np
import pytest
from probe_helpers import TEXT, make_result, show
from PySide6.QtCore import QPoint, Qt

from rnnviz.gui import theme
from rnnviz.gui.panels.probe_text import ProbeTextPanel


def test_text_panel_colours_follow_the_selected_unit(qtbot):
    panel = show(qtbot, ProbeTextPanel())
    result = make_result()
    panel.set_result(result)
    for unit in (0, 3):
        panel.set_unit(unit)
        colours = panel.cell_colours()
        assert len(colours) == len(TEXT)
        activation = result.hidden[:, unit]
        # redder (a larger share of red) exactly where the activation is higher
        redness = np.array([c.red() / (c.red() + c.green() + c.blue()) for c in colours])
        order = np.argsort(activation, kind="stable")
        assert np.all(np.diff(redness[order]) >= 0)
        hi, lo = int(np.argmax(activation)), int(np.argmin(activation))
        assert colours[hi].red() > colours[hi].blue()
        assert colours[lo].blue() > colours[lo].red()
    assert panel.unit_label_text() == "unit 3"


def test_text_panel_surprisal_mode(qtbot):
    panel = show(qtbot, ProbeTextPanel())
    result = make_result()
    panel.set_result(result)
    panel.set_colour_mode("surprisal")
    assert panel.colour_mode() == "surprisal"
    assert panel.mode_combo().currentData() == "surprisal"
    colours = panel.cell_colours()
    assert colours[0] == theme.MISSING_VALUE  # nothing before the first character
    seen = result.surprisal_bits[:-1]  # character j is coloured by row j-1
    whiteness = np.array([c.green() + c.blue() for c in colours[1:]])
    order = np.argsort(seen, kind="stable")
    assert np.all(np.diff(whiteness[order]) <= 0)  # more surprise, less white
    with pytest.raises(ValueError):
        panel.set_colour_mode("rainbow")


def test_text_panel_topk_and_unknown(qtbot):
    panel = show(qtbot, ProbeTextPanel())
    result = make_result("the TIME!")
    panel.set_result(result)
    ids, probs = result.topk_ids[0], result.topk_probs[0]
    expected = [
        f"{theme.display_char(result.vocab_tokens[v])} {p:.2f}"
        for v, p in zip(ids, probs, strict=True)
    ]
    assert panel.topk_text(0).split("\n") == expected
    assert result.unknown == (4, 5, 6, 7, 8)
    assert panel.unknown_text().startswith(
        "5 characters not in the vocabulary: 'T', 'I', 'M', 'E', '!'"
    )
    assert "maps to <unk>" in panel.tooltip_text(4)


def test_text_panel_signals(qtbot):
    panel = show(qtbot, ProbeTextPanel())
    assert panel.text() == TEXT
    with qtbot.waitSignal(panel.text_edited) as edited:
        panel.line_edit().setText("hello")
    assert edited.args == ["hello"]
    panel.set_result(make_result())
    strip = panel.strip()
    centre = strip.cell_rect(7).center()
    with qtbot.waitSignal(panel.cursor_requested) as requested:
        qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=centre)
    assert requested.args == [7]
    assert strip.index_at(QPoint(-5, -5)) is None


def test_text_panel_long_string_and_none(qtbot):
    panel = show(qtbot, ProbeTextPanel())
    long_text = ("the time traveller for so it will be convenient to speak of him " * 8)[:500]
    result = make_result(long_text)
    panel.set_result(result)
    panel.set_cursor(450)
    panel.grab()  # paints every visible cell
    assert len(panel.cell_colours()) == 500
    assert panel.strip().minimumHeight() > panel.height()  # wrapped, scrolls
    panel.set_result(None)
    assert panel.cell_colours() == []
    panel.grab()

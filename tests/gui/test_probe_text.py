"""The probe text panel colours the typed string by what core.probe computed."""

from __future__ import annotations

import numpy as np
import pytest
from probe_helpers import TEXT, make_result, show
from PySide6.QtCore import QPoint, Qt

from rnnviz.gui import theme
from rnnviz.gui.panels._char_strip import StripScroll
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


def test_topk_lines_of_a_diverged_model_read_as_plain_numbers(qtbot):
    """A NaN probability (a diverged model) is written as fixed_or_plain writes it: the
    two-decimal fast path is for finite probabilities only."""
    import dataclasses

    panel = show(qtbot, ProbeTextPanel())
    result = make_result()
    probs = result.topk_probs.copy()
    probs[2, 0] = np.nan
    panel.set_result(dataclasses.replace(result, topk_probs=probs))
    first = panel.topk_text(2).split("\n")[0]
    assert first.endswith(" " + theme.fixed_or_plain(float("nan")))
    assert panel.topk_text(1).split("\n")[0].endswith(f" {result.topk_probs[1, 0]:.2f}")


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


def _sized(qtbot, width: int, height: int, text: str = TEXT) -> ProbeTextPanel:
    panel = show(qtbot, ProbeTextPanel())
    panel.resize(width, height)
    panel.set_result(make_result(text))
    qtbot.wait(1)
    return panel


def test_the_time_machine_fits_one_row_on_a_1280_projector(qtbot):
    # the probe dock of the two-row layout in a maximised 1280x720 window: 986 px wide. The
    # cells were 62 px: 15 a row, and 'e' wrapped to a second row out of view
    panel = _sized(qtbot, 986, 232)
    strip = panel.strip()
    assert strip.cell_rect(len(TEXT) - 1).top() == strip.cell_rect(0).top()
    assert strip.topk_lines_shown() >= 2


def test_the_cursors_whole_cell_is_in_view_on_a_short_screen(qtbot):
    # the probe dock on a 960x540 screen (1920x1080 at QT_SCALE_FACTOR=2): two rows of cells
    panel = _sized(qtbot, 670, 232)
    strip = panel.strip()
    assert strip.cell_rect(len(TEXT) - 1).top() > strip.cell_rect(0).top()  # wrapped
    for t in (len(TEXT) - 1, 0, 12):  # End, Home, a letter of the second row
        panel.set_cursor(t)
        qtbot.wait(1)
        assert panel.cursor_cell_in_view(), t
    # the dock cannot squeeze the strip below one whole row of cells
    scroll = panel.findChild(StripScroll)
    assert scroll.minimumHeight() >= strip.row_height(strip.MIN_TOPK_LINES)


def test_the_topk_lines_shown_follow_the_height(qtbot):
    panel = _sized(qtbot, 986, 420)
    strip = panel.strip()
    assert strip.topk_lines_shown() == 5  # a tall dock: every line
    # lower until a line gives way (where depends on the fonts: 240 px with some, 230 with
    # others); it is a line of the top-k that goes, never the row of characters
    for height in range(400, 150, -5):
        panel.resize(986, height)
        qtbot.wait(1)
        if strip.topk_lines_shown() < 5:
            break
    assert strip.MIN_TOPK_LINES <= strip.topk_lines_shown() < 5
    assert panel.cursor_cell_in_view()
    assert panel.topk_text(0).count("\n") == 4  # the lines not shown are still the result's
    panel.resize(986, 420)
    qtbot.wait(1)
    assert strip.topk_lines_shown() == 5


def test_unknown_characters_name_what_the_model_reads(qtbot):
    panel = show(qtbot, ProbeTextPanel())
    result = make_result("the TIME!")
    panel.set_result(result)
    listed = " ".join(theme.display_char(t) for t in result.vocab_tokens if t != "<unk>")
    assert panel.unknown_text().endswith(f"The model's vocabulary: {listed}")
    panel.set_alphabet_hint("the delay task's alphabet: keys a b c d")
    assert panel.unknown_text().endswith(
        "(the model reads <unk>). The delay task's alphabet: keys a b c d"
    )
    panel.set_result(make_result("the time"))  # nothing unknown: no hint
    assert panel.unknown_text() == ""

"""The generation panel shows exactly what core.generation generates, from the model it was
given, when it should: a fixed seed, "New sample", a new model (throttled), never the same
model twice, tints from the probabilities, and a message instead of an exception."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QTextCursor
from PySide6.QtWidgets import QApplication, QWidget

from rnnviz.core.config import ModelConfig
from rnnviz.core.generation import generate_detail
from rnnviz.core.model import CharModel, build_model
from rnnviz.core.probe import model_from_params, params_to_numpy
from rnnviz.core.vocab import Vocab
from rnnviz.gui import theme
from rnnviz.gui.panels import generation
from rnnviz.gui.panels.generation import GenerationPanel, default_prefix, probability_colours
from rnnviz.gui.recolour import recolour
from rnnviz.gui.rescale import rescale

CORPUS = "the time traveller for so it will be convenient to speak of him was expounding"
PREFIX = "the time "
WAIT_MS = 5000


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.from_text(CORPUS)


def flat_model(vocab: Vocab, seed: int = 0) -> CharModel:
    """d2l's init: every distribution near uniform, so two seeds give two texts."""
    return build_model(len(vocab), ModelConfig(kind="scratch", hidden_size=8), seed=seed).eval()


def sharp_model(vocab: Vocab, seed: int = 1) -> CharModel:
    """Peaked distributions: p from near 0 to near 1, so the tints differ."""
    model = build_model(
        len(vocab), ModelConfig(kind="scratch", hidden_size=8, init="uniform"), seed=seed
    )
    with torch.no_grad():
        model.W_hq.mul_(6.0)
        model.W_xh.mul_(3.0)
    return model.eval()


def snapshot_of(model: CharModel, vocab: Vocab) -> CharModel:
    """Another model object with the same numbers, as the window rebuilds a snapshot."""
    return model_from_params(model.config, len(vocab), params_to_numpy(model))


def shown(qtbot, panel: GenerationPanel | None = None) -> GenerationPanel:
    panel = panel or GenerationPanel(prefix=PREFIX)
    qtbot.addWidget(panel)
    panel.resize(600, 300)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def settled(qtbot, panel: GenerationPanel, count: int) -> None:
    """Wait until ``count`` generations have been shown and nothing more is under way."""
    qtbot.waitUntil(
        lambda: panel.generation_count() >= count and not panel.is_generating(), timeout=WAIT_MS
    )


def sampling(panel: GenerationPanel, temperature: float = 1.0) -> None:
    panel.set_mode("sample")
    panel.set_temperature(temperature)


# ------------------------------------------------------------------ what it shows


def test_a_fixed_seed_reproduces_the_core_sample(qtbot, vocab: Vocab) -> None:
    model = flat_model(vocab)
    panels = [shown(qtbot), shown(qtbot)]
    for panel in panels:
        sampling(panel, 1.0)
        panel.show_model(model, vocab, 10, True)
        settled(qtbot, panel, 1)
    expected = generate_detail(model, vocab, PREFIX, 100, temperature=1.0, seed=0)
    assert panels[0].text() == panels[1].text() == expected.text
    assert panels[0].generated_text() == expected.generated and len(expected.tokens) == 100
    np.testing.assert_array_equal(panels[0].generation().probs, expected.probs)  # type: ignore[union-attr]
    # a setting changed and changed back: the same text again, the seed stayed
    before = panels[0].generation_count()
    panels[0].set_prefix("the ")
    panels[0].set_prefix(PREFIX)
    settled(qtbot, panels[0], before + 1)
    assert panels[0].text() == expected.text and panels[0].seed() == 0


def test_new_sample_rolls_the_dice_again(qtbot, vocab: Vocab) -> None:
    model = flat_model(vocab)
    panel = shown(qtbot)
    sampling(panel)
    panel.show_model(model, vocab, 10, True)
    settled(qtbot, panel, 1)
    first = panel.text()
    qtbot.mouseClick(panel.new_sample_button(), Qt.MouseButton.LeftButton)
    settled(qtbot, panel, 2)
    assert panel.seed() == 1 and panel.text() != first
    assert panel.text() == generate_detail(model, vocab, PREFIX, 100, 1.0, seed=1).text


def test_greedy_is_the_core_greedy_and_has_no_dice(qtbot, vocab: Vocab) -> None:
    model = sharp_model(vocab)
    panel = shown(qtbot)
    panel.set_mode("greedy")
    panel.show_model(model, vocab, 3, True)
    settled(qtbot, panel, 1)
    assert panel.text() == generate_detail(model, vocab, PREFIX, 100).text
    assert panel.temperature() == 0.0
    for widget in (panel.new_sample_button(), panel.temperature_slider(), panel.top_k_spin()):
        assert not widget.isEnabled()


def test_temperature_top_k_and_length_are_what_is_generated_with(qtbot, vocab: Vocab) -> None:
    model = flat_model(vocab)
    panel = shown(qtbot)
    sampling(panel, 0.5)
    panel.set_top_k(3)
    panel.set_length(40)
    panel.show_model(model, vocab, 10, True)
    settled(qtbot, panel, 1)
    shown_generation = panel.generation()
    assert shown_generation is not None
    assert (shown_generation.temperature, shown_generation.top_k) == (0.5, 3)
    expected = generate_detail(model, vocab, PREFIX, 40, temperature=0.5, top_k=3, seed=0)
    assert panel.text() == expected.text


def test_another_snapshot_regenerates_and_names_its_step(qtbot, vocab: Vocab) -> None:
    early, late = sharp_model(vocab, seed=1), sharp_model(vocab, seed=2)
    panel = shown(qtbot)
    panel.show_model(early, vocab, 400, True)
    settled(qtbot, panel, 1)
    assert panel.model_text() == "step 400 (live)"
    assert panel.text() == generate_detail(early, vocab, PREFIX, 100).text
    panel.show_model(late, vocab, 2000, False)  # a timeline step
    settled(qtbot, panel, 2)
    assert panel.model_text() == "step 2,000"
    assert panel.text() == generate_detail(late, vocab, PREFIX, 100).text
    assert panel.text() != generate_detail(early, vocab, PREFIX, 100).text


def test_the_same_model_object_does_not_regenerate(qtbot, vocab: Vocab) -> None:
    model = sharp_model(vocab)
    panel = shown(qtbot)
    panel.show_model(model, vocab, 5, True)
    settled(qtbot, panel, 1)
    for _ in range(5):  # the window passes the model on screen after every keystroke
        panel.show_model(model, vocab, 5, True)
        assert not panel.is_generating()
    qtbot.wait(int(generation.LIVE_INTERVAL_S * 1000) + 200)
    assert panel.generation_count() == 1
    # another object with the same numbers is another model to the panel: it regenerates
    panel.show_model(snapshot_of(model, vocab), vocab, 6, True)
    settled(qtbot, panel, 2)
    assert panel.model_text() == "step 6 (live)"


def test_live_models_regenerate_at_most_once_a_second(qtbot, vocab: Vocab) -> None:
    models = [sharp_model(vocab, seed=s) for s in range(1, 7)]
    panel = shown(qtbot)
    panel.show_model(models[0], vocab, 0, True)
    settled(qtbot, panel, 1)
    first = panel.text()
    for step, model in enumerate(models[1:], start=1):  # snapshots arriving while training
        panel.show_model(model, vocab, step * 100, True)
        QApplication.processEvents()
    assert panel.is_generating() and panel.text() == first  # waits: the last was just now
    settled(qtbot, panel, 2)
    qtbot.wait(200)
    assert panel.generation_count() == 2  # one for the whole burst, from its newest model
    assert panel.text() == generate_detail(models[-1], vocab, PREFIX, 100).text
    assert panel.model_text() == "step 500 (live)"


def test_a_long_generation_is_spread_over_event_loop_turns(
    qtbot, vocab: Vocab, monkeypatch
) -> None:
    monkeypatch.setattr(generation, "WORK_BUDGET_S", 0.0)  # one character a turn
    model = flat_model(vocab)
    panel = shown(qtbot)
    sampling(panel)
    panel.set_length(50)
    panel.show_model(model, vocab, 1, True)
    for _ in range(5):
        QApplication.processEvents()
    assert panel.generation_count() == 0 and panel.is_generating()
    settled(qtbot, panel, 1)
    assert panel.text() == generate_detail(model, vocab, PREFIX, 50, 1.0, seed=0).text


def test_a_hidden_panel_generates_when_shown(qtbot, vocab: Vocab) -> None:
    model = sharp_model(vocab)
    panel = GenerationPanel(prefix=PREFIX)
    qtbot.addWidget(panel)
    panel.show_model(model, vocab, 7, True)
    qtbot.wait(100)
    assert panel.generation_count() == 0 and panel.text() == ""
    shown(qtbot, panel)
    settled(qtbot, panel, 1)
    assert panel.text() == generate_detail(model, vocab, PREFIX, 100).text


def _document_tints(panel: GenerationPanel) -> tuple[str, list[str]]:
    """The text the document holds with a background, and each such character's colour."""
    doc = panel.text_view().document()
    cursor = QTextCursor(doc)
    chars, colours = [], []
    for position in range(1, doc.characterCount()):
        cursor.setPosition(position)  # the format of the character before the position
        fmt = cursor.charFormat()
        if fmt.hasProperty(fmt.Property.BackgroundBrush):
            chars.append(doc.characterAt(position - 1))
            colours.append(fmt.background().color().name())
    return "".join(chars), colours


def test_the_tints_follow_the_probabilities(qtbot, vocab: Vocab) -> None:
    model = sharp_model(vocab)
    panel = shown(qtbot)
    sampling(panel, 1.0)  # a spread of p, from unlikely draws to near-certain ones
    panel.set_top_k(4)  # the p sampled with is not the model's own: the tint must be the first
    panel.show_model(model, vocab, 1, True)
    settled(qtbot, panel, 1)
    shown_generation = panel.generation()
    assert shown_generation is not None
    probs = shown_generation.probs
    assert probs.max() - probs.min() > 0.4
    assert not np.allclose(probs, shown_generation.model_probs)
    expected = theme.map_colours(theme.SEQUENTIAL, probs, (0.0, 1.0))
    assert [c.name() for c in panel.char_colours()] == [c.name() for c in expected]
    assert panel.char_colours() == probability_colours(probs)
    # and that is what the document paints behind each generated character, in order
    chars, colours = _document_tints(panel)
    assert chars == "".join(
        theme.display_char(t) if t != " " else " " for t in shown_generation.tokens
    )
    assert colours == [c.name() for c in expected]
    # viridis grows lighter with p: the likeliest draw is the lightest tint, the least the darkest
    lightness = [QColor(c).lightnessF() for c in colours]
    assert lightness[int(np.argmax(probs))] > lightness[int(np.argmin(probs))]
    # the prefix is plain: no tint behind it
    assert not chars.startswith(PREFIX.strip())


def test_the_tooltip_names_the_p_of_a_character(qtbot, vocab: Vocab) -> None:
    model = flat_model(vocab)
    panel = shown(qtbot)
    sampling(panel, 2.0)
    panel.show_model(model, vocab, 1, True)
    settled(qtbot, panel, 1)
    g = panel.generation()
    assert g is not None
    tip = panel.tooltip_at(3)
    assert f"sampled with p = {g.probs[3]:.3f}" in tip
    assert f"the model's own p = {g.model_probs[3]:.3f}" in tip
    assert panel.tooltip_at(len(g.tokens)) == ""


# ------------------------------------------------------------------ bad input


def test_bad_input_is_a_one_line_message_not_an_exception(qtbot, vocab: Vocab) -> None:
    model = sharp_model(vocab)
    panel = shown(qtbot)
    panel.show_model(model, vocab, 1, True)
    settled(qtbot, panel, 1)
    count = panel.generation_count()
    panel.set_prefix("")
    qtbot.waitUntil(lambda: panel.message() != "", timeout=WAIT_MS)
    assert "type a prefix" in panel.message() and panel.text() == ""
    panel.set_prefix("thé Z")
    qtbot.waitUntil(lambda: "'é'" in panel.message(), timeout=WAIT_MS)
    assert panel.message() == "the prefix has 'é', 'Z': they are not in the model's vocabulary"
    assert "\n" not in panel.message() and panel.text() == ""
    assert panel.generation_count() == count
    panel.set_prefix(PREFIX)  # fixed: the text is back, the message gone
    settled(qtbot, panel, count + 1)
    assert panel.message() == "" and panel.text().startswith(PREFIX)


def test_a_diverged_model_is_a_message(qtbot, vocab: Vocab) -> None:
    model = sharp_model(vocab)
    with torch.no_grad():
        model.W_hq.fill_(float("nan"))
    panel = shown(qtbot)
    panel.show_model(model, vocab, 9, True)
    qtbot.waitUntil(lambda: panel.message() != "", timeout=WAIT_MS)
    assert "not finite" in panel.message() and panel.text() == ""
    assert not panel.is_generating()


def test_clear_model_empties_the_panel(qtbot, vocab: Vocab) -> None:
    panel = shown(qtbot)
    panel.show_model(sharp_model(vocab), vocab, 1, True)
    settled(qtbot, panel, 1)
    panel.clear_model()
    assert panel.text() == "" and panel.model_text() == "" and not panel.is_generating()
    assert panel.text_view().toPlainText() == ""


@pytest.mark.parametrize(
    ("probe_text", "prefix"),
    [
        ("the time machine", "the time "),
        ("machine machine machine", "machine machine "),
        ("([]{()}) (()) {[]}", "([]{()}) "),
        ("abcabcabc", "abcabcabc "),
        ("", "the time "),
        ("   ", "the time "),
    ],
)
def test_the_default_prefix_is_the_probe_texts_first_words(probe_text: str, prefix: str) -> None:
    assert default_prefix(probe_text) == prefix


# ------------------------------------------------------------------ scheme and zoom


@pytest.fixture
def light_then_back():
    theme.use_dark_scheme(False)
    yield
    theme.use_dark_scheme(None)


def _style_sheets(panel: GenerationPanel) -> list[str]:
    return [w.styleSheet() for w in (panel, *panel.findChildren(QWidget))]


def test_recoloured_to_dark_it_is_as_if_built_dark(qtbot, vocab: Vocab, light_then_back) -> None:
    model = sharp_model(vocab)
    light = shown(qtbot)
    light.set_prefix("thé")  # a message too: its colour follows the scheme
    light.show_model(model, vocab, 1, True)
    qtbot.waitUntil(lambda: light.message() != "", timeout=WAIT_MS)
    light.set_prefix(PREFIX)
    settled(qtbot, light, 1)
    light_html = light.text_view().toHtml()
    theme.use_dark_scheme(True)
    recolour(light, theme.LIGHT, theme.DARK)
    dark = shown(qtbot)
    dark.show_model(model, vocab, 1, True)
    settled(qtbot, dark, 1)
    assert light.text_view().toHtml() == dark.text_view().toHtml() != light_html
    assert theme.DARK.plot_background.lower() in dark.text_view().styleSheet().lower()
    assert _style_sheets(light) == _style_sheets(dark)  # the message's colour among them
    assert theme.DARK.secondary_ink.lower() in dark.text_view().toHtml().lower()


def test_the_lecture_zoom_scales_the_text(qtbot, vocab: Vocab) -> None:
    panel = shown(qtbot)
    panel.show_model(sharp_model(vocab), vocab, 1, True)
    settled(qtbot, panel, 1)
    view = panel.text_view()
    before = view.font().pointSizeF()
    rescale(panel, 1.5, 1.5)
    assert view.font().pointSizeF() == pytest.approx(before * 1.5)
    # the document draws in the view's font: the text itself grew, not only the widget's font
    assert view.document().defaultFont().pointSizeF() == pytest.approx(before * 1.5)

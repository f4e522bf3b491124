"""theme: SteadyLabel (a value label whose new text does not re-lay out the window), ticks."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from rnnviz.gui import plotting, theme
from rnnviz.gui.widgets import SteadyLabel


class _LayoutRequests(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, obj, event):  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.LayoutRequest:
            self.count += 1
        return False


def _in_a_layout(qtbot, label: QWidget) -> tuple[QWidget, _LayoutRequests]:
    outer = QWidget()
    qtbot.addWidget(outer)
    layout = QVBoxLayout(outer)
    layout.addWidget(label)
    layout.addWidget(QLabel("a neighbour"))
    outer.show()
    qtbot.waitExposed(outer)
    requests = _LayoutRequests()
    outer.installEventFilter(requests)
    qtbot.wait(20)
    requests.count = 0
    return outer, requests


def test_a_new_text_no_wider_than_before_does_not_re_lay_out_the_parent(qtbot):
    label = SteadyLabel("step 1,000   epoch 10")
    outer, requests = _in_a_layout(qtbot, label)
    for step in range(2, 30):
        label.setText(f"step {step}   epoch 1")
        qtbot.wait(1)
    assert label.text() == "step 29   epoch 1"
    assert requests.count == 0
    # a plain QLabel there re-lays out its parent at every new text (what SteadyLabel avoids)
    plain = QLabel("x")
    outer.layout().addWidget(plain)
    qtbot.wait(20)
    requests.count = 0
    plain.setText("step 2")
    qtbot.wait(20)
    assert requests.count > 0
    outer.removeEventFilter(requests)


def test_a_wider_or_taller_text_gets_room(qtbot):
    label = SteadyLabel("short")
    outer, requests = _in_a_layout(qtbot, label)
    width, height = label.width(), label.height()
    label.setText("a much longer text than the first one, which needs more room")
    qtbot.waitUntil(lambda: label.width() > width)
    assert requests.count > 0
    assert label.label().width() == label.width()  # the QLabel inside fills it
    label.label().setTextFormat(label.label().textFormat().RichText)
    label.setText("one line<br>and a second line")
    qtbot.waitUntil(lambda: label.height() > height)
    outer.removeEventFilter(requests)


def test_shrink_lets_the_layout_cut_it_and_tooltips_reach_the_label(qtbot):
    wide = "clip rate (last 100 steps): 12%   latest ‖g‖/θ: 3.4"
    assert SteadyLabel(wide).minimumSizeHint().width() > 100
    cut = SteadyLabel(wide, shrink=True)
    assert cut.minimumSizeHint().width() == 0
    cut.setToolTip("why")
    assert cut.toolTip() == "why" and cut.label().toolTip() == "why"


def test_a_text_set_while_hidden_has_room_once_shown(qtbot):
    """A hidden widget posts no layout request: the status bar kept the width it had cached
    for the empty text and cut 'skipped non-finite steps: 0' to 's' (seen in a screenshot)."""
    outer = QWidget()
    qtbot.addWidget(outer)
    layout = QVBoxLayout(outer)
    label = SteadyLabel()
    layout.addWidget(label)
    layout.activate()  # the layout caches the empty label's size
    label.setText("skipped non-finite steps: 0")
    outer.show()
    qtbot.waitExposed(outer)
    qtbot.waitUntil(lambda: label.width() >= label.label().sizeHint().width())
    assert outer.minimumSizeHint().width() >= label.label().sizeHint().width()


def test_a_wrapped_label_asks_for_room_only_when_its_height_changes(qtbot):
    label = SteadyLabel("a readout of a few words", wrap=True)
    outer, requests = _in_a_layout(qtbot, label)
    outer.resize(300, outer.height())
    qtbot.wait(20)
    requests.count = 0
    for text in ("short", "a readout of a few more words", "p = 0.25"):
        label.setText(text)  # one line each at 300 px
        qtbot.wait(1)
    assert requests.count == 0
    height = label.height()
    label.setText(" ".join(["a long readout that wraps"] * 8))
    qtbot.waitUntil(lambda: label.height() > height)
    outer.removeEventFilter(requests)


def test_char_ticks_label_the_given_cells_first_when_crowded():
    chars = list("abcdefghijklmnopqrstuvwxyz")
    regular = plotting.char_ticks(chars, 13)  # every other one: a, c, e, ...
    assert [label for _, label in regular][:3] == ["a", "c", "e"]
    ticks = plotting.char_ticks(chars, 13, first=[7, 8, 3])  # h first; i is too close to h
    labels = {label for _, label in ticks}
    assert {"h", "d"} <= labels and "i" not in labels
    positions = sorted(x for x, _ in ticks)
    assert min(b - a for a, b in zip(positions, positions[1:], strict=False)) >= 2
    assert len(ticks) <= 13
    # everything fits: every cell, whatever comes first
    assert len(plotting.char_ticks(chars, 26, first=[5])) == 26


def test_the_bench_draws_with_the_apps_pyqtgraph_options(monkeypatch):
    # the bench once drew without antialiasing while the app drew with it: its figures were
    # not the app's. Both call plotting.configure_pyqtgraph.
    import pyqtgraph as pg

    from rnnviz.bench import gui as bench
    from rnnviz.gui import app

    calls = []
    monkeypatch.setattr(plotting, "configure_pyqtgraph", lambda: calls.append("configured"))
    bench._app()
    assert calls == ["configured"]
    assert "plotting.configure_pyqtgraph()" in Path(app.__file__).read_text()
    monkeypatch.undo()
    pg.setConfigOptions(antialias=True)
    plotting.configure_pyqtgraph()
    assert pg.getConfigOption("antialias") is False
    assert pg.getConfigOption("imageAxisOrder") == "row-major"


def test_the_short_probe_curves_are_drawn_smoothly(qtbot):
    from rnnviz.core.config import RunConfig
    from rnnviz.gui.panels.gradflow import GradFlowPanel
    from rnnviz.gui.panels.hidden_states import HiddenStatesPanel
    from rnnviz.gui.state.app_state import AppState

    hidden, flow = HiddenStatesPanel(), GradFlowPanel(AppState(RunConfig()))
    qtbot.addWidget(hidden)
    qtbot.addWidget(flow)
    for item in (hidden.trace_curve, flow.distance_curve, flow.fit_curve):
        assert item.opts["antialias"] is True


def test_a_screenshot_lays_out_a_label_that_just_got_wider(qtbot):
    from PySide6.QtWidgets import QHBoxLayout

    from rnnviz.gui.app import lay_out_now

    holder = QWidget()
    row = QHBoxLayout(holder)
    label = SteadyLabel()
    row.addWidget(label)
    row.addStretch(1)
    label.setText("epoch 9")
    holder.resize(600, 40)
    holder.show()
    qtbot.waitExposed(holder)
    label.setText("step 100   epoch 10, and a good deal wider than before")
    lay_out_now()  # no event loop pass in between, as in the screenshot driver
    assert label.width() >= label.sizeHint().width()


# ---------------------------------------------------------------------------- colour schemes


def _luminance(colour: str) -> float:
    from PySide6.QtGui import QColor

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    c = QColor(colour)
    r, g, b = (linear(x) for x in (c.redF(), c.greenF(), c.blueF()))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG's contrast ratio of two colours (4.5 reads as body text)."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.fixture
def dark_scheme():
    """The dark scheme for the test, pyqtgraph's options with it; light again after."""
    import pyqtgraph as pg

    theme.use_dark_scheme(True)
    plotting.configure_pyqtgraph()
    yield theme.DARK
    theme.use_dark_scheme(None)
    plotting.configure_pyqtgraph()
    assert pg.getConfigOption("background") == theme.LIGHT.plot_background


ADWAITA_DARK_WINDOW = "#353535"
LIGHT_WINDOW = "#EFEFEF"


def test_every_text_colour_reads_on_its_background():
    # the "no steps yet" hint, the legend's ends, "idle" and "paused" were nearly invisible
    # on a dark desktop: each text colour is >= 4.5:1 against what it is drawn on
    for scheme, window in ((theme.LIGHT, LIGHT_WINDOW), (theme.DARK, ADWAITA_DARK_WINDOW)):
        for ink in (scheme.ink, scheme.secondary_ink, scheme.placeholder_ink):
            assert contrast(ink, scheme.plot_background) >= 4.5, (scheme.dark, ink)
        assert contrast(scheme.placeholder_ink, window) >= 3.0, scheme.dark
        for state, colour in scheme.states.items():
            assert contrast(colour, window) >= 4.5, (scheme.dark, state, colour)
        assert contrast(scheme.cursor, scheme.plot_background) >= 7.0


def test_the_scheme_follows_the_system_and_can_be_forced(qtbot):
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    assert theme.colours() is theme.LIGHT  # offscreen: no hint, a light palette
    old = app.palette()
    dark = QPalette(old)
    dark.setColor(QPalette.ColorRole.Window, QColor(ADWAITA_DARK_WINDOW))
    app.setPalette(dark)
    try:
        if app.styleHints().colorScheme() == Qt.ColorScheme.Unknown:
            assert theme.system_is_dark()  # a dark palette without the hint
            assert theme.colours() is theme.DARK
        theme.use_dark_scheme(False)
        assert theme.colours() is theme.LIGHT
    finally:
        theme.use_dark_scheme(None)
        app.setPalette(old)
    assert theme.state_colour("training") == theme.LIGHT.states["training"]
    assert theme.state_colour("starting") == theme.LIGHT.states["idle"]


def test_plots_built_in_the_dark_scheme_are_dark(qtbot, dark_scheme):
    import pyqtgraph as pg

    from rnnviz.gui.panels.hidden_states import HiddenStatesPanel
    from rnnviz.gui.panels.softmax import SoftmaxPanel

    assert pg.getConfigOption("background") == dark_scheme.plot_background
    hidden, softmax = HiddenStatesPanel(), SoftmaxPanel()
    for panel in (hidden, softmax):
        qtbot.addWidget(panel)
    view = hidden.graphics_view()
    assert view.backgroundBrush().color().name() == dark_scheme.plot_background.lower()
    axis = hidden.trace_plot.getAxis("left")
    assert axis.pen().color().name() == dark_scheme.ink.lower()
    assert axis.textPen().color().name() == dark_scheme.ink.lower()
    assert hidden.cursor_line.pen.color().name() == dark_scheme.cursor.lower()
    assert softmax.cursor_line.pen.color().name() == dark_scheme.cursor.lower()
    bar_axis = hidden.colour_bar.getAxis("right")
    assert bar_axis.textPen().color().name() == dark_scheme.ink.lower()
    # the palette's black run colour would vanish: it is the ink
    assert theme.run_colour(7) == dark_scheme.ink
    assert theme.readable("#0072B2") != "#0072b2"
    from PySide6.QtGui import QColor

    assert QColor(theme.readable("#0072B2")).lightness() > QColor("#0072B2").lightness()


def test_the_strip_and_the_legend_are_drawn_in_the_schemes_colours(qtbot, dark_scheme):
    from probe_helpers import make_result
    from PySide6.QtGui import QColor, QPalette

    from rnnviz.gui.panels._char_strip import ColourLegend
    from rnnviz.gui.panels.probe_text import ProbeTextPanel

    panel = ProbeTextPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 300)
    panel.show()
    panel.set_result(make_result())
    image = panel.strip().grab().toImage()
    corner = QColor(image.pixel(image.width() - 3, image.height() - 3))
    assert corner.name() == dark_scheme.plot_background.lower()  # was white
    legend = ColourLegend()
    qtbot.addWidget(legend)
    palette = legend.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor(ADWAITA_DARK_WINDOW))
    palette.setColor(QPalette.ColorRole.WindowText, QColor("#FFFFFF"))
    legend.setPalette(palette)
    legend.set_scale(theme.DIVERGING, "−1", "+1")
    legend.resize(240, legend.height())
    ends = legend.grab().toImage()
    # the "−1" was black: on a dark window it was nearly invisible. Now it has the
    # palette's light text colour
    left = [QColor(ends.pixel(x, y)) for x in range(0, 20) for y in range(ends.height())]
    assert max(c.lightness() for c in left) > 200


def test_the_time_step_slider_shows_its_groove_on_a_dark_scheme(qtbot, dark_scheme):
    """On a dark palette the style's groove vanished and the slider read as a lone square at
    the left (seen under Xvfb with Adwaita-dark): it is drawn in the scheme's colours."""
    from PySide6.QtGui import QColor

    from rnnviz.gui.panels.time_cursor import TimeCursor

    cursor = TimeCursor()
    qtbot.addWidget(cursor)
    cursor.resize(600, 40)
    cursor.show()
    qtbot.waitExposed(cursor)
    slider = cursor.slider()
    image = slider.grab().toImage()
    groove = QColor(dark_scheme.missing)
    row = [image.pixelColor(x, image.height() // 2) for x in range(image.width())]
    near = [c for c in row if abs(c.lightness() - groove.lightness()) < 12]
    assert len(near) > image.width() // 2, (groove.name(), {c.name() for c in row})


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0"),
        (9_876, "9,876"),
        (21_543, "21.5 k"),
        (215_433, "215 k"),
        (999_700, "1 M"),
        (2_155_354, "2.16 M"),
        (3.2e9, "3.2 G"),
    ],
)
def test_a_large_count_is_written_in_three_figures(count, text):
    assert theme.short_count(count) == text

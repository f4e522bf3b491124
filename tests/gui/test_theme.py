"""theme: SteadyLabel (a value label whose new text does not re-lay out the window), ticks."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from rnnviz.gui import plotting
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

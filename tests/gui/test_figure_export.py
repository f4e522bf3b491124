"""Panel export: PNG at the physical pixel size, SVG as vector drawing, export all, and every
bad path refused before anything is rendered (gui/figure_export.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QGraphicsItem, QGraphicsView, QLabel, QVBoxLayout, QWidget

from rnnviz.gui import figure_export, plotting
from rnnviz.gui.figure_export import (
    ExportError,
    attach_export_menu,
    export_actions,
    export_all,
    export_png,
    export_svg,
    safe_file_name,
    safe_file_stem,
)

SVG = "{http://www.w3.org/2000/svg}"
REPO = Path(__file__).resolve().parents[2]


def temps_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.rnnviz-tmp"))


def make_plot() -> pg.PlotWidget:
    """A plot as the panels build them: a curve, symbols, cached axes."""
    widget = pg.PlotWidget()
    x = np.arange(40, dtype=float)
    widget.plot(x, np.sin(x / 4), pen="r")
    widget.plot(x[::8], np.cos(x[::8] / 4), pen=None, symbol="o", symbolBrush="b")
    widget.setLabel("bottom", "optimizer step")
    plotting.cache_axes(widget)
    return widget


@pytest.fixture
def plot(qtbot) -> pg.PlotWidget:
    widget = make_plot()
    widget.resize(320, 240)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def spy_grab(monkeypatch):
    """Count the paintings of a widget (its grab(), the SVG's render): a refused path must
    not paint anything."""
    rendered: dict[int, list[str]] = {}
    real_render = figure_export._render_widget

    def counted_render(widget, painter):
        rendered.setdefault(id(widget), []).append("render")
        real_render(widget, painter)

    monkeypatch.setattr(figure_export, "_render_widget", counted_render)

    def install(widget: QWidget) -> list[str]:
        calls = rendered.setdefault(id(widget), [])
        grab = widget.grab

        def counted_grab(*args):
            calls.append("grab")
            return grab(*args)

        monkeypatch.setattr(widget, "grab", counted_grab)
        return calls

    return install


# --------------------------------------------------------------------------- PNG


def test_png_is_the_widget_at_its_size_at_a_ratio_of_one(plot, tmp_path):
    path = export_png(plot, tmp_path / "plot.png")
    image = QImage(str(path))
    assert (image.width(), image.height()) == (plot.width(), plot.height())
    assert temps_in(tmp_path) == []


CHILD = textwrap.dedent(
    """
    import json, sys
    from PySide6.QtWidgets import QApplication
    import numpy as np, pyqtgraph as pg
    app = QApplication(sys.argv)
    from rnnviz.gui.figure_export import export_png
    widget = pg.PlotWidget()
    widget.plot(np.arange(30), np.sin(np.arange(30) / 3))
    widget.resize(300, 200)
    widget.show()
    app.processEvents()
    export_png(widget, sys.argv[1])
    print(json.dumps({"w": widget.width(), "h": widget.height(),
                      "dpr": widget.devicePixelRatioF()}))
    """
)


def test_png_has_the_physical_size_at_a_device_pixel_ratio_of_two(tmp_path):
    # the ratio is fixed when the QApplication starts, so a child process gets its own
    path = tmp_path / "hidpi.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": "2"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["dpr"] == 2.0
    image = QImage(str(path))
    assert (image.width(), image.height()) == (2 * shown["w"], 2 * shown["h"])
    # 192 dpi: a slide program places it at the size it had on screen
    assert image.dotsPerMeterX() == pytest.approx(2 * 96 / 0.0254, rel=0.01)


def test_png_refuses_a_folder_before_grabbing(plot, tmp_path, spy_grab):
    calls = spy_grab(plot)
    folder = tmp_path / "taken.png"
    folder.mkdir()
    with pytest.raises(ExportError) as info:
        export_png(plot, folder)
    assert "is a folder" in str(info.value) and "\n" not in str(info.value)
    assert calls == []


@pytest.mark.parametrize(
    "where", ["missing/plot.png", "file.txt/plot.png"], ids=["no folder", "file as folder"]
)
def test_png_refuses_a_path_it_cannot_write_before_grabbing(plot, tmp_path, spy_grab, where):
    (tmp_path / "file.txt").write_text("x")
    calls = spy_grab(plot)
    with pytest.raises(ExportError) as info:
        export_png(plot, tmp_path / where)
    assert "\n" not in str(info.value)
    assert calls == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_png_refuses_a_read_only_folder(plot, tmp_path, spy_grab):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    calls = spy_grab(plot)
    try:
        with pytest.raises(ExportError, match="permission denied"):
            export_png(plot, folder / "plot.png")
    finally:
        folder.chmod(0o700)
    assert calls == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_png_refuses_a_device(plot, spy_grab):
    calls = spy_grab(plot)
    with pytest.raises(ExportError, match="a device"):
        export_png(plot, "/dev/full")
    assert calls == []


def test_png_of_a_widget_with_no_size_is_one_sentence(qtbot, tmp_path):
    widget = QWidget()
    qtbot.addWidget(widget)
    widget.resize(0, 0)
    with pytest.raises(ExportError, match="no size") as info:
        export_png(widget, tmp_path / "empty.png")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temp(plot, tmp_path, monkeypatch):
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(figure_export, "atomic_write_bytes", disk_full)
    with pytest.raises(ExportError, match="No space left"):
        export_png(plot, target)
    assert target.read_bytes() == b"old"
    assert temps_in(tmp_path) == []


# --------------------------------------------------------------------------- SVG


def svg_elements(path: Path) -> dict[str, list[ET.Element]]:
    root = ET.parse(path).getroot()  # valid XML, or this raises
    assert root.tag == f"{SVG}svg"
    found: dict[str, list[ET.Element]] = {}
    for element in root.iter():
        found.setdefault(element.tag.removeprefix(SVG), []).append(element)
    return found


def points_in(element: ET.Element) -> int:
    if element.tag == f"{SVG}polyline":
        return len(element.get("points", "").split())
    return sum(c.isalpha() for c in element.get("d", ""))  # one letter per path command


def test_svg_of_a_plot_is_vector_drawing_with_text(plot, tmp_path):
    path = export_svg(plot, tmp_path / "plot.svg", "the curve")
    found = svg_elements(path)
    # the 40-point curve is one path or polyline, not pixels
    lines = found.get("path", []) + found.get("polyline", [])
    assert max(points_in(e) for e in lines) >= 40
    # the axes, cached as pixmaps on screen, come out as text; nothing is a bitmap
    texts = "".join("".join(e.itertext()) for e in found.get("text", []))
    assert "optimizer step" in texts
    assert found.get("image", []) == []
    assert "".join(found["title"][0].itertext()) == "the curve"
    assert temps_in(tmp_path) == []


def test_svg_puts_the_caches_and_export_mode_back(plot, tmp_path):
    view_mode = plot.cacheMode()
    modes = {id(item): item.cacheMode() for item in plot.scene().items()}
    cached = [m for m in modes.values() if m != QGraphicsItem.CacheMode.NoCache]
    assert view_mode != QGraphicsView.CacheModeFlag.CacheNone and cached  # something to restore
    export_svg(plot, tmp_path / "plot.svg")
    assert plot.cacheMode() == view_mode
    assert {id(item): item.cacheMode() for item in plot.scene().items()} == modes
    assert all(getattr(i, "_exportOpts", False) is False for i in plot.scene().items())


def test_svg_of_a_panel_holds_its_plot_and_labels(qtbot, tmp_path):
    panel = QWidget()
    layout = QVBoxLayout(panel)
    layout.addWidget(QLabel("probe: the time machine"))
    layout.addWidget(make_plot())
    qtbot.addWidget(panel)
    panel.resize(400, 320)
    panel.show()
    qtbot.waitExposed(panel)
    found = svg_elements(export_svg(panel, tmp_path / "panel.svg"))
    texts = "".join("".join(e.itertext()) for e in found.get("text", []))
    assert "probe: the time machine" in texts and "optimizer step" in texts


def test_svg_refuses_a_folder_before_rendering(plot, tmp_path, spy_grab):
    calls = spy_grab(plot)
    folder = tmp_path / "taken.svg"
    folder.mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        export_svg(plot, folder)
    assert calls == []


# --------------------------------------------------------------------------- export all


@pytest.fixture
def panels(qtbot, plot):
    label = QLabel("softmax")
    label.resize(120, 60)
    qtbot.addWidget(label)
    label.show()
    qtbot.waitExposed(label)
    return {"Training curves": plot, "Softmax / top-k": label}


def test_export_all_writes_every_panel_and_extra(panels, tmp_path):
    csv = "step,loss\n1,2.5\n"
    probe = json.dumps({"text": "the time"}).encode()
    seen: list[str] = []
    written = export_all(
        tmp_path,
        panels,
        {"metrics.csv": csv, "probe.json": probe},
        before_grab=lambda name, widget: seen.append(name),
    )
    names = sorted(p.name for p in written)
    assert names == ["metrics.csv", "probe.json", "softmax-top-k.png", "training-curves.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # and nothing else
    for name, widget in panels.items():
        image = QImage(str(tmp_path / f"{safe_file_stem(name)}.png"))
        assert (image.width(), image.height()) == (widget.width(), widget.height())
    assert (tmp_path / "metrics.csv").read_text() == csv
    assert (tmp_path / "probe.json").read_bytes() == probe
    assert seen == list(panels)


def test_export_all_checks_every_target_before_grabbing(panels, tmp_path, spy_grab):
    calls = [spy_grab(w) for w in panels.values()]
    (tmp_path / "probe.json").mkdir()  # the last file's place is taken by a folder
    with pytest.raises(ExportError, match="probe.json is a folder"):
        export_all(tmp_path, panels, {"metrics.csv": "a", "probe.json": "{}"})
    assert calls == [[], []]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.json"]


def test_export_all_refuses_a_missing_folder(panels, tmp_path, spy_grab):
    calls = [spy_grab(w) for w in panels.values()]
    with pytest.raises(ExportError, match="does not exist"):
        export_all(tmp_path / "nowhere", panels)
    assert calls == [[], []]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_export_all_refuses_a_read_only_folder(panels, tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="permission denied"):
            export_all(tmp_path, panels)
    finally:
        tmp_path.chmod(0o700)


def test_export_all_refuses_two_names_for_one_file(panels, tmp_path, spy_grab):
    calls = spy_grab(panels["Training curves"])
    doubled = {**panels, "training curves!": panels["Softmax / top-k"]}
    with pytest.raises(ExportError, match="different names"):
        export_all(tmp_path, doubled)
    assert calls == []
    assert list(tmp_path.iterdir()) == []


def test_export_all_says_how_many_were_written_when_one_fails(panels, tmp_path, monkeypatch):
    real = figure_export.atomic_write_bytes
    count = [0]

    def fill_up(path, data):
        count[0] += 1
        if count[0] == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(figure_export, "atomic_write_bytes", fill_up)
    with pytest.raises(ExportError, match=r"1 of 3 files were written") as info:
        export_all(tmp_path, panels, {"metrics.csv": "a"})
    assert "\n" not in str(info.value)
    assert temps_in(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("Training curves", "training-curves"),
        ("Softmax / top-k", "softmax-top-k"),
        ("Gradient norms ‖g‖", "gradient-norms-g"),
        ("Étape", "etape"),
        ("../../etc/passwd", "etc-passwd"),
        ("???", "panel"),
        ("CON", "con_"),
    ],
)
def test_safe_file_stem(name, stem):
    assert safe_file_stem(name) == stem


def test_safe_file_name_keeps_the_extension():
    assert safe_file_name("Metrics (all runs).CSV") == "metrics-all-runs.csv"
    assert safe_file_name("../probe.json") == "probe.json"
    assert safe_file_name("README") == "readme"


# --------------------------------------------------------------------------- the menu


def test_export_actions_write_what_the_dialog_chose(plot, tmp_path):
    reports: list[str] = []
    written: list[Path] = []
    asked: list[tuple[str, str]] = []

    def ask(parent, caption, suggested, file_filter):
        asked.append((caption, suggested))
        return str(tmp_path / ("chosen" if "PNG" in caption else "drawing.svg"))

    png, svg = export_actions(
        plot, "Training curves", reports.append, done=written.append, ask_path=ask
    )
    assert (png.text(), svg.text()) == ("Export PNG…", "Export SVG…")
    png.trigger()
    svg.trigger()
    assert reports == []
    assert [p.name for p in written] == ["chosen.png", "drawing.svg"]  # ".png" added
    assert QImage(str(tmp_path / "chosen.png")).width() == plot.width()
    assert asked[0][1].endswith("training-curves.png")
    # the next dialog opens where the last export went
    assert Path(asked[1][1]).parent == tmp_path


def test_export_actions_report_a_failure_and_ignore_a_cancel(plot, tmp_path):
    reports: list[str] = []
    (tmp_path / "taken.png").mkdir()
    answers = iter(["", str(tmp_path / "taken.png")])
    png, _ = export_actions(plot, "curves", reports.append, ask_path=lambda *a: next(answers))
    png.trigger()  # cancelled: nothing
    assert reports == []
    png.trigger()
    assert len(reports) == 1 and "is a folder" in reports[0]


def test_attach_export_menu_gives_the_target_its_actions(qtbot, plot):
    bar = QLabel("Training curves")
    qtbot.addWidget(bar)
    actions = attach_export_menu(bar, plot, "Training curves", lambda text: None)
    assert bar.actions() == actions
    assert bar.contextMenuPolicy().name == "ActionsContextMenu"
    assert all(a.parent() is bar for a in actions)

"""Session files, Export all and recording, through the window (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _timeline_helpers import shown_on, train_in_steps
from PySide6.QtGui import QImage

from rnnviz.core.history import read_runs_csv
from rnnviz.gui.window.docks import DOCKS

ENGINE_WAIT_MS = 30_000
TEXT = "abcabcab"


def test_a_session_round_trips_into_another_window(make_window, qtbot, tmp_path):
    first = make_window(settings_file=tmp_path / "a.json")
    first.set_probe_text(TEXT)
    train_in_steps(qtbot, first, 4)
    s = first.app_state
    steps = s.snapshots.steps()
    s.view_step(steps[2])
    qtbot.waitUntil(lambda: shown_on(first, steps[2]), timeout=5000)
    first.probe_display.move_cursor(3)
    s.set_unit(2)
    path = tmp_path / "run.rnnviz"
    with qtbot.waitSignal(first.session_files.written, timeout=ENGINE_WAIT_MS) as written:
        assert first.session_files.save(str(path))
    assert written.args == [str(path), ""]
    assert path.is_file()
    assert not list(tmp_path.glob("*.tmp*"))  # atomic: no temp file left

    second = make_window(settings_file=tmp_path / "b.json")
    with qtbot.waitSignal(second.session_files.restored, timeout=ENGINE_WAIT_MS):
        second.session_files.open(str(path))
    t = second.app_state
    qtbot.waitUntil(lambda: shown_on(second, steps[2]), timeout=5000)
    assert t.main.step == s.main.step
    assert t.snapshots.steps() == steps
    assert t.viewed_step == steps[2]
    assert t.probe_text == TEXT and t.cursor == 3 and t.unit == 2
    label = f"model at step {steps[2]:,} of {s.main.step:,}"
    qtbot.waitUntil(lambda: second.panels.timeline.label_text() == label, timeout=2000)
    for a, b in zip(t.snapshots.snapshots(), s.snapshots.snapshots(), strict=True):
        for name in a.params:
            np.testing.assert_array_equal(a.params[name], b.params[name])
    old, new = s.histories.metrics(0).columns(), t.histories.metrics(0).columns()
    assert set(old) == set(new)
    for name in old:
        np.testing.assert_array_equal(new[name], old[name], err_msg=name)
    # the same view: the probe of the same stored parameters
    np.testing.assert_allclose(second.probe_result.probs, first.probe_result.probs, rtol=1e-6)
    # and the run goes on training from where it was saved
    second.app_state.go_live()
    train_in_steps(qtbot, second, 1)
    assert t.main.step == s.main.step + 3


def test_a_bad_session_file_is_one_line_and_loses_nothing(make_window, qtbot, tmp_path):
    window = make_window()
    window.set_probe_text(TEXT)
    step = window.app_state.main.step
    bad = tmp_path / "bad.rnnviz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    window.session_files.open(str(bad))
    qtbot.waitUntil(lambda: "Could not open the session" in window.banner_text(), timeout=5000)
    assert "\n" not in window.banner_text()
    assert window.app_state.main.step == step and window.app_state.probe_text == TEXT
    # and a folder as the output is refused before the engine is asked for anything
    assert not window.session_files.save(str(tmp_path))
    assert "Session not saved" in window.banner_text()


def test_export_all_writes_every_panel_the_metrics_and_the_probe(make_window, qtbot, tmp_path):
    window = make_window()
    window.set_probe_text(TEXT)
    train_in_steps(qtbot, window, 2)
    qtbot.waitUntil(lambda: shown_on(window, window.app_state.main.step), timeout=5000)
    out = tmp_path / "figures"
    out.mkdir()
    written = window.exports.export_all(out)
    names = {p.name for p in written}
    from rnnviz.gui.figure_export import safe_file_name

    for _, title in DOCKS:
        png = out / safe_file_name(f"{title}.png")
        assert png.name in names
        image = QImage(str(png))
        assert not image.isNull() and image.width() > 50 and image.height() > 50, png.name
    runs = read_runs_csv(out / "metrics.csv")
    assert [label for label, _ in runs] == ["main"]
    np.testing.assert_array_equal(
        runs[0][1]["step"], window.app_state.histories.metrics(0).columns()["step"]
    )
    probe = json.loads((out / "probe.json").read_text())
    assert probe["text"] == TEXT
    assert np.asarray(probe["hidden"]).shape == window.probe_result.hidden.shape
    # the tabs are as they were
    assert not window.docks["dock_softmax"].visibleRegion().isEmpty()


def test_recording_the_window_writes_the_frames_recorded(make_window, qtbot, tmp_path):
    from PIL import Image

    window = make_window()
    path = tmp_path / "window.gif"
    assert window.exports.record(str(path))
    assert window.exports.record_bar.isVisible()
    window.controller.play()
    qtbot.waitUntil(lambda: window.exports.recorder.frames >= 5, timeout=10_000)
    window.controller.pause()
    with qtbot.waitSignal(window.exports.recorder.finished, timeout=20_000):
        window.exports.recorder.stop()
    frames = window.exports.recorder.frames
    with Image.open(path) as gif:
        assert gif.n_frames == frames
    assert not window.exports.record_bar.isVisible()
    assert not [p for p in Path(tmp_path).iterdir() if p.name != "window.gif" and "gif" in p.name]


def test_a_panel_title_right_click_menu_exports_that_panel(make_window, tmp_path):
    window = make_window(start=False)
    title = window.docks["dock_softmax"].titleBarWidget()
    texts = [a.text() for a in title.actions()]
    assert texts == ["Export PNG…", "Export SVG…"]
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    submenus = {a.text(): a.menu() for a in file_menu.actions() if a.menu() is not None}
    assert set(submenus) == {"Export panel", "Record panel"}
    titles = [title for _, title in DOCKS]
    assert [a.text() for a in submenus["Export panel"].actions()] == titles
    assert [a.text() for a in submenus["Record panel"].actions()] == [f"{t}…" for t in titles]
    softmax = submenus["Export panel"].actions()[titles.index("Softmax")].menu()
    assert [a.text() for a in softmax.actions()] == texts


def test_a_headless_session_opens_in_a_screenshot_at_a_step(tmp_path):
    """`rnnviz train --session-out` then `rnnviz --screenshot --session --at-step`: the state
    an issue names, reproduced from the command line."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path))
    session = tmp_path / "s.rnnviz"
    train = [
        *("train", "--corpus", "synthetic:repeat", "--hidden", "8", "--batch-size", "16"),
        *("--num-steps", "8", "--max-steps", "60", "--quiet", "--session-out", str(session)),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "rnnviz", *train], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shot = tmp_path / "at.png"
    argv = [
        *("--screenshot", str(shot), "--session", str(session), "--at-step", "20"),
        *("--show", "film", "--size", "1280x720"),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "rnnviz", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "screenshot at step 60" in done.stdout
    assert shot.stat().st_size > 10_000
    bad = subprocess.run(
        [sys.executable, "-m", "rnnviz", "--at-step", "3"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "--at-step needs --screenshot or --session" in bad.stderr


def test_the_command_lines_probe_and_cursor_replace_the_sessions(make_window, qtbot, tmp_path):
    """`rnnviz --session FILE --probe TEXT --cursor T`: the session brings its own text and
    cursor; the ones asked for win once it is open."""
    from rnnviz.cli import main
    from rnnviz.gui.app import _apply_options
    from rnnviz.gui.launch import LaunchOptions

    session = tmp_path / "s.rnnviz"
    argv = [
        *("train", "--corpus", "synthetic:repeat", "--hidden", "8", "--batch-size", "16"),
        *("--num-steps", "8", "--max-steps", "20", "--quiet", "--session-out", str(session)),
    ]
    assert main(argv) == 0
    window = make_window()
    _apply_options(window, LaunchOptions(session=str(session), probe_text="abcab", cursor=3))
    window.session_files.open(str(session))
    qtbot.waitUntil(
        lambda: (
            window.app_state.main.step == 20
            and window.probe_result is not None
            and window.probe_result.text == "abcab"
            and window.app_state.cursor == 3
        ),
        timeout=20_000,
    )

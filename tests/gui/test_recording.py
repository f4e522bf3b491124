"""Recording a widget to GIF / MP4 (gui/recording.py): the file holds the frames recorded, the
cap and Stop end it, a missing library or a bad path is one sentence before anything starts,
and no temp file or thread is left however it ends."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
import shiboken6
from PySide6.QtCore import SIGNAL, QCoreApplication, Qt
from PySide6.QtWidgets import QLabel

from rnnviz.core.atomic import TMP_SUFFIX
from rnnviz.gui import recording
from rnnviz.gui.recording import (
    RECORD_INSTALL,
    VIDEO_INSTALL,
    RecordBar,
    Recorder,
    RecordError,
    check_recording,
)

Image = pytest.importorskip("PIL.Image", reason="GIF recording needs Pillow (rnnviz[record])")

WAIT_MS = 20_000


def temps_in(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{TMP_SUFFIX}"))


@pytest.fixture
def plot(qtbot):
    widget = pg.PlotWidget()
    x = np.arange(30, dtype=float)
    widget.curve = widget.plot(x, np.sin(x / 3), pen="r")
    widget.resize(240, 160)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def recorder(qtbot):
    rec = Recorder()
    yield rec
    if shiboken6.isValid(rec):
        rec.abort()  # a failed test leaves no thread running


def gif_frames(path: Path) -> list[tuple[np.ndarray, int]]:
    """Every frame of the GIF as shown (RGB), with its delay in ms."""
    frames = []
    with Image.open(path) as image:
        for index in range(image.n_frames):
            image.seek(index)
            frames.append((np.asarray(image.convert("RGB")), image.info["duration"]))
    return frames


def rgb_of(qimage) -> np.ndarray:
    from PySide6.QtGui import QImage

    image = qimage.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    raw = np.frombuffer(image.constBits(), np.uint8, count=stride * h).reshape(h, stride)
    return raw[:, : w * 3].reshape(h, w, 3).copy()


def record(qtbot, recorder, widget, path, **options) -> str:
    with qtbot.waitSignal(recorder.finished, timeout=WAIT_MS) as done:
        recorder.start(widget, path, **options)
    return done.args[0]


# --------------------------------------------------------------------------- GIF


def test_the_gif_holds_exactly_the_frames_recorded(qtbot, recorder, plot, tmp_path):
    shown = []  # the widget as each frame was taken; the curve moves after each

    def next_frame(frames, cap):
        shown.append(rgb_of(plot.grab().toImage()))
        x = np.arange(30, dtype=float)
        plot.curve.setData(x, np.sin(x / 3 + frames))
        plot.repaint()  # into the window's backing store now, for the next frame

    recorder.progress.connect(next_frame)
    path = record(qtbot, recorder, plot, tmp_path / "curve.gif", fps=20, max_frames=6)
    assert Path(path) == (tmp_path / "curve.gif").resolve()
    frames = gif_frames(Path(path))
    assert len(frames) == recorder.frames == 6
    assert recorder.grab_method == "screen"  # copies of the window, not repaints
    for (got, _), want in zip(frames, shown, strict=True):
        assert got.shape == want.shape == (160, 240, 3)
        # a 256-colour palette per frame, no dither: all but a few antialiased edge pixels
        assert np.mean(np.abs(got.astype(int) - want.astype(int)) > 24) < 0.01
    assert not np.array_equal(frames[0][0], frames[1][0])  # the motion is in the file
    assert all(delay >= 20 for _, delay in frames)
    assert temps_in(tmp_path) == []


def test_an_unchanged_widget_still_gives_one_frame_per_grab(qtbot, recorder, plot, tmp_path):
    # Pillow's save_all would merge these into one frame; the recorder keeps them
    qtbot.wait(200)  # the plot's first paints (its axes size themselves) are over
    path = record(qtbot, recorder, plot, tmp_path / "still.gif", fps=25, max_frames=5)
    frames = gif_frames(Path(path))
    assert len(frames) == 5
    assert all(np.array_equal(f, frames[0][0]) for f, _ in frames)
    assert frames[-1][1] == 40  # the last frame lasts one interval at 25 fps


def test_the_cap_stops_the_recording_by_itself(qtbot, recorder, plot, tmp_path):
    seen = []
    recorder.progress.connect(lambda frames, cap: seen.append((frames, cap)))
    record(qtbot, recorder, plot, tmp_path / "cap.gif", fps=50, max_frames=4)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert recorder.state == "idle" and not recorder.is_recording
    assert Image.open(tmp_path / "cap.gif").n_frames == 4


def test_stop_ends_the_recording_with_the_frames_so_far(qtbot, recorder, plot, tmp_path):
    recorder.start(plot, tmp_path / "stopped.gif", fps=25, max_frames=10_000)
    qtbot.waitUntil(lambda: recorder.frames >= 3, timeout=WAIT_MS)
    with qtbot.waitSignal(recorder.finished, timeout=WAIT_MS):
        recorder.stop()
        recorded = recorder.frames
    assert 3 <= recorded < 10_000
    assert Image.open(tmp_path / "stopped.gif").n_frames == recorded
    assert temps_in(tmp_path) == []


def test_large_frames_are_scaled_down_to_fit(qtbot, recorder, plot, tmp_path):
    path = record(qtbot, recorder, plot, tmp_path / "small.gif", max_frames=2, max_size=(120, 120))
    assert Image.open(path).size == (120, 80)  # 240x160 halved: the aspect kept


def test_a_panel_inside_a_window_is_recorded_alone(qtbot, recorder, tmp_path):
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    window = QWidget()
    window.setStyleSheet("background: #ffffff;")
    layout = QVBoxLayout(window)
    layout.addWidget(QLabel("a title above the panel"))
    panel = QLabel()
    panel.setStyleSheet("background: #ff0000;")
    panel.setFixedSize(100, 50)
    layout.addWidget(panel)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    path = record(qtbot, recorder, panel, tmp_path / "panel.gif", max_frames=1)
    [(frame, _)] = gif_frames(Path(path))
    assert frame.shape == (50, 100, 3)
    assert (frame.reshape(-1, 3) == [255, 0, 0]).all()  # the panel's pixels, nothing around


CHILD = textwrap.dedent(
    """
    import sys, time
    from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget
    app = QApplication(sys.argv)
    from rnnviz.gui.recording import Recorder
    window = QWidget()
    window.setStyleSheet("background: #ffffff;")
    layout = QVBoxLayout(window)
    layout.addWidget(QLabel("title"))  # a narrow window: offscreen's copy of it was cut
    panel = QLabel()
    panel.setStyleSheet("background: #ff0000;")
    panel.setFixedSize(100, 50)
    layout.addWidget(panel)
    window.show()
    shown = time.monotonic() + 0.3  # exposed and painted: the window's copy can be taken
    while time.monotonic() < shown:
        app.processEvents()
        time.sleep(0.005)
    recorder, ended = Recorder(), []
    recorder.finished.connect(ended.append)
    recorder.failed.connect(ended.append)
    recorder.start(panel, sys.argv[1], max_frames=2, max_size=(1000, 1000))
    deadline = time.monotonic() + 30
    while not ended and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    print(ended, recorder.grab_method)
    """
)


def test_frames_have_the_physical_size_at_a_device_pixel_ratio_of_two(tmp_path):
    # the ratio is fixed when the QApplication starts, so a child process gets its own
    path = tmp_path / "hidpi.gif"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": "2"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert str(path) in result.stdout, result.stdout
    [(frame, _), _] = gif_frames(path)
    assert frame.shape == (100, 200, 3)  # the 100x50 panel at twice the pixels
    assert (frame.reshape(-1, 3) == [255, 0, 0]).all()


def test_frames_are_painted_where_the_window_cannot_be_copied(
    qtbot, recorder, plot, tmp_path, monkeypatch
):
    monkeypatch.setattr(recording, "_grab_from_screen", lambda widget: None)  # as on Wayland
    path = record(qtbot, recorder, plot, tmp_path / "painted.gif", fps=20, max_frames=3)
    assert recorder.grab_method == "render"
    assert 0 < recorder.fps <= 20
    assert Image.open(path).n_frames == 3


# --------------------------------------------------------------------------- the bar


def test_the_record_bar_shows_progress_and_stops_the_recording(qtbot, recorder, plot, tmp_path):
    bar = RecordBar(recorder)
    qtbot.addWidget(bar)
    assert bar.isHidden()
    recorder.start(plot, tmp_path / "bar.gif", fps=25, max_frames=500)
    assert not bar.isHidden()
    assert bar.bar.maximum() == 500
    qtbot.waitUntil(lambda: recorder.frames >= 2, timeout=WAIT_MS)
    assert bar.bar.value() == recorder.frames
    assert bar.count.text() == f"{recorder.frames} / 500 frames"
    with qtbot.waitSignal(recorder.finished, timeout=WAIT_MS):
        qtbot.mouseClick(bar.stop_button, Qt.MouseButton.LeftButton)
        assert not bar.stop_button.isEnabled()
    assert bar.isHidden()
    assert Image.open(tmp_path / "bar.gif").n_frames == recorder.frames


# --------------------------------------------------------------------------- before starting


@pytest.mark.parametrize(
    ("suffix", "missing", "install"),
    [
        (".gif", ("PIL.Image", "PIL.GifImagePlugin"), RECORD_INSTALL),
        (".mp4", ("imageio_ffmpeg",), VIDEO_INSTALL),
    ],
)
def test_a_missing_library_is_one_sentence_with_the_pip_command(
    qtbot, recorder, plot, tmp_path, monkeypatch, suffix, missing, install
):
    for module in missing:
        monkeypatch.setitem(sys.modules, module, None)  # "import module" raises ImportError
    grabs = []
    monkeypatch.setattr(recording, "_grab_from_screen", lambda w: grabs.append(w))
    with pytest.raises(RecordError) as info:
        recorder.start(plot, tmp_path / f"out{suffix}")
    message = str(info.value)
    assert install in message and "\n" not in message
    assert 'pip install "rnnviz[' in message
    assert grabs == [] and recorder.state == "idle"
    assert list(tmp_path.iterdir()) == []


def test_the_install_commands_name_the_extras():
    assert RECORD_INSTALL == 'pip install "rnnviz[record]"'
    assert VIDEO_INSTALL == 'pip install "rnnviz[video]"'


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("folder.gif", "is a folder"),
        ("missing/out.gif", "does not exist"),
        ("out.avi", ".gif or .mp4"),
    ],
)
def test_a_bad_path_is_refused_before_anything_is_grabbed(
    qtbot, recorder, plot, tmp_path, monkeypatch, name, match
):
    (tmp_path / "folder.gif").mkdir()
    grabs = []
    monkeypatch.setattr(recording, "_grab_from_screen", lambda w: grabs.append(w))
    with pytest.raises(RecordError, match=match) as info:
        recorder.start(plot, tmp_path / name)
    assert "\n" not in str(info.value)
    assert grabs == [] and recorder.state == "idle"
    assert temps_in(tmp_path) == []


def test_check_recording_names_the_format(tmp_path):
    assert check_recording(tmp_path / "a.GIF") == ".gif"


def test_a_hidden_widget_or_a_second_start_is_refused(qtbot, recorder, plot, tmp_path):
    hidden = QLabel("not shown")
    qtbot.addWidget(hidden)
    with pytest.raises(RecordError, match="not shown"):
        recorder.start(hidden, tmp_path / "hidden.gif")
    recorder.start(plot, tmp_path / "first.gif", max_frames=10_000)
    with pytest.raises(RecordError, match="stop it"):
        recorder.start(plot, tmp_path / "second.gif")
    with qtbot.waitSignal(recorder.finished, timeout=WAIT_MS):
        recorder.stop()
    assert not (tmp_path / "second.gif").exists()


def test_a_dead_recorders_temp_file_is_cleaned_up(qtbot, recorder, plot, tmp_path):
    # a recorder killed mid-write left its temp file (no lock held any more)
    stale = tmp_path / f".old.gif.0123456789abcdef{TMP_SUFFIX}"
    stale.write_bytes(b"GIF89a...")
    record(qtbot, recorder, plot, tmp_path / "old.gif", max_frames=1)
    assert not stale.exists()


# --------------------------------------------------------------------------- failures


def test_a_write_failure_is_one_sentence_and_leaves_no_file(
    qtbot, recorder, plot, tmp_path, monkeypatch
):
    real_add = recording._GifWriter.add

    def fill_disk(self, array, stamp):
        if self._previous is not None:
            raise OSError(28, "No space left on device")
        real_add(self, array, stamp)

    monkeypatch.setattr(recording._GifWriter, "add", fill_disk)
    with qtbot.waitSignal(recorder.failed, timeout=WAIT_MS) as failed:
        recorder.start(plot, tmp_path / "full.gif", fps=25, max_frames=100)
    message = failed.args[0]
    assert "No space left on device" in message and "\n" not in message
    assert recorder.state == "idle"
    assert list(tmp_path.iterdir()) == []  # no temp, no file


def test_abort_writes_nothing_and_ends_the_thread(qtbot, recorder, plot, tmp_path):
    recorder.start(plot, tmp_path / "aborted.gif", fps=25, max_frames=10_000)
    qtbot.waitUntil(lambda: recorder.frames >= 2, timeout=WAIT_MS)
    encoder = recorder._encoder
    qtbot.waitUntil(lambda: len(temps_in(tmp_path)) == 1, timeout=WAIT_MS)  # it was writing
    with qtbot.waitSignal(recorder.failed, timeout=WAIT_MS) as failed:
        recorder.abort()
    assert "cancelled" in failed.args[0]
    assert encoder.isFinished()
    assert list(tmp_path.iterdir()) == []


def test_the_app_quitting_aborts_a_recording(qtbot):
    app = QCoreApplication.instance()
    signal = SIGNAL("aboutToQuit()")
    before = app.receivers(signal)
    rec = Recorder()
    assert app.receivers(signal) == before + 1  # connected to abort (emitting it would end
    shiboken6.delete(rec)  # pyqtgraph's clean-up for every later test)


def test_deleting_the_recorder_ends_its_thread_and_removes_the_temp(qtbot, plot, tmp_path):
    rec = Recorder()
    rec.start(plot, tmp_path / "deleted.gif", fps=25, max_frames=10_000)
    qtbot.waitUntil(lambda: rec.frames >= 2, timeout=WAIT_MS)
    encoder = rec._encoder
    shiboken6.delete(rec)  # as a parent deleting it would
    assert encoder.isFinished()
    assert list(tmp_path.iterdir()) == []


def test_the_recorded_panel_closing_fails_the_recording(qtbot, recorder, tmp_path):
    label = QLabel("soon gone")
    label.resize(120, 40)
    label.show()
    qtbot.waitExposed(label)
    recorder.start(label, tmp_path / "gone.gif", fps=25, max_frames=10_000)
    with qtbot.waitSignal(recorder.failed, timeout=WAIT_MS) as failed:
        shiboken6.delete(label)
    assert "closed" in failed.args[0]
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- MP4


def test_mp4_when_the_video_extra_is_installed(qtbot, recorder, plot, tmp_path):
    ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="MP4 needs rnnviz[video]")
    path = record(qtbot, recorder, plot, tmp_path / "clip.mp4", fps=20, max_frames=5)
    frames, _ = ffmpeg.count_frames_and_secs(path)
    # a frame late by more than half an interval is repeated to hold the time
    assert frames >= 5
    reader = ffmpeg.read_frames(path)
    meta = next(reader)
    assert tuple(meta["size"]) == (240, 160)  # even sides, as H.264's yuv420p needs
    reader.close()
    assert temps_in(tmp_path) == [] and os.path.getsize(path) > 0

"""File ▸ Log to TensorBoard…: the engine process writes the event files (never the GUI
process); a missing package or a bad folder is said in one line and nothing is sent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog

from rnnviz.core import tensorboard_log as tb


def choose_folder(monkeypatch: pytest.MonkeyPatch, path: str | Path | None) -> list[int]:
    """The folder dialog answers ``path`` (None: it must not open); returns its call count."""
    calls: list[int] = []

    def ask(*args: object, **kwargs: object) -> str:
        assert path is not None, "the folder dialog opened"
        calls.append(1)
        return str(path)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(ask))
    return calls


def test_a_missing_package_is_said_before_any_dialog(make_window, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    window = make_window(start=False)
    choose_folder(monkeypatch, None)
    action = window.actions_by_name["act_tensorboard"]
    action.trigger()
    assert not action.isChecked()
    assert window.banner_text() == tb.MISSING_MESSAGE
    assert "pip install 'rnnviz[tensorboard]'" in window.statusBar().currentMessage()
    assert window.engine.tensorboard_dir is None


def test_a_file_is_refused_in_one_line(make_window, monkeypatch, tmp_path) -> None:
    pytest.importorskip("tensorboard")
    file = tmp_path / "notes.txt"
    file.write_text("x")
    window = make_window(start=False)
    calls = choose_folder(monkeypatch, file)
    action = window.actions_by_name["act_tensorboard"]
    action.trigger()
    assert calls == [1]
    assert not action.isChecked()
    assert window.banner_text() == (
        f"Not logging to TensorBoard: {file} exists and is not a folder: give a folder for the logs"
    )
    assert window.engine.tensorboard_dir is None


def test_the_engine_process_writes_the_logs(make_window, monkeypatch, qtbot, tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    window = make_window()
    choose_folder(monkeypatch, tmp_path)
    action = window.actions_by_name["act_tensorboard"]
    action.trigger()
    assert action.isChecked()
    assert window.engine.tensorboard_dir == str(tmp_path)
    assert "tensorboard --logdir" in window.statusBar().currentMessage()
    window.controller.step(12)
    qtbot.waitUntil(lambda: window.app_state.main.step == 12, timeout=20_000)
    action.trigger()  # unticked: the engine closes (and flushes) its logs
    assert not action.isChecked() and window.engine.tensorboard_dir is None
    engine_pid = window.engine.pid

    def written() -> list[Path]:
        return [p for p in tmp_path.glob("*-main/events.out.tfevents.*") if p.stat().st_size]

    qtbot.waitUntil(lambda: bool(written()), timeout=10_000)
    (events,) = written()
    # the event file's name ends <host>.<pid>.<n>: the engine wrote it, not the window
    assert int(events.name.split(".")[-2]) == engine_pid != os.getpid()
    ea = EventAccumulator(str(events.parent), size_guidance={"scalars": 0, "histograms": 0})

    def complete() -> bool:
        ea.Reload()
        tags = ea.Tags()
        return tb.TAG_LOSS in tags["scalars"] and len(ea.Scalars(tb.TAG_LOSS)) == 12

    qtbot.waitUntil(complete, timeout=10_000)
    assert {tb.TAG_HIDDEN, tb.TAG_WEIGHT + "W_hh"} <= set(ea.Tags()["histograms"])
    assert window.banner_bar.isHidden() or window.banner_text() == ""

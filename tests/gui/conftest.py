"""GUI test setup: offscreen Qt, row-major images, and no QThread left running.

The platform is set at import, before pytest-qt creates the QApplication.
"""

from __future__ import annotations

import os
import traceback
import weakref

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QThread  # noqa: E402

pg.setConfigOptions(imageAxisOrder="row-major")

# The offscreen platform warns on every top-level show(); qt_log_level_fail would fail on it.
OFFSCREEN_NOISE = r"This plugin does not support propagateSizeHints\(\)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


@pytest.fixture(autouse=True)
def _fail_on_running_qthreads(monkeypatch, qtbot):
    """Fail a test that leaves a QThread it started still running (napari's fixture).

    Destroying a running QThread aborts the interpreter, so a leak here would crash a later
    test far from its cause; the failure names where the thread was started instead.
    """
    started: weakref.WeakKeyDictionary[QThread, str] = weakref.WeakKeyDictionary()
    base_start = QThread.start

    def start_and_remember(self, *args, **kwargs):
        started[self] = "".join(traceback.format_stack(limit=6)[:-1])
        return base_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", start_and_remember)
    yield
    running = []
    for thread, where in list(started.items()):
        try:
            if thread.isRunning():
                running.append((thread, where))
        except RuntimeError:  # the C++ object is already gone: not running
            continue
    for thread, _ in running:
        try:
            thread.quit()
            qtbot.waitUntil(thread.isFinished, timeout=2000)
        except (RuntimeError, AssertionError):
            pass
    if running:
        details = "\n".join(where for _, where in running)
        pytest.fail(f"{len(running)} QThread(s) left running by the test, started at:\n{details}")

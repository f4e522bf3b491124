"""Every test: Python's cyclic garbage collector runs on the GUI thread only, as in the app
(``rnnviz.gui.collector``): a test that uses Qt turns it on, and every test's teardown
collects what the timer would (so a test that never runs the event loop grows nothing)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread(request: pytest.FixtureRequest):
    if "qtbot" in request.fixturenames or "qapp" in request.fixturenames:
        request.getfixturevalue("qapp")
        from rnnviz.gui.collector import collect_on_gui_thread

        collect_on_gui_thread()
    yield
    import sys

    collector = sys.modules.get("rnnviz.gui.collector")
    if collector is not None:
        collector.collect_now()

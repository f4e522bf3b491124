"""The window on a real X server (Xvfb through pytest-xvfb), not only offscreen: the xcb
platform plugin loads, the window shows, trains a few steps, is grabbed and closes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_the_window_trains_and_closes_on_an_x_display(xvfb, tmp_path) -> None:
    if xvfb is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    shot = tmp_path / "xcb.png"
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=f":{xvfb.display}")
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "rnnviz", "--screenshot", str(shot), "--train-steps", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "screenshot at step 5" in done.stdout
    assert shot.stat().st_size > 10_000
    assert "Traceback" not in done.stderr

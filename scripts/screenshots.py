"""The README's gradient-debugging screenshots, taken offscreen with the real window and engine.

    .venv/bin/python scripts/screenshots.py gradflow assets/gradflow_delay.png
    .venv/bin/python scripts/screenshots.py compare assets/compare_clipping.png

``gradflow``: the synthetic delay task (the first letter of each group must be remembered
``delay_k`` characters later), tanh, after some training, the gradient-flow dock raised on
the probe string: ‖∂L_t/∂H_k‖ falls geometrically with the distance t − k (vanishing).

``compare``: the delay task, ReLU, lr 2, clipping on (θ = 1), and a compare run with
clipping off (Training ▸ Compare run… ▸ Clipping off), trained side by side until the
unclipped run diverges: both runs' curves, and the banner explaining the divergence.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from rnnviz.core.config import RunConfig  # noqa: E402
from rnnviz.core.messages import Divergence, Step  # noqa: E402
from rnnviz.gui import plotting  # noqa: E402
from rnnviz.gui.panels.compare_dialog import clip_preset  # noqa: E402
from rnnviz.gui.state.settings import SettingsStore  # noqa: E402
from rnnviz.gui.window.main_window import MainWindow  # noqa: E402

SIZE = (1600, 1000)
TIMEOUT_S = 240.0
# two groups of the delay task: each closing letter repeats the group's first one
DELAY_PROBE = "bzwxwxwxwxb dyyxzywyzyd a"


def wait_until(app: QApplication, done: Callable[[], bool], what: str) -> None:
    start = time.monotonic()
    while not done():
        app.processEvents()
        time.sleep(0.005)
        if time.monotonic() - start > TIMEOUT_S:
            raise TimeoutError(f"gave up waiting for {what}")


def settle(app: QApplication, window: MainWindow, seconds: float = 0.6) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        window.redraw.redraw_all()
        time.sleep(0.01)


def open_window(app: QApplication, config: RunConfig, settings_dir: str) -> MainWindow:
    settings = SettingsStore(Path(settings_dir) / "s.json")
    window = MainWindow(config, settings=settings, persist=False)
    window.resize(*SIZE)
    window.show()
    window.start_engine()
    wait_until(
        app,
        lambda: window.app_state.run_info is not None and window.app_state.snapshot is not None,
        "engine",
    )
    return window


def train(app: QApplication, window: MainWindow, steps: int) -> None:
    target = window.app_state.main.step + steps
    window.controller.send(Step(steps))
    wait_until(
        app,
        lambda: window.app_state.main.step >= target or window.app_state.divergence is not None,
        "training",
    )
    wait_until(app, lambda: window.app_state.main.state != "training", "the pause")


def gradflow_shot(app: QApplication, path: str, settings_dir: str) -> None:
    config = RunConfig().replace(
        corpus={"source": "synthetic:delay", "delay_k": 10},
        model={"kind": "fast", "activation": "tanh", "hidden_size": 32},
        train={"batch_size": 256, "num_steps": 32, "lr": 1.0, "clip_theta": 1.0},
    )
    window = open_window(app, config, settings_dir)
    window.docks["dock_gradflow"].raise_()
    window.panels.gradflow.tabs.setCurrentIndex(0)  # the probe string
    train(app, window, 300)
    window.panels.probe_text.line_edit().setText(DELAY_PROBE)
    wait_until(
        app,
        lambda: (
            window.probe_result is not None
            and window.probe_result.text.startswith("bzw")
            and window.probe_result.grad_flow is not None
        ),
        "the probe",
    )
    window.panels.time_cursor.set_cursor(21)  # 'y' before the group's closing 'd'
    window.probe_display.move_cursor(window.panels.time_cursor.cursor())
    settle(app, window)
    grab(window, path)


def compare_shot(app: QApplication, path: str, settings_dir: str) -> None:
    config = RunConfig().replace(
        corpus={"source": "synthetic:delay", "delay_k": 10},
        model={"kind": "fast", "activation": "relu", "hidden_size": 32},
        train={
            "batch_size": 256,
            "num_steps": 32,
            "lr": 2.0,
            "clip_theta": 1.0,
            "val_every": 25,
            "seed": 3,  # the clipped run stays calm; the unclipped one spikes at step 136
        },
    )
    window = open_window(app, config, settings_dir)
    window.panels.probe_text.line_edit().setText(DELAY_PROBE)
    preset = clip_preset(window.app_state.config)
    window.controller.fork(preset.changes, preset.label)
    wait_until(app, lambda: bool(window.app_state.compare_runs()), "the compare run")
    window.docks["dock_gradflow"].raise_()
    window.panels.gradflow.tabs.setCurrentIndex(1)  # training: σ_max(W_hh) of both runs
    window.panels.gradflow.set_heatmap_run(1)  # the training flow of the unclipped run
    d = window.docks  # the gradient-flow plots are the point here: more height for them
    window.resizeDocks(
        [d["dock_curves"], d["dock_probe_text"], d["dock_hidden"]],
        [330, 170, 420],
        Qt.Orientation.Vertical,
    )
    for _ in range(20):
        train(app, window, 25)
        if window.app_state.divergence is not None:
            break
    if window.app_state.divergence is None:
        print("no divergence: the screenshot shows two healthy runs", file=sys.stderr)
    settle(app, window)
    grab(window, path)


def grab(window: MainWindow, path: str) -> None:
    window.repaint()
    if not window.grab().save(path):
        raise OSError(f"could not write {path}")
    divergence: Divergence | None = window.app_state.divergence
    print(
        f"{path}: step {window.app_state.main.step}, runs {window.app_state.compare_runs()}, "
        f"divergence {None if divergence is None else (divergence.run_id, divergence.step)}"
    )
    window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state", choices=("gradflow", "compare"))
    parser.add_argument("path")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(["rnnviz"])
    plotting.configure_pyqtgraph()  # as the app
    with tempfile.TemporaryDirectory() as settings_dir:
        shot = gradflow_shot if args.state == "gradflow" else compare_shot
        shot(app, args.path, settings_dir)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The state layer loads no widget module: it is usable (and tested) without a window."""

from __future__ import annotations

import subprocess
import sys


def test_the_state_layer_imports_no_widgets_and_no_pyqtgraph() -> None:
    code = (
        "import sys\n"
        "import rnnviz.gui.state.app_state, rnnviz.gui.state.controller, "
        "rnnviz.gui.state.probe_scheduler, rnnviz.gui.state.histories, "
        "rnnviz.gui.state.engine, rnnviz.gui.state.settings\n"
        "drawing = ('PySide6.QtWidgets', 'PySide6.QtGui', 'pyqtgraph')\n"
        "bad = [m for m in drawing if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "", done.stdout

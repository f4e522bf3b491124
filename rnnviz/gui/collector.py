"""Python's cyclic garbage collector, run on the GUI thread only.

Left automatic, a collection runs in whichever thread allocates past the threshold: the probe,
film and saturation threads, the engine's reader, a session file's writer. A garbage cycle
that holds Qt objects (the plot items of a closed dialog or window, a replaced panel) is then
destroyed on that thread while the GUI thread paints or lays out the same scene. The full test
suite crashed or hung that way now and then, never in the same test: a segfault in an
ImageItem's paint, a hang in an AxisItem's boundingRect, another in a signal disconnect while
a second window was built. pyqtgraph ships the remedy (its ``util.garbage_collector``): turn
automatic collection off and collect from a timer on the GUI thread, by the same thresholds.
"""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector

# often enough that the youngest generation stays small (a collection of it takes well
# under a millisecond), so no pass of the event loop waits long for one
INTERVAL_S = 0.1

_collector: GarbageCollector | None = None


def collect_on_gui_thread() -> GarbageCollector:
    """Turn automatic collection off and collect from the GUI thread's event loop instead
    (idempotent; call on the GUI thread once the QApplication exists)."""
    global _collector
    if _collector is None:
        _collector = GarbageCollector(interval=INTERVAL_S)
    gc.disable()  # again: code that turned it back on (it should restore what it found)
    return _collector


def collect_now() -> None:
    """What the timer's next tick would collect, now (a test's teardown, between windows)."""
    if _collector is not None:
        _collector.check()

"""Cyclic garbage is collected on the GUI thread, never on a worker thread (gui.collector)."""

from __future__ import annotations

import gc
import threading

from rnnviz.gui.collector import INTERVAL_S, collect_on_gui_thread


class _Cycle:
    def __init__(self, seen: list[str]) -> None:
        self.me = self
        self.seen = seen

    def __del__(self) -> None:
        self.seen.append(threading.current_thread().name)


def test_garbage_made_on_a_worker_thread_is_collected_on_the_gui_thread(qtbot):
    collect_on_gui_thread()
    assert not gc.isenabled()
    seen: list[str] = []
    kept: list[list[list[int]]] = []

    def worker() -> None:
        _Cycle(seen)  # garbage at once, but only the cyclic collector can free it
        # live containers far past every generation's threshold: automatic collection
        # would run here, on this thread
        kept.append([[] for _ in range(200_000)])

    thread = threading.Thread(target=worker, name="worker")
    thread.start()
    thread.join()
    assert seen == []  # not on the worker
    qtbot.waitUntil(lambda: bool(seen), timeout=int(20 * INTERVAL_S * 1000))
    assert seen == [threading.main_thread().name]

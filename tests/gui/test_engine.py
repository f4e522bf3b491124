"""EngineClient: the engine process, the reader thread, latest-wins snapshots, shutdown, death."""

from __future__ import annotations

import queue

import numpy as np
import psutil
import pytest
from PySide6.QtCore import QObject, Slot

from rnnviz.core.config import RunConfig
from rnnviz.core.messages import (
    Failure,
    ParamSnapshot,
    Pause,
    RunInfo,
    Save,
    Saved,
    Start,
    StateChanged,
    Step,
)
from rnnviz.gui.state.engine import EngineClient, EngineDied, EventReader

WAIT_MS = 30_000  # spawning the engine imports torch in a fresh process


@pytest.fixture
def client(qtbot, tiny_config, event_log):
    log = event_log
    engine = EngineClient()
    engine.received.connect(log.on_event)
    engine.log = log
    engine.start(tiny_config)
    try:
        qtbot.waitUntil(lambda: bool(log.of(RunInfo) and log.of(ParamSnapshot)), timeout=WAIT_MS)
        yield engine
    finally:
        engine.shutdown()


def test_start_step_and_shutdown(client, qtbot, tiny_config):
    log = client.log
    info = log.of(RunInfo)[0]
    assert info.config == tiny_config
    assert client.send(Step(3))
    qtbot.waitUntil(
        lambda: len(log.records()) == 3 and log.last_state() == "paused", timeout=WAIT_MS
    )
    assert [r.step for r in log.records()] == [1, 2, 3]
    pid, reader = client.pid, client.reader
    client.shutdown()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert reader.isFinished()
    assert not client.is_running()
    assert not client.send(Start())  # nothing to send to


def test_engine_process_does_not_load_qt(client):
    maps = psutil.Process(client.pid).memory_maps()
    loaded = " ".join(m.path for m in maps)
    assert "torch" in loaded  # the engine did import its own world
    assert "Qt6Core" not in loaded and "PySide6" not in loaded


def test_shutdown_while_training_is_clean(client, qtbot):
    client.send(Start())
    qtbot.waitUntil(lambda: len(client.log.records()) > 0, timeout=WAIT_MS)
    pid = client.pid
    client.shutdown(timeout=3.0)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    client.shutdown()  # twice is fine


def test_save_then_shutdown_keeps_the_checkpoint(client, qtbot, tmp_path, tiny_config):
    from rnnviz.core.checkpoint import load_checkpoint

    client.send(Step(2))
    qtbot.waitUntil(lambda: client.log.last_state() == "paused", timeout=WAIT_MS)
    path = tmp_path / "ck.safetensors"
    client.send(Save(str(path)))
    client.shutdown()  # Save is served before Stop: the write is never cut short
    ckpt = load_checkpoint(path)
    assert ckpt.config == tiny_config
    qtbot.waitUntil(lambda: bool(client.log.of(Saved)), timeout=WAIT_MS)


def test_engine_death_is_reported_and_restart_works(client, qtbot, tiny_config):
    log = client.log
    client.process.kill()
    qtbot.waitUntil(lambda: bool(log.of(EngineDied)), timeout=WAIT_MS)
    died = log.of(EngineDied)[0]
    assert isinstance(died, Failure) and died.fatal
    assert not client.is_running()
    assert not client.send(Step(1))
    client.restart(tiny_config)
    qtbot.waitUntil(lambda: len(log.of(RunInfo)) == 2, timeout=WAIT_MS)
    assert client.send(Step(1))
    qtbot.waitUntil(lambda: len(log.records()) == 1, timeout=WAIT_MS)


def test_pause_command_round_trip(client, qtbot):
    client.send(Start())
    qtbot.waitUntil(lambda: client.log.last_state() == "training", timeout=WAIT_MS)
    client.send(Pause())
    qtbot.waitUntil(lambda: client.log.last_state() == "paused", timeout=WAIT_MS)


# ------------------------------------------------------------------ the reader, no process


class AliveProcess:
    exitcode = None

    def is_alive(self) -> bool:
        return True


class SnapshotTaker(QObject):
    def __init__(self, reader: EventReader, take: bool) -> None:
        super().__init__()
        self.reader = reader
        self.take = take
        self.events: list[object] = []

    @Slot(object)
    def on_event(self, event: object) -> None:
        self.events.append(event)
        if self.take and isinstance(event, ParamSnapshot):
            self.reader.snapshot_taken()


def snapshot(step: int) -> ParamSnapshot:
    return ParamSnapshot(
        run_id=0,
        step=step,
        config=RunConfig(),
        vocab_tokens=("<unk>", "a"),
        params={"W": np.zeros(1)},
    )


def test_reader_keeps_only_the_newest_snapshot_while_the_gui_is_behind(qtbot):
    outbox: queue.Queue = queue.Queue()
    reader = EventReader(outbox, AliveProcess())
    taker = SnapshotTaker(reader, take=False)
    reader.received.connect(taker.on_event)
    outbox.put(snapshot(1))
    reader.start()
    try:
        qtbot.waitUntil(lambda: len(taker.events) == 1)
        # the GUI has not taken snapshot 1 yet: 2..6 queue up in a size-1 slot
        for step in range(2, 7):
            outbox.put(snapshot(step))
        outbox.put(StateChanged("paused", 6, 0))
        qtbot.waitUntil(
            lambda: (
                reader._snapshot_waiting is not None
                and reader._snapshot_waiting.step == 6
                and outbox.empty()
            )
        )
        reader.snapshot_taken()
        qtbot.waitUntil(lambda: len(taker.events) == 3)
    finally:
        reader.stop()
        reader.wait()
    steps = [e.step for e in taker.events if isinstance(e, ParamSnapshot)]
    assert steps == [1, 6]
    assert isinstance(taker.events[1], StateChanged)  # other events are never held back


def test_reader_passes_events_in_order(qtbot):
    outbox: queue.Queue = queue.Queue()
    reader = EventReader(outbox, AliveProcess())
    taker = SnapshotTaker(reader, take=True)
    reader.received.connect(taker.on_event)
    sent = [StateChanged("paused", i, 0) for i in range(50)]
    for event in sent:
        outbox.put(event)
    reader.start()
    try:
        qtbot.waitUntil(lambda: len(taker.events) == 50)
    finally:
        reader.stop()
        reader.wait()
    assert taker.events == sent

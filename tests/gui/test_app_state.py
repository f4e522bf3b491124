"""AppState applies engine events in one place; the controller turns intents into commands.

No engine process and no window: events are applied by hand and commands are collected by a
fake engine.
"""

from __future__ import annotations

import math

import numpy as np
from _state_helpers import step_record
from PySide6.QtCore import QObject, Signal

from rnnviz.core.config import RunConfig
from rnnviz.core.messages import (
    Divergence,
    Fork,
    MetricsBatch,
    Pause,
    Reset,
    Rollback,
    RunInfo,
    SetHyper,
    Start,
    StateChanged,
    StepRecord,
)
from rnnviz.gui.state.app_state import AppState
from rnnviz.gui.state.controller import Controller, unique_label


def record(step: int) -> StepRecord:
    return step_record(step, np.ones(4), clipped=True, grad_norm_before_clip=1.5)


def info(run_id: int = 0, label: str = "", config: RunConfig | None = None) -> RunInfo:
    return RunInfo(
        run_id=run_id,
        config=config or RunConfig(),
        vocab_tokens=("<unk>", "a"),
        corpus_name="x",
        corpus_chars=10,
        param_names=("W_hh",),
        label=label,
    )


class FakeEngine(QObject):
    received = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[object] = []
        self.running = True
        self.restarts: list[RunConfig] = []

    def send(self, command: object) -> bool:
        if self.running:
            self.sent.append(command)
        return self.running

    def is_running(self) -> bool:
        return self.running

    def restart(self, config: RunConfig) -> None:
        self.restarts.append(config)
        self.running = True

    def shutdown(self) -> None:
        self.running = False


def test_one_history_per_run_truncated_once_on_rollback(qtbot) -> None:
    state = AppState(RunConfig())
    state.apply(info())
    state.apply(info(1, "clip off"))
    state.apply(MetricsBatch(0, tuple(record(s) for s in range(1, 11))))
    state.apply(MetricsBatch(1, tuple(record(s) for s in range(1, 6))))
    assert state.main.step == 10 and state.status(1).step == 5
    assert state.records_received == 10
    before = state.histories.version()
    with qtbot.waitSignal(state.history_truncated):
        state.apply(StateChanged("paused", step=4, epoch=0, run_id=0))  # a rollback to step 4
    assert state.histories.last_step(0) == 4
    assert state.histories.run(0).flow.last_step == 4
    assert state.histories.version() != before
    # a batch that goes back drops the abandoned steps first
    state.apply(MetricsBatch(1, (record(3),)))
    assert list(state.histories.metrics(1).columns()["step"]) == [1, 2, 3]


def test_runs_come_and_go_and_a_main_run_info_starts_every_curve_again(qtbot) -> None:
    state = AppState(RunConfig())
    state.apply(info())
    with qtbot.waitSignal(state.runs_changed):
        state.apply(info(1, "relu"))
    assert state.compare_runs() == {1: "relu"} and state.legend_label(0) == "main"
    state.apply(MetricsBatch(1, (record(1),)))
    state.apply(MetricsBatch(0, (record(1),)))
    state.apply(info(config=RunConfig().replace(train={"lr": 0.5})))
    assert state.config.train.lr == 0.5
    assert state.histories.last_step(0) is None and state.histories.last_step(1) is None
    state.apply(StateChanged("stopped", step=0, epoch=0, run_id=1))  # CloseRun confirmed
    assert state.compare_runs() == {} and state.legend_label(0) == ""
    state.apply(MetricsBatch(1, (record(2),)))  # late news of a closed run: ignored
    assert not state.histories.has(1)


def test_theta_lives_in_the_state_and_the_controller_validates_it_once(qtbot) -> None:
    state = AppState(RunConfig())
    engine = FakeEngine()
    controller = Controller(state, engine)  # type: ignore[arg-type]
    rejected: list[str] = []
    controller.rejected.connect(rejected.append)
    with qtbot.waitSignal(state.config_changed):
        assert controller.set_hyper(clip_theta=2.5, clip_enabled=True)
    assert state.config.train.clip_theta == 2.5
    assert engine.sent == [SetHyper(lr=None, clip_theta=2.5, clip_enabled=True)]
    assert not controller.set_hyper(clip_theta=-1.0)
    assert rejected and state.config.train.clip_theta == 2.5 and len(engine.sent) == 1


def test_a_divergence_pauses_and_rollback_and_resume_send_the_commands(qtbot) -> None:
    state = AppState(RunConfig())
    engine = FakeEngine()
    controller = Controller(state, engine)  # type: ignore[arg-type]
    state.apply(info())
    state.apply(StateChanged("training", step=120, epoch=0))
    event = Divergence(
        run_id=0,
        step=120,
        reason="nonfinite",
        loss=math.nan,
        grad_norm_before_clip=math.inf,
        likely_cause="",
        rollback_steps=(50, 100),
    )
    engine.received.emit(event)  # as the reader thread delivers it
    assert state.divergence is event and engine.sent == [Pause()]
    assert controller.rollback()
    assert engine.sent[-1] == Rollback(100, run_id=0) and state.divergence is None
    assert not controller.rollback()  # nothing shown: nothing to roll back to
    state.apply(StateChanged("diverged", step=120, epoch=0))
    engine.received.emit(event)
    engine.sent.clear()
    controller.resume_with_clipping()
    assert engine.sent == [
        Rollback(100, run_id=0),
        SetHyper(lr=None, clip_theta=1.0, clip_enabled=True),
        Start(),
    ]
    assert state.config.train.clip_enabled


def test_fork_names_runs_apart_and_reset_restarts_a_dead_engine(qtbot) -> None:
    state = AppState(RunConfig())
    engine = FakeEngine()
    controller = Controller(state, engine)  # type: ignore[arg-type]
    state.apply(info(1, "clip off"))
    controller.fork({"train": {"clip_enabled": False}}, "clip off", reset=True)
    assert engine.sent == [Fork({"train": {"clip_enabled": False}}, label="clip off (2)"), Reset()]
    assert unique_label("main", {"main", "main (2)"}) == "main (3)"
    engine.running = False
    controller.reset()
    assert engine.restarts == [state.config] and state.main.state == "starting"
    assert state.compare_runs() == {}  # a fresh engine has the main run only


def test_a_handler_error_is_reported_not_raised(qtbot, capsys) -> None:
    state = AppState(RunConfig())
    engine = FakeEngine()
    controller = Controller(state, engine)  # type: ignore[arg-type]
    failures: list[object] = []
    state.failure.connect(failures.append)
    engine.received.emit(MetricsBatch(0, (object(),)))  # type: ignore[arg-type]
    assert failures and "Internal error while handling MetricsBatch" in failures[0].message
    assert controller.state is state


def test_a_run_that_gives_up_shows_its_rollback_again_and_resume_rolls_back_first(qtbot) -> None:
    """The second stop ("too many non-finite steps in a row") comes without a Divergence
    event: the banner's rollback must come back, and Resume with clipping on must start from
    the last good snapshot, not from the blown-up parameters."""
    state = AppState(RunConfig().replace(train={"clip_enabled": False, "lr": 50.0}))
    engine = FakeEngine()
    controller = Controller(state, engine)  # type: ignore[arg-type]
    state.apply(info(config=state.config))
    event = Divergence(
        run_id=0,
        step=30,
        reason="nonfinite",
        loss=math.nan,
        grad_norm_before_clip=math.inf,
        likely_cause="",
        rollback_steps=(0, 25),
    )
    state.apply(StateChanged("training", step=30, epoch=0))
    engine.received.emit(event)
    state.set_divergence(None)  # dismissed
    assert controller.can_roll_back()  # the menu item still works
    state.apply(StateChanged("training", step=31, epoch=0))  # Play again, from the bad point
    state.apply(StateChanged("diverged", step=35, epoch=0, message="too many non-finite"))
    assert state.divergence is event  # shown again, with its rollback
    engine.sent.clear()
    controller.resume_with_clipping()
    assert engine.sent[0] == Rollback(25, run_id=0)
    assert engine.sent[1:] == [SetHyper(lr=None, clip_theta=1.0, clip_enabled=True), Start()]
    assert state.divergence is None and not controller.can_roll_back()


def test_pressing_play_after_a_divergence_takes_its_banner_down(qtbot) -> None:
    state = AppState(RunConfig())
    state.apply(info())
    state.apply(info(1, "clip off"))
    event = Divergence(
        run_id=1,
        step=9,
        reason="loss_spike",
        loss=30.0,
        grad_norm_before_clip=9.0,
        likely_cause="",
        rollback_steps=(0,),
    )
    state.apply(event)
    assert state.divergence is event
    state.apply(StateChanged("training", step=9, epoch=0))
    assert state.divergence is None and state.last_divergence(1) is event


def test_a_run_worse_than_uniform_guessing_is_called_diverged_and_paused(qtbot) -> None:
    state = AppState(RunConfig())
    engine = FakeEngine()
    controller = Controller(state, engine)  # type: ignore[arg-type]
    state.apply(info())  # a vocabulary of 2: uniform guessing is loss ln 2
    state.apply(StateChanged("training", step=0, epoch=0))
    fired: list[int] = []
    state.useless.connect(fired.append)
    healthy = tuple(step_record(s, loss=0.5) for s in range(1, 121))
    state.apply(MetricsBatch(0, healthy))
    assert fired == [] and state.uselessness(0) == ""
    bad = tuple(step_record(s, loss=5.0) for s in range(121, 200))
    state.apply(MetricsBatch(0, bad))
    assert fired == [0] and "uniform guessing over 2 characters" in state.uselessness(0)
    assert engine.sent == [Pause()] and controller.state is state

from __future__ import annotations

import math
import multiprocessing as mp
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import torch

from rnnviz.core.config import RunConfig
from rnnviz.core.messages import (
    CloseRun,
    Command,
    Divergence,
    Event,
    Failure,
    Fork,
    Load,
    MetricsBatch,
    ParamSnapshot,
    Pause,
    ProbeReply,
    ProbeRequest,
    Reset,
    Rollback,
    RunInfo,
    Save,
    Saved,
    SetHyper,
    Start,
    StateChanged,
    Step,
    StepRecord,
    Stop,
)
from rnnviz.core.session import Session, engine_main, likely_cause

torch.set_num_threads(1)

E = TypeVar("E")


def tiny_config(**train: Any) -> RunConfig:
    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"hidden_size": 8},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )
    return cfg.replace(train=train) if train else cfg


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, cls: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, cls)]

    def records(self, run_id: int = 0) -> list[StepRecord]:
        return [r for b in self.of(MetricsBatch) if b.run_id == run_id for r in b.records]

    def states(self, run_id: int = 0) -> list[str]:
        return [e.state for e in self.of(StateChanged) if e.run_id == run_id]

    def clear(self) -> None:
        self.events.clear()


def make(config: RunConfig | None = None, **kw: Any) -> tuple[Session, Recorder]:
    rec = Recorder()
    return Session(config or tiny_config(), rec, **kw), rec


def test_build_announces_run() -> None:
    session, rec = make()
    (info,) = rec.of(RunInfo)
    assert info.run_id == 0 and info.vocab_tokens[0] == "<unk>"
    assert info.param_names == ("W_xh", "W_hh", "b_h", "W_hq", "b_q")
    (snap,) = rec.of(ParamSnapshot)
    assert snap.step == 0 and not snap.params["W_hh"].flags.writeable
    assert rec.states() == ["idle"]
    assert session.state == "idle"


def test_step_n_trains_exactly_n_then_pauses() -> None:
    session, rec = make(batch_interval_s=1e9)
    rec.clear()
    session.handle(Step(3))
    assert session.run_until_idle() == 3
    assert session.main.trainer.step == 3
    assert rec.states() == ["training", "paused"]
    # one batch for the three steps: flushed at the pause, never one message per step
    (batch,) = rec.of(MetricsBatch)
    assert [r.step for r in batch.records] == [1, 2, 3]
    snaps = rec.of(ParamSnapshot)
    assert snaps and snaps[-1].step == 3
    # the snapshot holds the trained parameters
    w = session.main.model.state_dict()["W_hh"].numpy()
    np.testing.assert_array_equal(snaps[-1].params["W_hh"], w)


def test_metrics_are_batched_by_time() -> None:
    ticks = iter(range(1_000_000))
    session, rec = make(
        batch_interval_s=2.5, snapshot_interval_s=1e9, clock=lambda: float(next(ticks))
    )
    rec.clear()
    session.handle(Step(12))
    session.run_until_idle()
    batches = rec.of(MetricsBatch)
    assert 1 < len(batches) < 12
    assert [r.step for b in batches for r in b.records] == list(range(1, 13))


def test_loop_runs_until_stop_and_serves_commands() -> None:
    session, rec = make()
    inbox: queue.Queue[Command] = queue.Queue()

    def emit(event: Event) -> None:
        rec(event)
        if isinstance(event, StateChanged) and event.state == "paused":
            inbox.put(Stop())

    session.emit = emit
    inbox.put(Step(4))
    session.run(inbox)
    assert session.main.trainer.step == 4
    assert rec.states()[-3:] == ["training", "paused", "stopped"]
    assert session.stopped


def test_start_and_pause_from_the_loop() -> None:
    session, rec = make()
    inbox: queue.Queue[Command] = queue.Queue()
    seen = {"n": 0}

    def emit(event: Event) -> None:
        rec(event)
        if isinstance(event, MetricsBatch):
            seen["n"] += len(event.records)
        if session.training and session.main.trainer.step >= 5:
            inbox.put(Pause())
            inbox.put(Stop())

    session.emit = emit
    inbox.put(Start())
    session.run(inbox)
    assert session.main.trainer.step >= 5
    assert seen["n"] == session.main.trainer.step  # every step reported once
    assert "paused" in rec.states() and rec.states()[-1] == "stopped"


def test_loop_ends_when_the_parent_is_gone() -> None:
    ticks = iter(range(1_000_000))
    session, rec = make(clock=lambda: float(next(ticks)))
    inbox: queue.Queue[Command] = queue.Queue()
    inbox.put(Start())
    session.run(inbox, alive=lambda: session.main.trainer.step < 3)
    assert session.stopped and rec.states()[-1] == "stopped"
    assert rec.of(StateChanged)[-1].message == "the GUI process is gone"


def test_probe_only_the_newest_pending_request() -> None:
    session, rec = make()
    inbox: queue.Queue[Command] = queue.Queue()
    for i, text in enumerate(["mach", "machi", "machine"]):
        inbox.put(ProbeRequest(text, request_id=i))
    inbox.put(Stop())
    session.run(inbox)
    (reply,) = rec.of(ProbeReply)
    assert reply.request_id == 2 and reply.run_id == 0
    assert reply.result.text == "machine"
    assert reply.result.probs.shape == (7, len(session.main.vocab))


def test_bad_probe_is_a_failure() -> None:
    session, rec = make()
    session.handle(ProbeRequest("abc", run_id=5))
    (failure,) = rec.of(Failure)
    assert "no run 5" in failure.message and not failure.fatal


def test_set_hyper_takes_effect_and_bad_values_fail() -> None:
    session, rec = make()
    session.handle(SetHyper(lr=0.5, clip_enabled=False))
    session.handle(Step(1))
    session.run_until_idle()
    (r,) = rec.records()
    assert r.lr == 0.5 and not r.clip_enabled
    assert session.main.config.train.lr == 0.5
    session.handle(SetHyper(lr=-1.0))
    (failure,) = rec.of(Failure)
    assert "lr" in failure.message
    assert session.main.trainer.lr == 0.5


def test_save_load_and_bad_load_keeps_run(tmp_path: Path) -> None:
    session, rec = make()
    session.handle(Step(3))
    session.run_until_idle()
    path = str(tmp_path / "ck.safetensors")
    session.handle(Save(path))
    assert rec.of(Saved) == [Saved(path, 3)]
    session.handle(Step(2))
    session.run_until_idle()
    before = session.main
    garbage = tmp_path / "bad.safetensors"
    garbage.write_bytes(b"\x80\x04not really")
    session.handle(Load(str(garbage)))
    (failure,) = rec.of(Failure)
    assert "pickle" in failure.message
    assert session.main is before and session.main.trainer.step == 5
    rec.clear()
    session.handle(Load(path))
    assert session.main.trainer.step == 3
    assert [type(e) for e in rec.events[:2]] == [RunInfo, ParamSnapshot]
    assert rec.states() == ["paused"]
    # resuming after the load gives the same losses as the original steps 4, 5
    session.handle(Step(2))
    session.run_until_idle()
    again = rec.records()
    fresh, rec2 = make()
    fresh.handle(Step(5))
    fresh.run_until_idle()
    assert [r.loss for r in again] == [r.loss for r in rec2.records()[3:]]


def test_reset_same_seed_same_init_and_new_config() -> None:
    session, rec = make()
    init = {k: v.clone() for k, v in session.main.model.state_dict().items()}
    session.handle(Step(2))
    session.run_until_idle()
    session.handle(Reset())
    assert session.main.trainer.step == 0
    for k, v in session.main.model.state_dict().items():
        assert torch.equal(v, init[k])
    rec.clear()
    session.handle(Reset(tiny_config().replace(model={"hidden_size": 5})))
    (info,) = rec.of(RunInfo)
    assert info.config.model.hidden_size == 5
    assert session.main.model.hidden_size == 5
    assert rec.states() == ["idle"]
    # a reset that cannot be built is a failure and keeps the current run
    before = session.main
    session.handle(Reset(tiny_config().replace(corpus={"source": "/no/such/corpus.txt"})))
    assert "file not found" in rec.of(Failure)[-1].message
    assert session.main is before


def test_fork_same_init_same_data_round_robin() -> None:
    session, rec = make()
    session.handle(Step(2))
    session.run_until_idle()
    rec.clear()
    session.handle(Fork({}, label="copy"))
    session.handle(Fork({"train": {"lr": 0.25}}))
    infos = rec.of(RunInfo)
    assert [i.run_id for i in infos] == [1, 2]
    assert infos[0].label == "copy" and infos[1].config.train.lr == 0.25
    for k, v in session.runs[1].model.state_dict().items():
        assert torch.equal(v, session.main.initial_params[k])
    session.handle(Step(2))
    session.run_until_idle()
    assert [session.runs[i].trainer.step for i in (0, 1, 2)] == [4, 2, 2]
    # no changes: the fork repeats the main run's first steps exactly
    fresh, rec_fresh = make()
    fresh.handle(Step(2))
    fresh.run_until_idle()
    assert [r.loss for r in rec.records(1)] == [r.loss for r in rec_fresh.records()]
    assert [r.lr for r in rec.records(2)] == [0.25, 0.25]
    # close one; the main run cannot be closed
    session.handle(CloseRun(1))
    assert sorted(session.runs) == [0, 2]
    assert rec.states(1)[-1] == "stopped"
    session.handle(CloseRun(0))
    assert "cannot be closed" in rec.of(Failure)[-1].message
    # a bad fork is a failure and leaves the runs alone
    session.handle(Fork({"train": {"batch_size": 0}}))
    assert "batch size" in rec.of(Failure)[-1].message
    assert sorted(session.runs) == [0, 2]
    # reset restarts the forks with their changes
    session.handle(Reset())
    assert session.runs[2].trainer.step == 0 and session.runs[2].config.train.lr == 0.25


def diverging_config() -> RunConfig:
    return tiny_config(lr=9000.0, clip_enabled=False, max_nonfinite_in_row=3).replace(
        model={"activation": "relu"}
    )


def test_divergence_pauses_names_cause_and_rolls_back() -> None:
    session, rec = make(diverging_config())
    session.handle(Start())
    session.run_until_idle(max_rounds=200)
    assert session.state == "paused"
    (div,) = rec.of(Divergence)
    assert div.reason in ("nonfinite", "loss_spike")
    assert "clipping is off" in div.likely_cause
    assert div.rollback_steps == (0,)
    # keep going: the run diverges for good after max_nonfinite_in_row bad steps
    for _ in range(10):
        if session.main.trainer.diverged:
            break
        session.handle(Start())
        session.run_until_idle(max_rounds=200)
    assert session.main.trainer.diverged
    assert "diverged" in rec.states()
    # the parameters are the last good ones
    assert all(torch.isfinite(p).all() for p in session.main.model.parameters())
    session.handle(Start())
    assert "diverged" in rec.of(Failure)[-1].message
    rec.clear()
    session.handle(Rollback(0))
    assert session.main.trainer.step == 0 and not session.main.trainer.diverged
    assert rec.states() == ["paused"]
    assert rec.of(ParamSnapshot)[-1].step == 0


def test_loss_spike_pauses_once_per_streak(monkeypatch: pytest.MonkeyPatch) -> None:
    session, rec = make()
    trainer = session.main.trainer
    real = trainer.train_step

    def spiky() -> StepRecord:
        record = real()
        trainer.last_spike = record.step in (2, 3, 5)
        trainer.last_spike_median = 0.5 if trainer.last_spike else None
        return record

    monkeypatch.setattr(trainer, "train_step", spiky)
    session.handle(Start())
    session.run_until_idle(max_rounds=20)
    assert trainer.step == 2 and session.state == "paused"
    (div,) = rec.of(Divergence)
    assert div.reason == "loss_spike" and div.step == 2 and "jumped" in div.likely_cause
    assert div.recent_median_loss == 0.5  # the trainer's, for "N× its recent median"
    # step 3 spikes too: the same streak, no second alarm; step 5 is a new one
    session.handle(Start())
    session.run_until_idle(max_rounds=20)
    assert trainer.step == 5
    assert [d.step for d in rec.of(Divergence)] == [2, 5]


def test_likely_cause_texts() -> None:
    from rnnviz.core.messages import StepRecord

    base = dict(
        step=1,
        epoch=0,
        loss=math.nan,
        ppl=math.nan,
        grad_norm_before_clip=1e9,
        grad_norm_after_clip=1.0,
        clipped=True,
        lr=1.0,
        clip_theta=1.0,
        clip_enabled=True,
        tokens_per_s=1.0,
        nonfinite=True,
        nonfinite_total=1,
        param_grad_norms={},
        grad_flow=np.zeros(2),
    )
    r = StepRecord(**base)  # type: ignore[arg-type]
    assert "non-finite" in likely_cause(r, "sgd", "nonfinite")
    assert "jumped" in likely_cause(r, "sgd", "loss_spike")
    hi = StepRecord(**{**base, "lr": 5.0})  # type: ignore[arg-type]
    assert "learning rate 5 is high" in likely_cause(hi, "sgd", "nonfinite")
    adam = StepRecord(**{**base, "lr": 0.1})  # type: ignore[arg-type]
    assert "high for adam" in likely_cause(adam, "adam", "nonfinite")
    off = StepRecord(**{**base, "clip_enabled": False})  # type: ignore[arg-type]
    assert likely_cause(off, "sgd", "nonfinite").startswith("clipping is off")


def test_exception_in_a_step_is_a_failure_and_the_loop_lives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session, rec = make()
    trainer = session.main.trainer
    real: Callable[[], StepRecord] = trainer.train_step

    def boom() -> StepRecord:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(trainer, "train_step", boom)
    session.handle(Start())
    session.run_until_idle()
    (failure,) = rec.of(Failure)
    assert "kaboom" in failure.message and "Traceback" in failure.detail
    assert session.state == "paused"
    monkeypatch.setattr(trainer, "train_step", real)
    session.handle(Step(1))
    session.run_until_idle()
    assert trainer.step == 1


def test_engine_main_bad_config_is_fatal_failure(tmp_path: Path) -> None:
    cfg = tiny_config().replace(corpus={"source": str(tmp_path / "missing.txt")})
    inbox: queue.Queue[Command] = queue.Queue()
    outbox: queue.Queue[Event] = queue.Queue()
    engine_main(inbox, outbox, cfg)
    event = outbox.get_nowait()
    assert isinstance(event, Failure) and event.fatal
    assert "file not found" in event.message


def _get(outbox: Any, cls: type[E], pred: Callable[[E], bool] = lambda e: True) -> E:
    while True:
        event = outbox.get(timeout=60)
        if isinstance(event, Failure):
            raise AssertionError(event.message + "\n" + event.detail)
        if isinstance(event, cls) and pred(event):
            return event


def test_engine_main_in_a_spawned_process() -> None:
    ctx = mp.get_context("spawn")
    inbox = ctx.Queue()
    outbox = ctx.Queue()
    proc = ctx.Process(target=engine_main, args=(inbox, outbox, tiny_config()), daemon=True)
    proc.start()
    try:
        _get(outbox, StateChanged, lambda e: e.state == "idle")
        inbox.put(Step(3))
        paused = _get(outbox, StateChanged, lambda e: e.state == "paused")
        assert paused.step == 3
        inbox.put(Stop())
        _get(outbox, StateChanged, lambda e: e.state == "stopped")
        proc.join(timeout=60)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=10)

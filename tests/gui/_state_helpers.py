"""What the panel tests share: an AppState fed with engine events, as the window feeds it.

Plain functions rather than fixtures, so that each test file imports what it uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from rnnviz.core.config import RunConfig
from rnnviz.core.messages import MetricsBatch, RunInfo, StateChanged, StepRecord
from rnnviz.gui.state.app_state import MAIN_RUN, AppState
from rnnviz.gui.state.histories import RunHistories

PARAMS = ("W_xh", "W_hh", "b_h", "W_hq", "b_q")


def make_state(
    capacity: int | None = None, flow_capacity: int | None = None, config: RunConfig | None = None
) -> AppState:
    """A fresh state; ``capacity`` / ``flow_capacity`` bound its histories (before any panel)."""
    state = AppState(config or RunConfig())
    if capacity is not None or flow_capacity is not None:
        sizes = {"capacity": capacity, "flow_capacity": flow_capacity}
        state.histories = RunHistories(**{k: v for k, v in sizes.items() if v is not None})
    return state


def run_info(state: AppState, run_id: int = MAIN_RUN, label: str = "") -> RunInfo:
    return RunInfo(
        run_id=run_id,
        config=state.config,
        vocab_tokens=("a", "b"),
        corpus_name="test",
        corpus_chars=100,
        param_names=PARAMS,
        label=label,
    )


def new_run(state: AppState) -> None:
    """The engine built a new main run (a reset): every run's history starts again."""
    state.apply(run_info(state))


def add_run(state: AppState, run_id: int, label: str) -> None:
    """A compare run exists (the engine forked one)."""
    state.apply(run_info(state, run_id, label))


def close_run(state: AppState, run_id: int) -> None:
    """The engine stopped a compare run."""
    state.apply(StateChanged(state="stopped", step=0, epoch=0, run_id=run_id))


def feed(state: AppState, records: Iterable[StepRecord], run_id: int = MAIN_RUN) -> None:
    """One batch of a run's step records, as the engine sends them."""
    state.apply(MetricsBatch(run_id, tuple(records)))


def rolled_back(state: AppState, step: int, run_id: int = MAIN_RUN) -> None:
    """The run is at ``step`` again (a rollback): the steps after it are abandoned."""
    state.apply(StateChanged(state="paused", step=step, epoch=0, run_id=run_id))


def set_theta(state: AppState, theta: float, clip_enabled: bool = True) -> None:
    """The user set θ (the controller puts it in the one configuration)."""
    train = replace(state.config.train, clip_theta=theta, clip_enabled=clip_enabled)
    state.set_config(replace(state.config, train=train))


def step_record(step: int, flow: object = (1.0, 1.0, 1.0, 1.0), **values: object) -> StepRecord:
    """A plain record of one step (``values`` override its fields)."""
    fields: dict[str, object] = dict(
        step=step,
        epoch=0,
        loss=1.0,
        ppl=math.e,
        grad_norm_before_clip=1.0,
        grad_norm_after_clip=1.0,
        clipped=False,
        lr=1.0,
        clip_theta=1.0,
        clip_enabled=True,
        tokens_per_s=100.0,
        nonfinite=False,
        nonfinite_total=0,
        param_grad_norms={},
        grad_flow=np.asarray(flow, dtype=np.float64),
        w_hh_sigma_max=0.9,
    )
    fields.update(values)
    return StepRecord(**fields)  # type: ignore[arg-type]


class FakeClock:
    """``time.monotonic`` that moves only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

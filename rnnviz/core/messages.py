"""Messages that cross threads and processes: commands to the session, events from it.

All are frozen dataclasses. Arrays in them are owned, read-only NumPy copies, never tensors,
so a receiver can keep them without copying and nobody can change them under it.
``run_id`` names one of several runs trained side by side (0 is the main run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rnnviz.core.config import RunConfig

SessionState = Literal["idle", "training", "paused", "diverged", "stopped"]


def frozen_array(a: Any, dtype: Any = None) -> np.ndarray:
    """An owned, read-only copy (what every message carries)."""
    out = np.array(a, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


# ---------------------------------------------------------------- commands (to the session)


@dataclass(frozen=True)
class Start:
    """Train continuously until Pause."""


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Step:
    """Train exactly ``n`` optimizer steps, then pause."""

    n: int = 1


@dataclass(frozen=True)
class Reset:
    """Rebuild the run from ``config`` (None: the current one). Same seed, same init."""

    config: RunConfig | None = None


@dataclass(frozen=True)
class SetHyper:
    """Change hyperparameters that take effect at the next step, without a reset."""

    lr: float | None = None
    clip_theta: float | None = None
    clip_enabled: bool | None = None


@dataclass(frozen=True)
class ProbeRequest:
    text: str
    request_id: int = 0
    top_k: int = 5
    run_id: int = 0


@dataclass(frozen=True)
class Save:
    path: str


@dataclass(frozen=True)
class Load:
    path: str


@dataclass(frozen=True)
class OpenModel:
    """Show someone else's PyTorch model read-only (core/torch_model.py's files) as the main
    run: nothing trains it; a Reset trains a new model of its shape on the corpus."""

    path: str
    spec: str


@dataclass(frozen=True)
class Rollback:
    """Go back to the newest kept good snapshot at or before ``step``."""

    step: int
    run_id: int = 0


@dataclass(frozen=True)
class Fork:
    """Start another run from the same initialisation and data order, with ``changes``.

    ``changes`` is as for ``RunConfig.replace``, e.g. ``{"train": {"clip_enabled": False}}``.
    """

    changes: dict[str, dict[str, Any]]
    label: str = ""


@dataclass(frozen=True)
class CloseRun:
    run_id: int


@dataclass(frozen=True)
class Stop:
    """End the session loop (the engine process exits)."""


@dataclass(frozen=True)
class LogToTensorBoard:
    """Write every run's training as TensorBoard event files under ``path`` (None: stop)."""

    path: str | None


Command = (
    Start
    | Pause
    | Step
    | Reset
    | SetHyper
    | ProbeRequest
    | Save
    | Load
    | OpenModel
    | Rollback
    | Fork
    | CloseRun
    | Stop
    | LogToTensorBoard
)

# ---------------------------------------------------------------- events (from the session)


@dataclass(frozen=True)
class StepRecord:
    """Everything measured on one optimizer step (skipped steps included, nonfinite=True)."""

    step: int
    epoch: int
    loss: float
    ppl: float
    grad_norm_before_clip: float
    grad_norm_after_clip: float
    clipped: bool
    lr: float
    clip_theta: float
    clip_enabled: bool
    tokens_per_s: float
    nonfinite: bool
    nonfinite_total: int
    param_grad_norms: dict[str, float]
    # ||dL/dH_t|| averaged over the batch, one value per position t of the num_steps window
    grad_flow: np.ndarray
    # largest singular value of W_hh (None for models without one)
    w_hh_sigma_max: float | None = None
    val_ppl: float | None = None
    # Seconds this run has spent training up to the end of this step: the wall-clock time of
    # its optimizer steps and validations so far, summed (Trainer.wall_s). Time paused, time
    # between steps and other runs' steps (a compare session trains round-robin) are left
    # out, so runs compare on their own cost; a rollback gives no time back; a resumed
    # checkpoint continues its count. None: not measured (a metrics CSV from before it was).
    wall_s: float | None = None
    # a task's held-out metric (accuracy, exact match; core.tasks), where val_ppl is measured;
    # None for the language model and between validations
    val_metric: float | None = None


@dataclass(frozen=True)
class RunInfo:
    """Sent after a run is built, reset or loaded: what the panels need to label themselves."""

    run_id: int
    config: RunConfig
    vocab_tokens: tuple[str, ...]
    corpus_name: str
    corpus_chars: int
    param_names: tuple[str, ...]
    label: str = ""
    notes: tuple[str, ...] = ()
    # the model file shown read-only (OpenModel); "" for a run that trains
    opened: str = ""


@dataclass(frozen=True)
class MetricsBatch:
    """Steps since the last batch (the session sends one every ~50 ms, never one per step)."""

    run_id: int
    records: tuple[StepRecord, ...]


@dataclass(frozen=True)
class ParamSnapshot:
    """The latest parameters (latest wins; the GUI probes typed text on these)."""

    run_id: int
    step: int
    config: RunConfig
    vocab_tokens: tuple[str, ...]
    params: dict[str, np.ndarray]


@dataclass(frozen=True)
class StateChanged:
    state: SessionState
    step: int
    epoch: int
    run_id: int = 0
    message: str = ""


@dataclass(frozen=True)
class Divergence:
    """Training paused because a step was non-finite or the loss spiked."""

    run_id: int
    step: int
    reason: str  # "nonfinite" | "loss_spike"
    loss: float
    grad_norm_before_clip: float
    likely_cause: str
    rollback_steps: tuple[int, ...] = ()
    # "loss_spike": the median of the recent losses the spike was judged against
    recent_median_loss: float | None = None


@dataclass(frozen=True)
class ProbeReply:
    request_id: int
    run_id: int
    result: Any  # rnnviz.core.probe.ProbeResult


@dataclass(frozen=True)
class Saved:
    path: str
    step: int


@dataclass(frozen=True)
class Failure:
    """An error in the session; the run itself is kept. ``detail`` holds the traceback."""

    message: str
    detail: str = ""
    fatal: bool = False


Event = (
    RunInfo
    | MetricsBatch
    | ParamSnapshot
    | StateChanged
    | Divergence
    | ProbeReply
    | Saved
    | Failure
)

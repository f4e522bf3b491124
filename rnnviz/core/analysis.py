"""Verdicts and summary numbers the views show, computed from what training and probes recorded.

The GUI draws these and does no arithmetic of its own beyond display (a ``log10`` for a colour
scale, masking what a log axis cannot take). Every function takes plain arrays, or the columns
of a :class:`~rnnviz.core.history.MetricHistory`, so each is tested without Qt. Texts take a
``fmt`` for their numbers, so that the GUI writes them as it writes every other number.

Pure Python and NumPy: no torch, no Qt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

Floats = NDArray[np.float64]
Fmt = Callable[[float], str]

# ------------------------------------------------------------------------- gradient clipping

CLIP_RATE_WINDOW = 100  # the clip rate is over this many newest optimizer steps
NO_CLIP_STATS_TEXT = f"clip rate (last {CLIP_RATE_WINDOW} steps): –   ‖g‖/θ: –"
NO_STEPS_TEXT = "no steps yet"


@dataclass(frozen=True)
class ClipStats:
    """One run's clipping over its newest steps."""

    step: int  # the newest step
    rate: float  # share of the newest steps on which clipping scaled the gradient down
    ratio: float  # the newest ‖g‖ before clipping over θ (not finite when the norm was not)
    theta: float
    clip_enabled: bool
    steps: int  # how many steps the rate is over (at most CLIP_RATE_WINDOW)

    def text(self, fmt: Fmt = "{:g}".format) -> str:
        """The one-run line: ``clip rate (last 100 steps): 12%   latest ‖g‖/θ: 0.8``."""
        state = "" if self.clip_enabled else "   (clipping off)"
        return (
            f"clip rate (last {CLIP_RATE_WINDOW} steps): {self.rate:.0%}   "
            f"latest ‖g‖/θ: {ratio_text(self.ratio, fmt)}{state}"
        )

    def run_text(self, fmt: Fmt = "{:g}".format) -> str:
        """One run among several: ``step 1,200: clip rate 12%, ‖g‖/θ 0.8``."""
        clip = f"clip rate {self.rate:.0%}" if self.clip_enabled else "clipping off"
        return f"step {self.step:,}: {clip}, ‖g‖/θ {ratio_text(self.ratio, fmt)}"


def ratio_text(ratio: float, fmt: Fmt = "{:g}".format) -> str:
    return fmt(ratio) if math.isfinite(ratio) else "non-finite"


def clip_stats(
    recent: Mapping[str, Any],
    theta: float | None = None,
    clip_enabled: bool | None = None,
) -> ClipStats | None:
    """The clip rate and ‖g‖/θ of a run from its newest records (None before its first step).

    ``recent``: columns as :meth:`MetricHistory.recent` gives them (``step``, ``clipped``,
    ``grad_norm_before_clip``, ``clip_theta``, ``clip_enabled``); only the newest
    ``CLIP_RATE_WINDOW`` rows count. ``theta`` / ``clip_enabled``: the run's configured ones,
    which count at once, before any record carries them (the user has just set θ); without
    them, the newest record's.
    """
    steps = np.asarray(recent.get("step", ()))
    if steps.size == 0:
        return None
    n = min(int(steps.size), CLIP_RATE_WINDOW)
    clipped = np.asarray(recent["clipped"], dtype=bool)[-n:]
    own_theta = float(np.asarray(recent["clip_theta"], dtype=np.float64)[-1])
    own_enabled = bool(np.asarray(recent["clip_enabled"], dtype=bool)[-1])
    theta = own_theta if theta is None else float(theta)
    enabled = own_enabled if clip_enabled is None else bool(clip_enabled)
    before = np.float64(np.asarray(recent["grad_norm_before_clip"], dtype=np.float64)[-1])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = float(before / np.float64(theta))
    return ClipStats(
        step=int(steps[-1]),
        rate=float(np.mean(clipped)),
        ratio=ratio,
        theta=theta,
        clip_enabled=enabled,
        steps=n,
    )


def theta_differs(
    theta: float, clip_enabled: bool, main_theta: float, main_clip_enabled: bool
) -> bool:
    """Whether a compare run clips differently from the main run (so its own θ is worth a line):
    it clips, and the main run does not, or at another θ."""
    return clip_enabled and (not main_clip_enabled or theta != main_theta)


def nonfinite_steps(flags: ArrayLike, *values: ArrayLike) -> NDArray[np.bool_]:
    """The steps to mark as non-finite: flagged by the trainer (skipped), or with a value that
    is not finite (a loss so large that ``exp`` overflows)."""
    bad = np.asarray(flags, dtype=bool).copy()
    for column in values:
        bad |= ~np.isfinite(np.asarray(column, dtype=np.float64))
    return bad


# ------------------------------------------------------------------------- vanishing / exploding

# a fitted per-step factor within 1 ± ~1% is called neither vanishing nor exploding
STEADY_LOG10_BAND = 0.005
FIT_FLOOR_LOG10 = -300.0  # 10**x underflows to 0 below about -308: a log plot cannot take 0
LOOK_BACK_STEPS = 10  # the factor text also says what this many steps back multiply by


def log10_masked(values: ArrayLike, mask: ArrayLike | None = None) -> Floats:
    """``log10`` where a value is finite and > 0 (and ``mask`` is True), NaN elsewhere."""
    array = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(array) & (array > 0)
    if mask is not None:
        ok &= np.asarray(mask, dtype=bool)
    out = np.full(array.shape, np.nan)
    out[ok] = np.log10(array[ok])
    return out


def pow10(exponent: float) -> float:
    """10**exponent that never raises: inf instead of OverflowError, 0 on underflow."""
    return math.inf if exponent > 308.0 else 10.0**exponent


def format_factor(factor: float) -> str:
    """``×0.62``; tiny or huge factors in scientific notation so they never read ``×0.00``."""
    if not math.isfinite(factor):
        return "×∞"
    if 0.01 <= factor < 100:
        return f"×{factor:.2f}"
    return f"×{factor:.1e}"


@dataclass(frozen=True)
class FactorFit:
    """A straight line through ``log10 G[t, t − d]`` against ``d``: ``G ≈ a · factor**d``."""

    row: int
    slope_log10: float  # log10 of the per-step factor
    intercept_log10: float
    points: int

    @property
    def factor(self) -> float:
        return pow10(self.slope_log10)

    @property
    def verdict(self) -> str:
        """``vanishing`` (factor < 1), ``exploding`` (> 1) or ``steady`` (within ~1 % of 1)."""
        if abs(self.slope_log10) < STEADY_LOG10_BAND:
            return "steady"
        return "vanishing" if self.slope_log10 < 0 else "exploding"

    def factor_over(self, steps: int) -> float:
        """What ``steps`` steps back multiply the gradient by, on the fitted line."""
        return pow10(steps * self.slope_log10)

    def line_log10(self, distance: ArrayLike) -> Floats:
        """log10 of the fitted line at ``distance``, kept where a float can still show it."""
        d = np.asarray(distance, dtype=np.float64)
        return np.clip(
            self.intercept_log10 + self.slope_log10 * d, FIT_FLOOR_LOG10, -FIT_FLOOR_LOG10
        )

    def text(self) -> str:
        """``per-step factor ×0.62 (vanishing)  ·  10 steps back ×0.0084``."""
        return (
            f"per-step factor {format_factor(self.factor)} ({self.verdict})"
            f"  ·  {LOOK_BACK_STEPS} steps back ×{self.factor_over(LOOK_BACK_STEPS):.2g}"
        )


def fit_log_line(distance: ArrayLike, values: ArrayLike) -> tuple[float, float] | None:
    """(slope, intercept) of a line through log10(values) vs distance; None if < 2 points.

    Only positive finite values take part (a log axis shows no others).
    """
    logs = log10_masked(values)
    keep = np.isfinite(logs)
    x = np.asarray(distance, dtype=np.float64)[keep]
    if x.size < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, logs[keep], 1)
    return float(slope), float(intercept)


def fit_factor(row: int, distance: ArrayLike, values: ArrayLike) -> FactorFit | None:
    """The per-step factor of row ``row`` from ``values`` = ``G[t, t − distance]`` (None with
    fewer than two points to fit)."""
    fitted = fit_log_line(distance, values)
    if fitted is None:
        return None
    array = np.asarray(values, dtype=np.float64)
    points = int(np.count_nonzero(np.isfinite(array) & (array > 0)))
    return FactorFit(row=int(row), slope_log10=fitted[0], intercept_log10=fitted[1], points=points)


def fit_row(grad_flow: ArrayLike, cursor: int) -> int | None:
    """The row of ``G[t, k]`` the distance plot fits for the cursor at ``cursor``.

    The cursor's own row, unless it has fewer than two points to fit (t = 0 has one step back,
    the last character has no target): then the last row with a target that has two, so the
    plot is never empty at the cursor's default place. None for a probe of one character.
    """
    G = np.asarray(grad_flow, dtype=np.float64)
    T = int(G.shape[0]) if G.ndim == 2 else 0
    if T < 2:
        return None
    row = min(max(int(cursor), 0), T - 2)  # the last character predicts nothing
    with np.errstate(invalid="ignore"):
        usable = np.tril(np.isfinite(G) & (G > 0))[: T - 1]
    points = np.count_nonzero(usable, axis=1)
    if points[row] >= 2:
        return row
    fittable = np.flatnonzero(points >= 2)
    return int(fittable[-1]) if fittable.size else row


# ------------------------------------------------------------------------- training flow colours

# the colour scale's floor (decades below each step's largest ‖∂L/∂H_t‖) is one of these
_FLOOR_DECADES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
FLOW_FLOOR_PERCENTILE = 2.0  # the darkest colour: the 2nd percentile, not a lone outlier
_FLOOR_KEEP_SHARE = 0.4  # a floor is kept while the data still spans this share of it


def column_normalised_log10(values: ArrayLike) -> Floats:
    """``log10(v / max v)`` per column (an optimizer step): 0 at each step's largest value.

    Where the gradient gets within the window, per step, with the step-to-step change of the
    overall scale (the gradient norm plot's business) taken out. NaN where a value is not
    positive and finite, and in a column without any such value.
    """
    logs = log10_masked(values)
    if logs.ndim != 2 or logs.size == 0:
        return logs
    has_any = np.isfinite(logs).any(axis=0)
    tops = np.zeros(logs.shape[1])
    tops[has_any] = np.nanmax(logs[:, has_any], axis=0)
    out = logs - tops
    out[:, ~has_any] = np.nan
    return out


def flow_colour_floor(normalised: ArrayLike, previous: float | None = None) -> float:
    """The lower colour limit (<= 0, in decades) for :func:`column_normalised_log10` values.

    Robust: the FLOW_FLOOR_PERCENTILE-th percentile, rounded down to one of 0.05, 0.1, 0.2, 0.5,
    1, 2, 5, ... decades (tanh on the built-in corpus spans ~0.2 decades, a vanished gradient
    tens). ``previous`` (the floor on screen) is kept while the data still fits in it and spans
    at least _FLOOR_KEEP_SHARE of it, so the colours do not change with every step.
    """
    logs = np.asarray(normalised, dtype=np.float64)
    finite = logs[np.isfinite(logs)]
    if finite.size == 0:
        return -1.0 if previous is None else previous
    depth = max(-float(np.percentile(finite, FLOW_FLOOR_PERCENTILE)), 0.0)
    if previous is not None and _FLOOR_KEEP_SHARE * -previous <= depth <= -previous:
        return previous
    for decades in _FLOOR_DECADES:
        if depth <= decades * (1 + 1e-9):  # a float's last bits are not a wider floor
            return -decades
    return -_FLOOR_DECADES[-1]


# ------------------------------------------------------------------------- references

D2L_REFERENCE_PPL = 7.3  # what d2l.ai's RNN chapter reaches on The Time Machine
# the corpora the figure means something for: English prose in d2l's 28-token alphabet
D2L_REFERENCE_SOURCES = ("time-machine", "builtin")


def d2l_reference_applies(source: str, preprocess: str) -> bool:
    """Whether the d2l perplexity is a fair target for a corpus: prose with d2l preprocessing
    (letters and spaces, lower case), not a synthetic task, a file or kept punctuation."""
    return source in D2L_REFERENCE_SOURCES and preprocess == "d2l"

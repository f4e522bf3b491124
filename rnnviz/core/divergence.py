"""What to say and do after a divergence: the rollback target, the θ to resume with, and
the sentence that explains what happened. Pure Python, computed once here and shown by the GUI.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rnnviz.core.messages import Divergence

DEFAULT_RESUME_THETA = 1.0


def rollback_target(event: Divergence) -> int | None:
    """The step to roll back to: the newest kept snapshot *before* the divergent step (one
    taken at that very step holds its result), else the newest there is."""
    steps = sorted(event.rollback_steps)
    before = [s for s in steps if s < event.step]
    if before:
        return before[-1]
    return steps[-1] if steps else None


def resume_theta(theta: float) -> float:
    """θ for "Resume with clipping on": the configured one, or 1 if it is unusable."""
    return theta if math.isfinite(theta) and theta > 0 else DEFAULT_RESUME_THETA


def readable_cause(text: str) -> str:
    """core writes ``||g||`` and ``theta`` (plain ASCII); people read the slides' symbols."""
    return text.replace("||g||", "‖g‖").replace("theta", "θ")


def what_happened(event: Divergence, fmt: Callable[[float], str] = "{:g}".format) -> str:
    """One sentence: what the loss or the gradient did (``fmt`` writes the numbers)."""
    loss = event.loss
    if event.reason == "loss_spike":
        what = f"the loss jumped to {fmt(loss)}"
        median = event.recent_median_loss
        if median is not None and median > 0 and math.isfinite(loss):
            what += f", {fmt(float(f'{loss / median:.2g}'))}× its recent median ({fmt(median)})"
        return what
    if not math.isfinite(loss):
        return (
            f"the loss became non-finite ({fmt(loss)}); the step was skipped, "
            "the parameters are the last good ones"
        )
    return (
        f"a gradient became non-finite (loss {fmt(loss)}); the step was "
        "skipped, the parameters are the last good ones"
    )

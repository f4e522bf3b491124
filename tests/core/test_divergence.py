"""The divergence verdicts: where to roll back to, θ to resume with, the sentence shown."""

from __future__ import annotations

import math

from rnnviz.core import divergence as verdicts
from rnnviz.core.messages import Divergence


def event(**kw: object) -> Divergence:
    base: dict[str, object] = dict(
        run_id=0,
        step=120,
        reason="nonfinite",
        loss=math.nan,
        grad_norm_before_clip=math.inf,
        likely_cause="||g|| grew past theta",
        rollback_steps=(50, 100, 150),
    )
    base.update(kw)
    return Divergence(**base)  # type: ignore[arg-type]


def test_rollback_target_is_the_newest_snapshot_before_the_divergent_step() -> None:
    assert verdicts.rollback_target(event()) == 100
    assert verdicts.rollback_target(event(step=100)) == 50  # one at that step holds its result
    assert verdicts.rollback_target(event(step=10, rollback_steps=(50,))) == 50  # none before
    assert verdicts.rollback_target(event(rollback_steps=())) is None


def test_resume_theta_is_the_configured_one_or_one() -> None:
    assert verdicts.resume_theta(5.0) == 5.0
    for bad in (0.0, -1.0, math.nan, math.inf):
        assert verdicts.resume_theta(bad) == verdicts.DEFAULT_RESUME_THETA


def test_the_cause_uses_the_slides_symbols() -> None:
    assert verdicts.readable_cause("||g|| grew past theta") == "‖g‖ grew past θ"


def test_what_happened_names_the_kind_of_divergence() -> None:
    assert "non-finite (nan)" in verdicts.what_happened(event())
    assert "a gradient became non-finite" in verdicts.what_happened(event(loss=2.5))
    spike = event(reason="loss_spike", loss=40.0, recent_median_loss=2.0)
    text = verdicts.what_happened(spike)
    assert text == "the loss jumped to 40, 20× its recent median (2)"
    assert verdicts.what_happened(spike, lambda x: f"<{x:g}>").startswith("the loss jumped to <40>")

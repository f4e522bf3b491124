"""core.analysis: the clip statistics, the vanishing/exploding factor fit, the training flow's
colour scale and the d2l reference, without Qt."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnviz.core.analysis import (
    CLIP_RATE_WINDOW,
    FIT_FLOOR_LOG10,
    FLOW_FLOOR_PERCENTILE,
    FactorFit,
    clip_stats,
    column_normalised_log10,
    d2l_reference_applies,
    fit_factor,
    fit_log_line,
    fit_row,
    flow_colour_floor,
    format_factor,
    log10_masked,
    nonfinite_steps,
    pow10,
    ratio_text,
    theta_differs,
)
from rnnviz.core.history import MetricHistory
from rnnviz.core.messages import StepRecord


def record(step: int, before: float, theta: float = 1.0, clip_enabled: bool = True) -> StepRecord:
    clipped = clip_enabled and math.isfinite(before) and before > theta
    return StepRecord(
        step=step,
        epoch=0,
        loss=1.0,
        ppl=math.e,
        grad_norm_before_clip=before,
        grad_norm_after_clip=min(before, theta) if clip_enabled else before,
        clipped=clipped,
        lr=1.0,
        clip_theta=theta,
        clip_enabled=clip_enabled,
        tokens_per_s=100.0,
        nonfinite=False,
        nonfinite_total=0,
        param_grad_norms={},
        grad_flow=np.ones(3),
    )


def recent(records: list[StepRecord]) -> dict[str, np.ndarray]:
    history = MetricHistory(capacity=4096)
    history.append(records)
    return history.recent(CLIP_RATE_WINDOW)


# ------------------------------------------------------------------------- clipping


def test_no_steps_no_stats() -> None:
    assert clip_stats({}) is None
    assert clip_stats(MetricHistory().recent(CLIP_RATE_WINDOW)) is None


def test_clip_rate_and_ratio_of_the_newest_record() -> None:
    records = [record(s, 0.5 + (s % 7) * 0.3) for s in range(1, 41)]
    stats = clip_stats(recent(records))
    assert stats is not None
    assert stats.rate == pytest.approx(np.mean([r.clipped for r in records]))
    assert stats.ratio == pytest.approx(records[-1].grad_norm_before_clip / 1.0)
    assert stats.step == 40 and stats.steps == 40 and stats.theta == 1.0 and stats.clip_enabled


def test_clip_rate_is_over_the_last_window_only() -> None:
    records = [record(s, 5.0) for s in range(1, 201)]  # all clipped
    records += [record(s, 0.1) for s in range(201, 201 + CLIP_RATE_WINDOW // 2)]
    history = MetricHistory(capacity=4096)
    history.append(records)
    stats = clip_stats(history.columns())  # more rows than the window: the newest count
    assert stats is not None and stats.rate == pytest.approx(0.5)
    assert stats.steps == CLIP_RATE_WINDOW


def test_a_configured_theta_counts_before_any_record_carries_it() -> None:
    records = [record(s, 2.0, theta=1.0) for s in range(1, 5)]
    stats = clip_stats(recent(records), theta=0.25, clip_enabled=False)
    assert stats is not None
    assert stats.ratio == pytest.approx(2.0 / 0.25)
    assert stats.theta == 0.25 and not stats.clip_enabled
    assert "clipping off" in stats.text() and "clipping off" in stats.run_text()


def test_clip_texts() -> None:
    stats = clip_stats(recent([record(s, 2.0) for s in range(1, 1201)]))
    assert stats is not None
    assert stats.text() == "clip rate (last 100 steps): 100%   latest ‖g‖/θ: 2"
    assert stats.run_text() == "step 1,200: clip rate 100%, ‖g‖/θ 2"
    assert stats.text(lambda x: f"<{x}>").endswith("‖g‖/θ: <2.0>")


def test_a_nonfinite_norm_reads_non_finite_and_never_raises() -> None:
    stats = clip_stats(recent([record(1, math.inf), record(2, math.nan)]))
    assert stats is not None and math.isnan(stats.ratio)
    assert ratio_text(stats.ratio) == "non-finite" and ratio_text(math.inf) == "non-finite"
    assert "non-finite" in stats.text()
    zero = clip_stats(recent([record(1, 2.0)]), theta=0.0)  # no θ should be 0; still no raise
    assert zero is not None and zero.ratio == math.inf


def test_theta_differs() -> None:
    assert not theta_differs(1.0, True, 1.0, True)
    assert theta_differs(0.1, True, 1.0, True)
    assert theta_differs(1.0, True, 1.0, False)  # the main run does not clip at all
    assert not theta_differs(0.1, False, 1.0, True)  # nor does this one: no line


def test_nonfinite_steps() -> None:
    flags = np.array([False, True, False, False])
    ppl = np.array([1.0, 2.0, np.inf, 3.0])
    val = np.array([np.nan, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(nonfinite_steps(flags, ppl), [False, True, True, False])
    np.testing.assert_array_equal(nonfinite_steps(flags, ppl, val), [True, True, True, False])
    assert not flags[0]  # the flags are not changed in place


# ------------------------------------------------------------------------- factor fit


def test_log10_masked() -> None:
    values = np.array([[1.0, 0.0, -1.0], [np.inf, np.nan, 100.0]])
    out = log10_masked(values)
    np.testing.assert_array_equal(np.isnan(out), [[False, True, True], [True, True, False]])
    assert out[0, 0] == 0.0 and out[1, 2] == 2.0
    masked = log10_masked(values, np.array([[False, True, True], [True, True, True]]))
    assert np.isnan(masked[0, 0]) and masked[1, 2] == 2.0


@pytest.mark.parametrize(
    ("factor", "verdict"), [(0.5, "vanishing"), (1.3, "exploding"), (1.0, "steady")]
)
def test_fit_of_a_geometric_decay(factor: float, verdict: str) -> None:
    d = np.arange(11.0)
    fit = fit_factor(10, d, 3.0 * factor**d)
    assert fit is not None
    assert fit.factor == pytest.approx(factor)
    assert fit.intercept_log10 == pytest.approx(math.log10(3.0))
    assert fit.verdict == verdict and fit.points == 11 and fit.row == 10
    np.testing.assert_allclose(10 ** fit.line_log10(d), 3.0 * factor**d)
    assert fit.factor_over(10) == pytest.approx(factor**10)
    assert fit.text().startswith(f"per-step factor {format_factor(factor)} ({verdict})")
    assert f"10 steps back ×{factor**10:.2g}" in fit.text()


def test_the_fit_takes_positive_finite_points_only() -> None:
    d = np.arange(6.0)
    values = 0.5**d
    values[[1, 2, 3]] = (np.inf, np.nan, 0.0)
    fit = fit_factor(5, d, values)
    assert fit is not None and fit.points == 3 and fit.factor == pytest.approx(0.5)
    assert fit_log_line(d, np.zeros(6)) is None
    assert fit_log_line([0.0], [1.0]) is None  # one point
    assert fit_log_line([2.0, 2.0], [1.0, 0.5]) is None  # no spread in distance
    assert fit_factor(0, [0.0], [1.0]) is None


def test_the_fitted_line_stays_within_what_a_float_shows() -> None:
    fit = FactorFit(row=3, slope_log10=-200.0, intercept_log10=0.0, points=4)
    logs = fit.line_log10([0.0, 1.0, 2.0, 3.0])
    assert logs.min() == FIT_FLOOR_LOG10 and np.all(np.isfinite(10**logs))
    assert fit.factor_over(10) == 0.0  # 1e-2000: underflow is 0, never an error
    huge = FactorFit(row=3, slope_log10=400.0, intercept_log10=0.0, points=4)
    assert huge.factor == math.inf and huge.verdict == "exploding"
    assert "×∞" in huge.text()


def test_format_factor_and_pow10() -> None:
    assert format_factor(0.5) == "×0.50"
    assert format_factor(1.3) == "×1.30"
    assert format_factor(0.001) == "×1.0e-03"
    assert format_factor(250.0) == "×2.5e+02"
    assert format_factor(math.inf) == "×∞"
    assert pow10(2.0) == 100.0 and pow10(309.0) == math.inf and pow10(-400.0) == 0.0


# ------------------------------------------------------------------------- the fitted row


def lower_geometric(T: int, factor: float) -> np.ndarray:
    t, k = np.indices((T, T))
    G = np.where(k <= t, factor ** (t - k).astype(float), 0.0)
    G[-1] = 0.0  # the last character has no target
    return G


def test_fit_row_is_the_cursors_row_when_it_has_points_to_fit() -> None:
    G = lower_geometric(10, 0.5)
    assert [fit_row(G, t) for t in (1, 4, 8)] == [1, 4, 8]
    assert fit_row(G, 9) == 8  # the last character: T - 2
    assert fit_row(G, 99) == 8 and fit_row(G, -3) == 8  # clipped; t = 0 has one point


def test_fit_row_falls_back_to_the_last_row_with_two_points() -> None:
    G = lower_geometric(10, 0.5)
    assert fit_row(G, 0) == 8  # one step back: nothing to fit, the last row with a target
    G[8, :8] = 0.0  # row 8 has only its direct term left, row 7 is the last fittable one
    assert fit_row(G, 0) == 7
    G[8, 3] = np.nan
    assert fit_row(G, 8) == 7
    assert fit_row(lower_geometric(2, 0.5), 0) == 0  # no row has two points: the cursor's
    assert fit_row(np.zeros((1, 1)), 0) is None  # one character: no row with a target
    assert fit_row(np.zeros(3), 0) is None


# ------------------------------------------------------------------------- training flow colours


def test_column_normalised_log10_is_each_steps_share_of_its_largest() -> None:
    values = np.array([[1e-4, 1e-2, np.nan], [1e-5, 1e-3, 0.0], [2e-4, np.inf, -1.0]])
    out = column_normalised_log10(values)
    np.testing.assert_allclose(out[:, 0], np.log10([0.5, 0.05, 1.0]))
    np.testing.assert_allclose(out[:2, 1], [0.0, -1.0])
    assert np.isnan(out[2, 1])  # inf is masked, not the column's top
    assert np.isnan(out[:, 2]).all()  # a column with no positive finite value
    assert column_normalised_log10(np.empty((3, 0))).shape == (3, 0)


def test_flow_colour_floor_is_a_robust_round_number() -> None:
    rng = np.random.default_rng(0)
    tanh_like = -rng.uniform(0.0, 0.17, size=(32, 200))  # ~0.2 decades, as tanh on builtin
    assert flow_colour_floor(tanh_like) == -0.2
    vanished = -rng.uniform(0.0, 30.0, size=(32, 200))
    assert flow_colour_floor(vanished) == -50.0
    outlier = np.zeros((32, 200))
    outlier[0, 0] = -100.0  # one cell far below: not the scale (a percentile, not the min)
    assert FLOW_FLOOR_PERCENTILE > 0 and flow_colour_floor(outlier) == -0.05
    assert flow_colour_floor(np.full((3, 3), np.nan)) == -1.0
    assert flow_colour_floor(np.full((3, 3), np.nan), previous=-2.0) == -2.0


def test_flow_colour_floor_keeps_the_floor_on_screen_while_it_fits() -> None:
    data = -np.linspace(0.0, 0.15, 100)
    assert flow_colour_floor(data, previous=-0.2) == -0.2
    assert flow_colour_floor(data, previous=-0.5) == -0.2  # uses under 40 %: narrower
    assert flow_colour_floor(data * 3, previous=-0.2) == -0.5  # does not fit: wider
    assert flow_colour_floor(data * 3, previous=-1.0) == -1.0  # fits, uses 44 %: kept


def test_the_d2l_reference_applies_to_prose_with_d2l_preprocessing() -> None:
    assert d2l_reference_applies("time-machine", "d2l")
    assert d2l_reference_applies("builtin", "d2l")
    assert not d2l_reference_applies("time-machine", "keep")
    for source in ("synthetic:delay", "synthetic:repeat", "synthetic:brackets", "/home/a.txt"):
        assert not d2l_reference_applies(source, "d2l")

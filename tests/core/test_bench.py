"""`rnnviz bench` reports every figure it promises. Timings are never asserted here."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from rnnviz.bench import headless as bench


def test_train_section_has_every_figure_for_both_presets() -> None:
    result = bench.bench_train(rounds=1, steps_per_round=1, threads=1)
    for preset in ("A", "B"):
        r = result[preset]
        for key in ("fast_tok_s", "textbook_tok_s", "limit_tok_s"):
            assert r[key] > 0 and math.isfinite(r[key])
        assert r["ratio_vs_textbook"] == pytest.approx(r["fast_tok_s"] / r["textbook_tok_s"])
        assert r["fraction_of_limit"] == pytest.approx(r["fast_tok_s"] / r["limit_tok_s"])
        assert r["ratio_vs_d2l_loop"] == pytest.approx(r["fast_tok_s"] / r["d2l_loop_tok_s"])
    assert result["A"]["config"]["hidden"] == 32 and result["B"]["config"]["hidden"] == 256


def test_the_d2l_loop_is_the_same_training_step_as_the_scratch_model() -> None:
    """The context baseline computes what the scratch model does: same loss, same update
    (clipped gradients, SGD), so the two differ only in how they compute it."""
    import torch

    from rnnviz.core.config import ModelConfig
    from rnnviz.core.model import build_model

    V, H, B, T, lr, theta = 28, 16, 4, 6, 0.5, 0.01  # theta small: clipping engages
    gen = torch.Generator().manual_seed(3)
    X = torch.randint(0, V, (B, T), generator=gen)
    Y = torch.randint(0, V, (B, T), generator=gen)
    scratch = build_model(V, ModelConfig(kind="scratch", hidden_size=H, init="uniform"), 0)
    params = [p.detach().clone().requires_grad_(True) for p in scratch.parameters()]
    loss = bench.d2l_loop_step(params, X, Y, lr, theta)
    logits, _, _ = scratch(X)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, V), Y.reshape(-1))
    assert loss == pytest.approx(float(expected.detach()), rel=1e-6)
    expected.backward()
    torch.nn.utils.clip_grad_norm_(scratch.parameters(), theta)
    with torch.no_grad():
        for p, q in zip(scratch.parameters(), params, strict=True):
            torch.testing.assert_close(p - lr * p.grad, q, atol=1e-6, rtol=1e-5)


def test_missing_keys_names_what_is_absent() -> None:
    assert set(bench.missing_keys({})) == set(bench.REQUIRED_KEYS)
    full: dict = {}
    for key in bench.REQUIRED_KEYS:
        node = full
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = 1.0
    assert bench.missing_keys(full) == []
    full["gui"]["lag_p99_ms"] = "fast"
    assert bench.missing_keys(full) == ["gui.lag_p99_ms"]


@pytest.mark.slow
def test_quick_bench_json_has_every_key() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run(
        [sys.executable, "-m", "rnnviz", "bench", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert bench.missing_keys(result) == []
    assert result["machine"]["cores"] >= 1


def test_the_tensorboard_section_times_the_log_beside_the_same_steps() -> None:
    pytest.importorskip("tensorboard")
    result = bench.bench_tensorboard(blocks=2, steps_per_block=2)
    assert result is not None
    for key in ("step_ms", "step_ms_logging", "write_ms_p50", "write_ms_p95", "write_ms_mean"):
        assert result[key] > 0 and math.isfinite(result[key]), key
    assert result["write_ms_p50"] <= result["write_ms_p95"]
    assert result["write_fraction_of_step"] == pytest.approx(
        result["write_ms_mean"] / result["step_ms"]
    )

"""Vanishing and exploding gradients, clipping and compare runs, on the synthetic delay task.

These are the claims of the slides, checked on small seeded models: with ||W_hh||_2 < 1 and
tanh the gradient vanishes geometrically with distance; with a spectral radius well above 1,
ReLU and clipping off it explodes and the divergence guard pauses the run; clipping at theta = 1
keeps the same run finite.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnviz.core.config import RunConfig
from rnnviz.core.corpus import load_corpus
from rnnviz.core.messages import Divergence, Fork, MetricsBatch, StateChanged, Step, StepRecord
from rnnviz.core.probe import probe
from rnnviz.core.session import Session
from rnnviz.core.vocab import Vocab

H = 32


def delay_config(**train: object) -> RunConfig:
    base = {
        "batch_size": 32,
        "num_steps": 32,
        "lr": 1.0,
        "clip_theta": 1.0,
        "windows_per_epoch": 5000,
        "val_every": 10_000,
        "seed": 1,
    }
    base.update(train)
    return RunConfig().replace(
        corpus={"source": "synthetic:delay", "synthetic_length": 20_000, "delay_k": 8},
        model={"kind": "fast", "activation": "relu", "hidden_size": H},
        train=base,
    )


def orthogonal(scale: float, seed: int = 0) -> torch.Tensor:
    """scale * Q: every singular value (and the spectral radius) equals ``scale``."""
    q, _ = torch.linalg.qr(torch.randn(H, H, generator=torch.Generator().manual_seed(seed)))
    return scale * q


def session_with_w_hh(config: RunConfig, scale: float) -> tuple[Session, list[object]]:
    events: list[object] = []
    session = Session(config, events.append)
    w = orthogonal(scale)
    with torch.no_grad():
        session.main.model.W_hh.copy_(w)  # type: ignore[operator]
    # forks start from the kept initial parameters: keep the scaled W_hh there too
    session.main.initial_params["W_hh"] = w.clone()
    return session, events


def records(events: list[object], run_id: int = 0) -> list[StepRecord]:
    return [
        r for e in events if isinstance(e, MetricsBatch) and e.run_id == run_id for r in e.records
    ]


def test_tanh_gradient_vanishes_100_fold_over_20_steps() -> None:
    config = delay_config().replace(model={"activation": "tanh"})
    corpus = load_corpus(config.corpus, seed=1)
    vocab = Vocab.from_text(corpus.text)
    from rnnviz.core.model import build_model

    model = build_model(len(vocab), config.model, seed=1)
    with torch.no_grad():
        model.W_hh.copy_(orthogonal(0.75))  # type: ignore[operator]
    assert float(torch.linalg.matrix_norm(model.W_hh.detach(), ord=2)) < 1.0  # type: ignore[union-attr]
    text = corpus.text[:30]
    result = probe(model, vocab, text)
    t = len(text) - 2  # the last position with a known next character
    G = result.grad_flow
    assert G is not None
    near, far = G[t, t], G[t, t - 20]
    assert near > 0
    assert far * 100 <= near, f"||dL_T/dH_k|| fell only {near / far:.1f}-fold over 20 steps"
    # and the fall is monotone in distance: each step back multiplies by <= ||W_hh||_2 * 1
    row = G[t, : t + 1][::-1]
    assert np.all(row[1:] <= row[:-1] * 0.75 * (1 + 1e-5))


def test_relu_with_large_spectral_radius_explodes_and_the_guard_pauses() -> None:
    session, events = session_with_w_hh(delay_config(clip_enabled=False), scale=2.0)
    session.handle(Step(200))
    session.run_until_idle()
    recs = records(events)
    finite_norms = [r.grad_norm_before_clip for r in recs if math.isfinite(r.grad_norm_before_clip)]
    assert max(finite_norms) > 1e3
    divergences = [e for e in events if isinstance(e, Divergence)]
    assert divergences, "the divergence guard did not fire"
    first = divergences[0]
    assert first.run_id == 0 and first.step == recs[-1].step
    assert "clipping is off" in first.likely_cause
    assert session.state == "paused"
    assert len(recs) < 200  # it paused instead of training on
    states = [e.state for e in events if isinstance(e, StateChanged)]
    assert states[-1] == "paused"
    for p in session.main.model.parameters():
        assert torch.isfinite(p).all()


def test_the_same_run_with_theta_1_stays_finite_and_clipped() -> None:
    session, events = session_with_w_hh(delay_config(clip_enabled=True, clip_theta=1.0), 2.0)
    session.handle(Step(200))
    session.run_until_idle()
    recs = records(events)
    assert len(recs) == 200
    assert not any(isinstance(e, Divergence) for e in events)
    assert max(r.grad_norm_before_clip for r in recs) > 1e3  # it did explode before clipping
    for r in recs:
        assert math.isfinite(r.loss)
        assert r.grad_norm_after_clip <= 1.0 * (1 + 1e-6)
        assert r.clipped == (r.grad_norm_before_clip > 1.0)
    assert recs[-1].loss < recs[0].loss


@pytest.mark.parametrize(
    "changes",
    [
        {"train": {"clip_enabled": False}},
        {"train": {"clip_theta": 0.25}},
        {"train": {"lr": 0.5}},
        {"model": {"activation": "tanh"}},
    ],
)
def test_compare_run_starts_from_the_same_parameters_and_data(changes: dict) -> None:
    session, events = session_with_w_hh(delay_config(), scale=0.9)
    session.handle(Fork(changes, label="changed"))
    main, fork = session.runs[0], session.runs[1]
    # identical initialisation
    for name, tensor in main.model.state_dict().items():
        assert torch.equal(tensor, fork.model.state_dict()[name]), name
    assert torch.equal(fork.model.W_hh, orthogonal(0.9))  # type: ignore[arg-type]
    # identical data order
    for index in range(3):
        xa, ya = main.batches.batch(0, index)
        xb, yb = fork.batches.batch(0, index)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # the configurations differ in exactly the changed setting
    a, b = main.config.to_json(), fork.config.to_json()
    diff = {
        (section, key) for section in a for key in a[section] if a[section][key] != b[section][key]
    }
    expected = {(section, key) for section, kv in changes.items() for key in kv}
    assert diff == expected
    # and both train side by side
    session.handle(Step(3))
    session.run_until_idle()
    assert len(records(events, 0)) == 3 and len(records(events, 1)) == 3


def test_an_unchanged_fork_repeats_the_main_run_exactly() -> None:
    session, events = session_with_w_hh(delay_config(), scale=0.9)
    session.handle(Fork({"train": {}}, label="same"))
    session.handle(Step(5))
    session.run_until_idle()
    assert [r.loss for r in records(events, 0)] == [r.loss for r in records(events, 1)]

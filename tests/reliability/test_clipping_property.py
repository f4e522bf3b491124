"""Gradient clipping, as a property over random gradients and theta in [1e-3, 1e3].

Through the trainer's own step (the gradients of a tiny fast RNN replaced by generated ones):
* after clipping, ||g|| <= theta (1 + 1e-6);
* a gradient with ||g|| <= theta reaches the optimizer unchanged, bit for bit;
* the reported norm before clipping equals what ``torch.nn.utils.clip_grad_norm_`` returns
  for the same gradients, exactly.

The norms are drawn around theta on purpose (within 1e-6 of it, on both sides) as well as
far from it: that is where ``clip_grads_with_norm_``'s ``theta / (norm + 1e-6)`` used to
shrink gradients that were already below theta.

Prints: examples=500 violations=0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

from rnnviz.core.batches import BatchSource
from rnnviz.core.config import ModelConfig, TrainConfig
from rnnviz.core.model import build_model
from rnnviz.core.trainer import Trainer

torch.set_num_threads(1)

EXAMPLES = 500
V = 10

_cfg = TrainConfig(
    lr=1e-6, batch_size=2, num_steps=4, windows_per_epoch=1000, val_windows=4, val_every=0
)
_ids = np.random.default_rng(0).integers(0, V, 2000)
_model = build_model(V, ModelConfig(kind="fast", hidden_size=6), 0)
_trainer = Trainer(_model, BatchSource(_ids, _cfg, 0.1), _cfg)
_real_loss_and_grads = _trainer._loss_and_grads
_real_step = _trainer.optimizer.step

_stats = {"examples": 0, "violations": 0}

# the norm as a multiple of theta: far below, just below, exactly, just above, far above
ratios = st.one_of(
    st.floats(1e-6, 1e6),
    st.floats(1 - 1e-5, 1 + 1e-5),
    st.sampled_from([0.0, 1.0, 1 - 1e-7, 1 + 1e-7]),
)
# or an absolute offset from theta, within clip_grads_with_norm_'s eps
offsets = st.floats(-2e-6, 2e-6)


@st.composite
def cases(draw: Any) -> tuple[float, list[Tensor], str]:
    theta = draw(st.floats(1e-3, 1e3))
    seed = draw(st.integers(0, 2**32 - 1))
    gen = torch.Generator().manual_seed(seed)
    grads = [torch.randn(p.shape, generator=gen) for p in _trainer.params]
    if draw(st.booleans()):  # some parameters with no gradient signal at all
        for g in grads[: draw(st.integers(0, len(grads) - 1))]:
            g.zero_()
    norm = float(torch.nn.utils.get_total_norm(grads))
    if draw(st.booleans()):
        target, how = theta * draw(ratios), "ratio"
    else:
        target, how = max(theta + draw(offsets), 0.0), "offset"
    scale = target / norm if norm > 0 else 0.0
    return theta, [g * scale for g in grads], how


def _one_step(theta: float, grads: list[Tensor]) -> tuple[Any, list[Tensor]]:
    """One trainer step on ``grads``; the record and what the optimizer was handed."""
    handed: list[Tensor] = []

    def loss_and_grads(*args: Any) -> Any:
        loss, final, flow = _real_loss_and_grads(*args)
        for p, g in zip(_trainer.params, grads, strict=True):
            p.grad = g.clone()
        return loss, final, flow

    def step(*args: Any, **kwargs: Any) -> Any:
        handed.extend(p.grad.detach().clone() for p in _trainer.params)  # type: ignore[union-attr]
        return _real_step(*args, **kwargs)

    _trainer._loss_and_grads = loss_and_grads  # type: ignore[method-assign]
    _trainer.optimizer.step = step  # type: ignore[method-assign]
    try:
        _trainer.set_hyper(clip_theta=theta, clip_enabled=True)
        record = _trainer.train_step()
    finally:
        del _trainer._loss_and_grads
        _trainer.optimizer.step = _real_step  # type: ignore[method-assign]
    return record, handed


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(cases())
def _clipping_examples(case: tuple[float, list[Tensor], str]) -> None:
    theta, grads, _how = case
    record, handed = _one_step(theta, grads)
    twins = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for t, g in zip(twins, grads, strict=True):
        t.grad = g.clone()
    expected_before = float(torch.nn.utils.clip_grad_norm_(twins, theta))
    after = math.sqrt(sum(float(torch.sum(h.double() ** 2)) for h in handed))

    problems = []
    if record.nonfinite:
        problems.append("step skipped")
    if record.grad_norm_before_clip != expected_before:
        problems.append(f"before {record.grad_norm_before_clip!r} != {expected_before!r}")
    if after > theta * (1 + 1e-6) or record.grad_norm_after_clip > theta * (1 + 1e-6):
        problems.append(f"after {after!r} > theta {theta!r}")
    if record.grad_norm_before_clip <= theta and not all(
        torch.equal(h, g) for h, g in zip(handed, grads, strict=True)
    ):
        problems.append(f"changed although {record.grad_norm_before_clip!r} <= {theta!r}")
    _stats["examples"] += 1
    _stats["violations"] += bool(problems)
    assert problems == []


def test_clipping_property() -> None:
    _stats.update(examples=0, violations=0)
    _clipping_examples()
    print(f"\nexamples={_stats['examples']} violations={_stats['violations']}")
    assert _stats["examples"] >= EXAMPLES and _stats["violations"] == 0

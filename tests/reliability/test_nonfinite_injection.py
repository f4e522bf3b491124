"""NaN / +Inf / -Inf injected 200 times into the loss, the gradients and the parameters, across
the scratch and fast RNN, GRU and LSTM, each with SGD and Adam (the trainer's two optimizers).

Where each value goes in:
* the loss: the step's mean cross-entropy is replaced after the backward pass;
* the gradients: one element of one parameter's gradient, after the backward pass, before
  the norm and the clipping;
* the parameters: one element of one parameter, written by the optimizer's update (the only
  way training changes a parameter).

A step with an injection must be skipped (``nonfinite``), change no parameter and no optimizer
state, and leave every parameter finite; the healthy step after it trains normally.

Prints: injected=200 crashes=0 updates_on_nonfinite=0 params_finite=True
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from rnnviz.core.batches import BatchSource
from rnnviz.core.config import ModelConfig, TrainConfig
from rnnviz.core.model import build_model
from rnnviz.core.trainer import Trainer

torch.set_num_threads(1)

V = 12
KINDS = ("scratch", "fast", "gru", "lstm")
OPTIMIZERS = ("sgd", "adam")
SITES = ("loss", "grad", "param")
VALUES = (math.nan, math.inf, -math.inf)
INJECTIONS = 200


def _trainer(kind: str, optimizer: str, seed: int) -> Trainer:
    cfg = TrainConfig(
        lr=0.1 if optimizer == "sgd" else 0.01,
        optimizer=optimizer,  # type: ignore[arg-type]
        batch_size=4,
        num_steps=6,
        windows_per_epoch=40,
        val_windows=8,
        val_every=0,
        seed=seed,
    )
    ids = np.random.default_rng(seed).integers(0, V, 3000)
    model = build_model(V, ModelConfig(kind=kind, hidden_size=8), seed)  # type: ignore[arg-type]
    return Trainer(model, BatchSource(ids, cfg, 0.1), cfg)


def _optimizer_state(tr: Trainer) -> list[Tensor]:
    return [
        t.detach().clone()
        for p in tr.params
        for t in tr.optimizer.state.get(p, {}).values()
        if isinstance(t, Tensor)
    ]


def _inject(tr: Trainer, site: str, value: float, rng: random.Random) -> Any:
    """Install one injection for the next step; returns a function that removes it."""
    if site in ("loss", "grad"):
        real = tr._loss_and_grads

        def loss_and_grads(*args: Any) -> Any:
            loss, final, flow = real(*args)
            if site == "loss":
                return value, final, flow
            p = rng.choice([p for p in tr.params if p.grad is not None])
            p.grad.view(-1)[rng.randrange(p.grad.numel())] = value  # type: ignore[union-attr]
            return loss, final, flow

        tr._loss_and_grads = loss_and_grads  # type: ignore[method-assign]
        return lambda: delattr(tr, "_loss_and_grads")
    step = tr.optimizer.step

    def poisoned_step(*args: Any, **kwargs: Any) -> Any:
        out = step(*args, **kwargs)
        p = rng.choice(tr.params)
        with torch.no_grad():
            p.view(-1)[rng.randrange(p.numel())] = value
        return out

    tr.optimizer.step = poisoned_step  # type: ignore[method-assign]
    return lambda: setattr(tr.optimizer, "step", step)


def test_nonfinite_injection() -> None:
    rng = random.Random(12)
    combos = [(k, o) for k in KINDS for o in OPTIMIZERS]
    per_combo = INJECTIONS // len(combos)
    injected = crashes = updates = 0
    params_finite = True
    problems: list[str] = []
    for n, (kind, optimizer) in enumerate(combos):
        tr = _trainer(kind, optimizer, seed=n)
        done = 0
        while done < per_combo:
            # 1-3 injected steps in a row (fewer than the 5 that end a run), then healthy ones
            for _ in range(min(rng.randint(1, 3), per_combo - done)):
                site, value = rng.choice(SITES), rng.choice(VALUES)
                before = [p.detach().clone() for p in tr.params]
                state = _optimizer_state(tr)
                remove = _inject(tr, site, value, rng)
                injected += 1
                done += 1
                try:
                    record = tr.train_step()
                except Exception as exc:  # noqa: BLE001 - counted, not raised
                    crashes += 1
                    problems.append(f"{kind}/{optimizer}/{site}/{value}: {exc!r}")
                    continue
                finally:
                    remove()
                changed = any(
                    not torch.equal(a, b) for a, b in zip(before, tr.params, strict=True)
                ) or any(
                    not torch.equal(a, b) for a, b in zip(state, _optimizer_state(tr), strict=True)
                ) or len(state) != len(_optimizer_state(tr))  # fmt: skip
                updates += changed
                finite = all(bool(torch.isfinite(p).all()) for p in tr.params)
                params_finite &= finite
                if not record.nonfinite:
                    problems.append(f"{kind}/{optimizer}/{site}/{value}: not flagged")
            for _ in range(rng.randint(1, 2)):
                record = tr.train_step()
                if record.nonfinite or not math.isfinite(record.loss):
                    problems.append(f"{kind}/{optimizer}: healthy step after injection failed")
            assert not tr.diverged
    print(
        f"\ninjected={injected} crashes={crashes} updates_on_nonfinite={updates} "
        f"params_finite={params_finite}"
    )
    assert injected == INJECTIONS
    assert problems == [] and crashes == 0 and updates == 0 and params_finite


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_injection_on_the_first_step_leaves_no_optimizer_state(optimizer: str) -> None:
    """Adam creates its state on its first step; a skipped first step must not keep it."""
    tr = _trainer("fast", optimizer, seed=0)
    remove = _inject(tr, "param", math.nan, random.Random(0))
    assert tr.train_step().nonfinite
    remove()
    assert tr.optimizer.state == {} or all(not s for s in tr.optimizer.state.values())
    assert not tr.train_step().nonfinite

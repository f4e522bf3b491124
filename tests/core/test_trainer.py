from __future__ import annotations

import copy
import json
import math
import statistics
from typing import Any, cast

import numpy as np
import pytest
import torch
from torch import Tensor

from rnnviz.core import trainer as trainer_module
from rnnviz.core.batches import BatchSource
from rnnviz.core.config import Activation, ModelConfig, ModelKind, TrainConfig
from rnnviz.core.fast_rnn import FastRNN
from rnnviz.core.model import CharModel, ScratchRNN, build_model
from rnnviz.core.trainer import Trainer

torch.set_num_threads(1)  # tiny tensors: a second thread only adds hand-overs

V = 12


def random_ids(n: int = 4000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, n)


def make(
    kind: str = "fast",
    ids: np.ndarray | None = None,
    activation: str = "tanh",
    hidden: int = 16,
    seed: int = 0,
    **train: Any,
) -> tuple[CharModel, BatchSource, Trainer]:
    options: dict[str, Any] = dict(
        batch_size=8, num_steps=10, windows_per_epoch=48, val_windows=16, val_every=0, seed=seed
    )
    options.update(train)
    cfg = TrainConfig(**options)
    batches = BatchSource(random_ids() if ids is None else ids, cfg, 0.1)
    model_cfg = ModelConfig(
        kind=cast(ModelKind, kind), activation=cast(Activation, activation), hidden_size=hidden
    )
    model = build_model(V, model_cfg, seed)
    return model, batches, Trainer(model, batches, cfg)


def as_fast(model: CharModel) -> FastRNN:
    assert isinstance(model, FastRNN)
    return model


def params_of(model: CharModel) -> list[Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def all_finite(model: CharModel) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


@pytest.mark.parametrize("kind", ["fast", "scratch"])
@pytest.mark.parametrize("theta", [0.05, 100.0])
def test_clipping_norms(kind: str, theta: float) -> None:
    model, batches, tr = make(kind, clip_theta=theta, lr=0.5)
    for _ in range(6):
        # the value clip_grad_norm_ returns on this step's gradients, from a twin model
        twin = copy.deepcopy(model)
        X, Y = batches.batch(tr.epoch, tr.batch_index)
        logits, _, _ = twin(X)
        torch.autograd.backward(
            torch.nn.functional.cross_entropy(logits.reshape(-1, V), Y.reshape(-1))
        )
        want = float(torch.nn.utils.clip_grad_norm_(twin.parameters(), theta))
        rec = tr.train_step()
        assert rec.grad_norm_before_clip == pytest.approx(want, rel=1e-5)
        assert rec.grad_norm_after_clip <= theta * (1 + 1e-6)
        assert rec.grad_norm_after_clip == pytest.approx(min(want, theta), rel=1e-5)
        assert rec.clipped == (rec.grad_norm_before_clip > theta)
        total = math.sqrt(sum(v * v for v in rec.param_grad_norms.values()))
        assert total == pytest.approx(rec.grad_norm_before_clip, rel=1e-5)
        assert list(rec.param_grad_norms) == ["W_xh", "W_hh", "b_h", "W_hq", "b_q"]
    tr.set_hyper(clip_enabled=False)
    for _ in range(3):
        rec = tr.train_step()
        assert rec.grad_norm_after_clip == rec.grad_norm_before_clip
        assert not rec.clipped and not rec.clip_enabled


def test_before_clip_is_clip_grad_norm_value_exactly() -> None:
    model, batches, tr = make("fast", clip_enabled=False)
    rec = tr.train_step()
    # with clipping off the gradients are left as they were: ask clip_grad_norm_ itself
    assert rec.grad_norm_before_clip == float(
        torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf)
    )


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_nonfinite_update_is_undone_and_run_diverges(optimizer: str) -> None:
    model, _, tr = make("fast", optimizer=optimizer, max_nonfinite_in_row=3)
    for _ in range(3):
        tr.train_step()
    good = params_of(model)
    opt_state = copy.deepcopy(tr.optimizer.state_dict()["state"])
    real_step = tr.optimizer.step

    def poisoned_step() -> None:  # a finite gradient, and yet the update goes NaN
        real_step()
        with torch.no_grad():
            as_fast(model).W_hh[0, 0] = math.nan

    tr.optimizer.step = poisoned_step  # type: ignore[method-assign,assignment]
    records = []
    for _ in range(3):
        records.append(tr.train_step())
        assert all_finite(model)
    assert [r.nonfinite for r in records] == [True, True, True]
    assert all(math.isfinite(r.loss) for r in records)
    assert [r.nonfinite_total for r in records] == [1, 2, 3]
    assert tr.diverged and tr.nonfinite_total == 3
    for p, q in zip(model.parameters(), good, strict=True):
        assert torch.equal(p, q)
    for index, entry in tr.optimizer.state_dict()["state"].items():
        for key, value in entry.items():
            assert torch.equal(value, opt_state[index][key])
    with pytest.raises(RuntimeError):
        tr.train_step()


@pytest.mark.parametrize("lr", [1e30, 1e39])
def test_huge_lr_never_leaves_nan_in_parameters(lr: float) -> None:
    model, _, tr = make("fast", activation="relu", max_nonfinite_in_row=4, clip_enabled=False)
    tr.train_step()
    with pytest.raises(ValueError, match="lr must be in"):
        tr.set_hyper(lr=lr)  # past TrainConfig's limit, so set directly: the guard must hold
    tr.lr = lr
    for group in tr.optimizer.param_groups:
        group["lr"] = lr
    last_good = params_of(model)
    for _ in range(12):
        rec = tr.train_step()
        assert all_finite(model)
        if not rec.nonfinite:
            last_good = params_of(model)
        if tr.diverged:
            break
    assert tr.diverged and rec.nonfinite
    for p, q in zip(model.parameters(), last_good, strict=True):
        assert torch.equal(p, q)


def test_nonfinite_gradient_skips_update_and_streak_resets() -> None:
    model, _, tr = make("scratch", max_nonfinite_in_row=2)
    assert isinstance(model, ScratchRNN)
    before = params_of(model)
    handle = model.W_hh.register_hook(lambda g: g * math.nan)  # type: ignore[no-untyped-call]
    rec = tr.train_step()
    assert rec.nonfinite and math.isnan(rec.grad_norm_before_clip)
    assert not tr.diverged and tr.nonfinite_in_row == 1
    for p, q in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, q)
    handle.remove()
    rec = tr.train_step()
    assert not rec.nonfinite and tr.nonfinite_in_row == 0 and rec.nonfinite_total == 1


def test_nonfinite_loss_is_recorded() -> None:
    model, _, tr = make("fast")
    with torch.no_grad():
        as_fast(model).W_hq.mul_(1e30)  # logits of 1e30+: the cross-entropy overflows
        as_fast(model).b_q.fill_(math.inf)
    before = params_of(model)
    rec = tr.train_step()
    assert rec.nonfinite and not math.isfinite(rec.loss)
    for p, q in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("kind", ["fast", "scratch"])
@pytest.mark.parametrize("partition", ["random", "sequential"])
def test_deterministic(kind: str, partition: str) -> None:
    runs = []
    for _ in range(2):
        _, _, tr = make(kind, partition=partition, seed=5)
        runs.append([tr.train_step().loss for _ in range(8)])
    assert runs[0] == runs[1]
    _, _, tr = make(kind, partition=partition, seed=6)
    assert [tr.train_step().loss for _ in range(8)] != runs[0]


@pytest.mark.parametrize(
    ("optimizer", "partition", "kind"),
    [
        ("sgd", "random", "fast"),
        ("sgd", "sequential", "fast"),
        ("adam", "random", "fast"),
        ("adam", "sequential", "fast"),
        ("adam", "sequential", "lstm"),  # a carried (h, c) pair
        ("sgd", "sequential", "scratch"),
    ],
)
def test_resume_continues_exactly(optimizer: str, partition: str, kind: str) -> None:
    lr = 0.01 if optimizer == "adam" else 1.0
    # 5 steps an epoch: the resumed part crosses an epoch boundary
    opts: dict[str, Any] = dict(
        optimizer=optimizer, partition=partition, lr=lr, windows_per_epoch=40
    )
    _, _, tr = make(kind, **opts)
    uninterrupted = [tr.train_step().loss for _ in range(8)]

    model, _, tr = make(kind, **opts)
    first = [tr.train_step().loss for _ in range(4)]
    tensors, meta = tr.state_dict()
    meta = json.loads(json.dumps(meta))
    params = {k: v.clone() for k, v in model.state_dict().items()}
    if partition == "sequential":
        assert any(k.startswith("carried.") for k in tensors)
    if optimizer == "adam":
        assert any(k.startswith("optimizer.") for k in tensors)

    model2, _, tr2 = make(kind, **opts)
    model2.load_state_dict(params)
    tr2.load_state_dict({k: v.clone() for k, v in tensors.items()}, meta)
    assert (tr2.step, tr2.epoch, tr2.batch_index) == (tr.step, tr.epoch, tr.batch_index)
    rest = [tr2.train_step().loss for _ in range(4)]
    assert first + rest == uninterrupted


def test_set_hyper_takes_effect_next_step() -> None:
    model, _, tr = make("fast", clip_enabled=False, lr=1.0)
    tr.train_step()
    tr.set_hyper(lr=0.25)
    before = params_of(model)
    rec = tr.train_step()
    assert rec.lr == 0.25
    for p, q in zip(model.parameters(), before, strict=True):
        assert p.grad is not None
        torch.testing.assert_close(p.detach(), q - 0.25 * p.grad, rtol=0, atol=1e-7)
    tr.set_hyper(clip_theta=0.01, clip_enabled=True)
    rec = tr.train_step()
    assert rec.clip_theta == 0.01 and rec.clip_enabled
    assert rec.grad_norm_after_clip <= 0.01 * (1 + 1e-6)
    with pytest.raises(ValueError):
        tr.set_hyper(lr=math.nan)


@pytest.mark.parametrize("partition", ["random", "sequential"])
def test_rollback_restores_and_replays(monkeypatch: pytest.MonkeyPatch, partition: str) -> None:
    monkeypatch.setattr(trainer_module, "SNAPSHOT_EVERY", 4)
    model, _, tr = make("fast", partition=partition, optimizer="adam", lr=0.01)
    losses, params_at = {}, {}
    for _ in range(14):
        rec = tr.train_step()
        losses[rec.step] = rec.loss
        params_at[rec.step] = params_of(model)
    assert tr.snapshot_steps() == (0, 4, 8, 12)
    assert tr.rollback(10) == 8
    assert (tr.step, tr.snapshot_steps()) == (8, (0, 4, 8))
    for p, q in zip(model.parameters(), params_at[8], strict=True):
        assert torch.equal(p, q)
    replay = {}
    for _ in range(6):
        rec = tr.train_step()
        replay[rec.step] = rec.loss
    assert replay == {s: losses[s] for s in range(9, 15)}
    assert tr.rollback(0) == 0
    with pytest.raises(ValueError):
        tr.rollback(-1)


def test_snapshot_ring_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_module, "SNAPSHOT_EVERY", 2)
    _, _, tr = make("fast")
    for _ in range(40):
        tr.train_step()
    assert len(tr.snapshots) == trainer_module.MAX_SNAPSHOTS
    assert tr.snapshot_steps() == tuple(range(26, 41, 2))


def test_loss_spike_sets_flag_and_keeps_update() -> None:
    model, _, tr = make("fast", lr=0.1, loss_spike_factor=5.0)
    for _ in range(25):
        assert not tr.train_step().nonfinite
        assert not tr.last_spike
    with torch.no_grad():
        as_fast(model).W_hq.mul_(300.0)
    before = params_of(model)
    median = statistics.median(tr.recent_losses)
    rec = tr.train_step()
    assert tr.last_spike and tr.loss_spike and not rec.nonfinite
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    # the median the spike was judged against, for the banner's "N× its recent median"
    assert tr.last_spike_median == pytest.approx(median)
    assert rec.loss > 5.0 * tr.last_spike_median


@pytest.mark.parametrize("kind", ["fast", "scratch", "gru"])
def test_loss_decreases_on_easy_data(kind: str) -> None:
    ids = np.tile(np.arange(1, 9), 600)  # a period-8 text: every next character is certain
    _, _, tr = make(kind, ids=ids, batch_size=16, hidden=24, lr=1.0 if kind != "gru" else 4.0)
    losses = [tr.train_step().loss for _ in range(100)]
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:5])
    assert tr.evaluate() < 1.5


def test_sequential_carries_detached_state_and_resets_each_epoch() -> None:
    model, batches, tr = make("fast", partition="sequential", windows_per_epoch=24)
    assert isinstance(model, FastRNN) and batches.steps_per_epoch == 3
    seen: list[Tensor | None] = []
    real = model.loss_and_grads

    def spy(X: Tensor, Y: Tensor, state: Tensor | None) -> Any:
        seen.append(state)
        return real(X, Y, state)

    model.loss_and_grads = spy  # type: ignore[method-assign]
    finals = []
    for _ in range(6):
        tr.train_step()
        finals.append(tr.carried)
    assert [s is None for s in seen] == [True, False, False, True, False, False]
    assert seen[1] is finals[0] and seen[2] is finals[1] and seen[4] is finals[3]
    assert all(s is None or not s.requires_grad for s in seen)


def test_random_partition_starts_every_batch_from_zeros() -> None:
    model, _, tr = make("scratch")
    seen = []
    real = model.forward

    def spy(tokens: Tensor, state: Any = None) -> Any:
        seen.append(state)
        return real(tokens, state)

    model.forward = spy  # type: ignore[method-assign]
    for _ in range(3):
        tr.train_step()
    assert seen == [None, None, None]


def test_grad_flow_scratch_equals_fast_and_is_total() -> None:
    # the scratch model's hooks must see what the hand-written BPTT computes
    _, _, fast_tr = make("fast", activation="relu")
    _, _, scratch_tr = make("scratch", activation="relu")
    for _ in range(3):
        a, b = fast_tr.train_step(), scratch_tr.train_step()
        assert a.grad_flow.shape == (10,) and not a.grad_flow.flags.writeable
        np.testing.assert_allclose(a.grad_flow, b.grad_flow, rtol=1e-4)
        assert a.loss == pytest.approx(b.loss, rel=1e-5)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_fused_models_record(kind: str) -> None:
    model, _, tr = make(kind, val_every=2)
    r1, r2 = tr.train_step(), tr.train_step()
    assert r1.grad_flow.shape == (10,) and np.all(np.isfinite(r1.grad_flow))
    assert r1.val_ppl is None and r2.val_ppl is not None and math.isfinite(r2.val_ppl)
    W = model.get_parameter("rnn.weight_hh_l0")
    assert r2.w_hh_sigma_max == pytest.approx(
        float(torch.linalg.matrix_norm(W.detach(), ord=2)), rel=1e-5
    )
    assert set(r1.param_grad_norms) == {n for n, _ in model.named_grad_params()}


def test_record_fields_and_evaluate_leaves_grads() -> None:
    model, batches, tr = make("fast", val_every=3)
    recs = [tr.train_step() for _ in range(7)]
    assert [r.step for r in recs] == list(range(1, 8))
    assert [r.epoch for r in recs] == [0] * 6 + [1]  # 6 steps an epoch
    assert tr.epoch == 1 and tr.batch_index == 1
    assert [r.val_ppl is not None for r in recs] == [False, False, True] * 2 + [False]
    rec = recs[-1]
    assert rec.ppl == pytest.approx(math.exp(rec.loss))
    assert rec.tokens_per_s > 0 and rec.lr == 1.0
    assert isinstance(model, FastRNN)
    assert rec.w_hh_sigma_max == pytest.approx(
        float(torch.linalg.matrix_norm(model.W_hh.detach(), ord=2)), rel=1e-5
    )
    grads = [p.grad for p in model.parameters()]
    kept = [g.clone() for g in grads if g is not None]
    ppl = tr.evaluate()
    assert 1.0 < ppl < 3 * V
    after = [p.grad for p in model.parameters()]
    assert all(a is b for a, b in zip(after, grads, strict=True))
    assert all(torch.equal(g, k) for g, k in zip(kept, grads, strict=True))  # type: ignore[arg-type]
    # exp of the mean cross-entropy over every validation token, each batch from zeros
    total, count = 0.0, 0
    with torch.no_grad():
        for X, Y in batches.val_batches():
            logits, _, _ = model(X)
            total += float(
                torch.nn.functional.cross_entropy(
                    logits.reshape(-1, V), Y.reshape(-1), reduction="sum"
                )
            )
            count += Y.numel()
    assert ppl == pytest.approx(math.exp(total / count), rel=1e-6)


def _grads_at_optimizer_step(tr: Trainer) -> list[Tensor]:
    """The gradients the optimizer is handed on the next step (after clipping)."""
    seen: list[Tensor] = []
    original = tr.optimizer.step

    def step(*args: Any, **kwargs: Any) -> Any:
        seen.extend(p.grad.detach().clone() for p in tr.params if p.grad is not None)
        return original(*args, **kwargs)

    tr.optimizer.step = step  # type: ignore[method-assign]
    tr.train_step()
    tr.optimizer.step = original  # type: ignore[method-assign]
    return seen


def test_gradient_just_below_theta_is_left_unchanged() -> None:
    """clip_grads_with_norm_ scales by theta / (norm + 1e-6), below 1 just under theta too."""
    _, _, tr = make("fast", lr=1e-6)
    twin = copy.deepcopy(tr)  # the same batch, so the same gradients
    twin.set_hyper(clip_enabled=False)
    grads = _grads_at_optimizer_step(twin)
    norm = float(torch.nn.utils.get_total_norm(grads))
    tr.set_hyper(clip_theta=norm + 5e-7)  # the norm is below theta, by less than the 1e-6
    seen = _grads_at_optimizer_step(tr)
    assert all(torch.equal(a, b) for a, b in zip(seen, grads, strict=True))


def test_no_snapshot_while_worse_than_uniform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_module, "SNAPSHOT_EVERY", 2)
    model, _, tr = make("fast", activation="relu", clip_enabled=False, lr=1.0)
    for _ in range(4):
        tr.train_step()
    assert tr.snapshot_steps() == (0, 2, 4)
    with torch.no_grad():
        as_fast(model).W_hq.mul_(1e4)  # finite, far worse than uniform guessing
    for _ in range(4):
        rec = tr.train_step()
        assert math.isfinite(rec.loss) and rec.loss > math.log(1.5 * V)
    assert tr.snapshot_steps() == (0, 2, 4)


@pytest.mark.parametrize(
    ("lr", "theta"),
    [(0.0, 0.0), (-1.0, -1.0), (math.nan, math.nan), (math.inf, math.inf), (1e4, 2e6),
     (5e-7, 5e-5)],
)  # fmt: skip
def test_set_hyper_refuses_what_the_config_refuses(lr: float, theta: float) -> None:
    _, _, tr = make("fast")
    with pytest.raises(ValueError, match="lr must be in"):
        tr.set_hyper(lr=lr)
    with pytest.raises(ValueError, match="clip theta must be in"):
        tr.set_hyper(clip_theta=theta)
    assert (tr.lr, tr.clip_theta) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        ("train", "seed", 2**31, "seed must be in 0..2147483647"),
        ("train", "seed", 3_000_000_000, "seed must be in 0..2147483647"),
        ("train", "seed", 2**70, "seed must be in 0..2147483647"),
        pytest.param("train", "seed", 10**5000, "a 16610-bit number", id="seed-10**5000"),
        ("train", "seed", -1, "seed must be in"),
        ("train", "seed", 1.5, "seed must be an integer"),
        ("train", "seed", True, "seed must be an integer"),
        ("train", "lr", math.nan, "lr must be in"),
        ("train", "lr", math.inf, "lr must be in"),
        ("train", "lr", 0.0, "lr must be in"),
        ("train", "lr", 1e-9, "lr must be in"),
        ("train", "lr", "1", "lr must be a number"),
        ("train", "clip_theta", math.nan, "clip theta must be in"),
        ("train", "clip_theta", 1e300, "clip theta must be in"),
        ("train", "clip_theta", 0.0, "clip theta must be in"),
        ("train", "clip_enabled", 1, "clip_enabled must be true or false"),
        ("train", "batch_size", 0, "batch size must be in"),
        ("train", "batch_size", 2**70, "batch size must be in"),
        ("train", "batch_size", 8.0, "batch size must be an integer"),
        ("train", "num_steps", 5000, "num_steps must be in"),
        ("train", "windows_per_epoch", 2**70, "windows_per_epoch must be in"),
        ("train", "val_windows", 0, "val_windows must be in"),
        ("train", "val_every", -1, "val_every must be in"),
        ("train", "max_nonfinite_in_row", 0, "max_nonfinite_in_row must be in"),
        ("train", "loss_spike_factor", 0.5, "loss_spike_factor"),
        ("train", "loss_spike_factor", math.nan, "loss_spike_factor"),
        ("train", "device", 3, "device must be a string"),
        ("model", "hidden_size", 0, "hidden size must be in 1..8192"),
        ("model", "hidden_size", 32.5, "hidden size must be an integer"),
        ("model", "hidden_size", True, "hidden size must be an integer"),
        ("model", "hidden_size", 2**70, "hidden size must be in"),
        ("corpus", "synthetic_length", 2**70, "synthetic_length must be in"),
        ("corpus", "delay_k", 0, "delay_k must be in"),
        ("corpus", "val_fraction", math.nan, "val_fraction must be in"),
        ("corpus", "val_fraction", True, "val_fraction must be a number"),
        ("corpus", "source", 5, "corpus source must be a string"),
    ],
)
def test_config_validates_every_range_on_the_way_in(
    section: str, field: str, value: object, message: str
) -> None:
    from rnnviz.core.config import ConfigError, RunConfig

    with pytest.raises(ConfigError, match=message):
        RunConfig().replace(**{section: {field: value}})
    data = RunConfig().to_json()
    data[section][field] = value
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_json(data)


def test_config_limits_are_inclusive() -> None:
    from rnnviz.core import config as c

    cfg = c.RunConfig().replace(
        train={
            "seed": c.SEED_RANGE[1],
            "lr": c.LR_RANGE[0],
            "clip_theta": c.THETA_RANGE[1],
            "batch_size": c.BATCH_RANGE[1],
            "num_steps": c.NUM_STEPS_RANGE[1],
            "loss_spike_factor": 0.0,
        },
        model={"hidden_size": np.int64(c.HIDDEN_RANGE[1])},  # NumPy integers are integers
    )
    assert cfg.train.seed == 2**31 - 1
    c.TrainConfig(lr=c.LR_RANGE[1], clip_theta=c.THETA_RANGE[0], seed=0)


@pytest.mark.parametrize("kind", ["scratch", "fast"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_without_recurrence_w_hh_stays_exactly_zero(kind: str, optimizer: str) -> None:
    """The compare run 'no recurrence' (issue 14): the slide's MLP, W_hh held at 0, while the
    other weights learn; its gradient counts nowhere (norm, clipping, the update)."""
    ids = np.tile(np.arange(V), 200)  # a cycle: predictable from the current character alone
    cfg = TrainConfig(
        batch_size=8,
        num_steps=10,
        windows_per_epoch=48,
        val_windows=16,
        val_every=0,
        optimizer=optimizer,
        lr=0.5 if optimizer == "sgd" else 0.01,
    )
    batches = BatchSource(ids, cfg, 0.1)
    model = build_model(V, ModelConfig(kind=cast(ModelKind, kind), recurrence=False), 0)
    trainer = Trainer(model, batches, cfg)
    assert isinstance(model, ScratchRNN)
    assert float(model.W_hh.detach().abs().max()) == 0.0
    records = [trainer.train_step() for _ in range(40)]
    assert float(model.W_hh.detach().abs().max()) == 0.0
    assert all(r.param_grad_norms["W_hh"] == 0.0 for r in records)
    assert records[-1].loss < 0.8 * records[0].loss  # the rest of the model learns
    with torch.no_grad():
        others = [p for name, p in model.named_parameters() if name != "W_hh"]
        total = torch.nn.utils.get_total_norm([p.grad for p in others])  # type: ignore[misc]
    assert records[-1].grad_norm_before_clip == pytest.approx(float(total), rel=1e-6)


def test_no_recurrence_is_for_the_rnn_only() -> None:
    from rnnviz.core.config import ConfigError

    for kind in ("gru", "lstm"):
        with pytest.raises(ConfigError, match="no single W_hh"):
            ModelConfig(kind=cast(ModelKind, kind), recurrence=False)
    with pytest.raises(ConfigError, match="true or false"):
        ModelConfig(recurrence="no")  # type: ignore[arg-type]

"""One optimizer step at a time, with everything the panels show measured on the way.

A step: fetch batch (epoch, batch_index), forward + backward (the hand-written BPTT for the
fast RNN, autograd for the others), global L2 norm of the gradient, clipping
g <- min(1, theta/||g||) g, the update, then the guards:

* a non-finite loss or gradient norm skips the update; so does an update that leaves a
  non-finite parameter (it is undone from a copy taken just before it). After
  ``max_nonfinite_in_row`` such steps in a row the run is ``diverged``; the parameters are
  then still the last good ones, because a bad step never changes them.
* a loss far above the median of the recent ones sets ``last_spike`` (the session pauses on
  it); the update is kept, a spike is information, not an error.
* every ``snapshot_every`` steps a copy of parameters + optimizer state + data position goes
  into a small ring, so ``rollback`` can return to a point before things went wrong and replay
  the same batches from there; not while the loss is worse than uniform guessing
  (``core.health``), so the ring holds points worth returning to.

Truncated BPTT: with sequential partitioning the final hidden state of one batch, detached,
starts the next (reset when an epoch starts); with random partitioning every batch starts
from zeros. Same seed and config give the same losses bit for bit on CPU: the only
randomness is the model init (seeded) and the batch order (a pure function of the seed).

Runs in the engine process's training thread; nothing here touches Qt.
"""

from __future__ import annotations

import copy
import json
import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from rnnviz.core.batches import Batches
from rnnviz.core.config import LR_RANGE, THETA_RANGE, TrainConfig
from rnnviz.core.fast_rnn import FastRNN
from rnnviz.core.health import perplexity, worse_than_uniform
from rnnviz.core.messages import StepRecord, frozen_array
from rnnviz.core.model import CharModel, GRUModel, LSTMModel, State, detach_state
from rnnviz.core.recurrence_vjp import fused_grad_flow
from rnnviz.core.sgd import PlainSGD

# F.cross_entropy's default: a target that scores nothing (a task's step without an output)
IGNORE_INDEX = -100
# Losses kept for the spike detector's median, and how many it needs before it judges.
SPIKE_WINDOW = 50
SPIKE_MIN_STEPS = 20
# The rollback ring: one snapshot every SNAPSHOT_EVERY steps, at most MAX_SNAPSHOTS of them,
# and fewer when the model is big (they must not hold more than SNAPSHOT_BUDGET_BYTES).
SNAPSHOT_EVERY = 50
MAX_SNAPSHOTS = 8
SNAPSHOT_BUDGET_BYTES = 256 * 2**20


@dataclass
class Snapshot:
    """A good point of the run to roll back to: the state after ``step`` steps."""

    step: int
    epoch: int
    batch_index: int
    params: list[Tensor]
    optimizer: dict[str, Any]
    carried: State | None


def _recurrent_weight(model: CharModel) -> Tensor | None:
    """The hidden-to-hidden matrix whose largest singular value says explode or vanish."""
    W_hh = getattr(model, "W_hh", None)
    if isinstance(W_hh, Tensor):
        return W_hh
    rnn = getattr(model, "rnn", None)
    weight = getattr(rnn, "weight_hh_l0", None)  # GRU/LSTM: the gates stacked, (kH, H)
    return weight if isinstance(weight, Tensor) else None


def _sigma_every(hidden: int) -> int:
    """Steps between two exact sigma_max computations.

    An SVD costs ~H^3: 0.04 ms at H=32 (every step is free) but 3.6 ms at H=256, half a fast
    step there, so it is redone every (H/64)^2 steps (16 at H=256, ~0.2 ms a step) and the
    value reused in between; W_hh moves little per step.
    """
    return max(1, (hidden // 64) ** 2)


class _GradFlow:
    """||dL/dH_t|| per position t, batch-averaged, for an autograd model.

    Wanted is the total derivative (through the output at t and through every later step).
    When the hidden sequence is a ``torch.stack`` of the per-step tensors (ScratchRNN), a
    pre-hook on each step's own autograd node sees exactly that: the node runs once, on the
    sum of all the gradients that reach H_t. The fused GRU/LSTM kernels keep the steps
    inside one node, so there only the hidden sequence's own gradient is available
    (``retain_grad``): the part through the output layer at t, to which the trainer adds the
    recurrent part (``core.recurrence_vjp.fused_grad_flow``).
    """

    def __init__(self, hidden_seq: Tensor, buffer: Tensor | None = None) -> None:
        B, T, H = hidden_seq.shape
        self.T = T
        self.total = False
        self.hidden_seq = hidden_seq
        self.seen = [False] * T
        fn = hidden_seq.grad_fn
        nodes = [] if fn is None else [node for node, _ in fn.next_functions if node is not None]
        if fn is not None and fn.name() == "StackBackward0" and len(nodes) == T:
            self.total = True
            # time-major, so that each hook writes one contiguous slab
            shape = (T, B, H)
            if buffer is None or buffer.shape != shape or buffer.dtype != hidden_seq.dtype:
                buffer = hidden_seq.new_empty(shape)
            self.buffer = buffer
            for t, node in enumerate(nodes):
                node.register_prehook(self._hook(t))
        elif hidden_seq.requires_grad:
            hidden_seq.retain_grad()

    def _hook(self, t: int) -> Any:
        def copy(grad_outputs: tuple[Tensor | None, ...]) -> None:
            # a copy, not a norm: the incoming gradient is a strided slice, and reducing it
            # there cost 10-40 % of the step; one norm over the buffer afterwards costs ~1 %
            g = grad_outputs[0]
            if g is not None:
                self.buffer[t].copy_(g)
                self.seen[t] = True

        return copy

    def result(self) -> np.ndarray:
        if self.total:
            grads, dim = (self.buffer if all(self.seen) else None), 1
        else:
            grads, dim = self.hidden_seq.grad, 0
        if grads is None:
            return np.full(self.T, np.nan)
        flow: np.ndarray = torch.linalg.vector_norm(grads, dim=2).mean(dim=dim).cpu().numpy()
        return flow


class GradReducer(Protocol):
    """Combines the processes' shares of a batch into the whole batch's numbers
    (core.distributed implements it; one process has none)."""

    def reduce_step(
        self, loss: float, tokens: int, grad_flow: np.ndarray, params: list[Tensor]
    ) -> tuple[float, int, np.ndarray]:
        """This process's mean loss over its ``tokens``, its grad flow and the gradients in
        ``p.grad`` -> the global mean loss, token count and grad flow, and the global mean
        gradient in every ``p.grad`` (or every ``p.grad`` None where any process has none or
        the global loss is non-finite). Identical on every process."""
        ...

    def reduce_sums(self, total: float, count: int) -> tuple[float, int]:
        """Sums over this process's validation rows -> the sums over all rows."""
        ...


# (logits (B, T, Q), targets (B, T)) -> the mean loss of the batch, differentiable
LossFn = Callable[[Tensor, Tensor], Tensor]
# the model -> a held-out score (higher is better); run without gradients
Metric = Callable[[CharModel], float]


class Trainer:
    """Trains ``model`` on ``batches``; see the module docstring for what a step does."""

    def __init__(
        self,
        model: CharModel,
        batches: Batches,
        cfg: TrainConfig,
        *,
        loss_fn: LossFn | None = None,
        metric: Metric | None = None,
    ) -> None:
        self.model = model
        self.batches = batches
        # a task's loss on (logits, targets) (core.tasks); None: the language model's
        # cross-entropy over every step
        self.loss_fn = loss_fn
        # a task's held-out metric (accuracy, exact match), measured where the validation
        # perplexity is; None: the language model has none
        self.metric = metric
        # data parallel training (core.distributed) sets this; None trains in one process
        self.reducer: GradReducer | None = None
        self.cfg = cfg
        self.params: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
        self.lr = cfg.lr
        self.clip_theta = cfg.clip_theta
        self.clip_enabled = cfg.clip_enabled
        self.optimizer = self._make_optimizer()
        self.step = 0
        self.epoch = 0
        self.batch_index = 0
        self.nonfinite_total = 0
        self.nonfinite_in_row = 0
        self.diverged = False
        # seconds spent in this run's steps and validations (StepRecord.wall_s says which);
        # a rollback keeps it: the time was spent
        self.wall_s = 0.0
        self.last_spike = False
        # the recent median loss the last spike was judged against (None: no spike)
        self.last_spike_median: float | None = None
        self.carried: State | None = None
        self.recent_losses: deque[float] = deque(maxlen=SPIKE_WINDOW)
        self._names = [name for name, _ in model.named_grad_params()]
        # without recurrence (the slide's MLP) W_hh starts at 0 and its gradient is dropped
        # before the norm, the clipping and the update: it stays exactly 0
        self._held_at_zero: list[Tensor] = []
        if not model.config.recurrence:
            self._held_at_zero = [p for name, p in model.named_parameters() if name == "W_hh"]
            with torch.no_grad():
                for p in self._held_at_zero:
                    p.zero_()
        self._weight = _recurrent_weight(model)
        self._sigma: float | None = None
        self._sigma_step = -1
        self._flow_buffer: Tensor | None = None
        # a GRU/LSTM's ||dL/dH_t|| through the recurrence too (recurrence_vjp, ~4-9 % of a
        # step); False: only the output layer's part, for a caller that reads no flow
        self.fused_flow = True
        self._backup_params = [p.detach().clone() for p in self.params]
        self._backup_opt: list[tuple[Tensor, Tensor]] = []
        param_bytes = sum(p.numel() * p.element_size() for p in self.params)
        per_snapshot = param_bytes * (3 if cfg.optimizer == "adam" else 1)
        self.max_snapshots = max(1, min(MAX_SNAPSHOTS, SNAPSHOT_BUDGET_BYTES // per_snapshot))
        self.snapshots: deque[Snapshot] = deque(maxlen=self.max_snapshots)
        self._take_snapshot()

    # ------------------------------------------------------------------ settings

    def _make_optimizer(self) -> torch.optim.Optimizer | PlainSGD:
        if self.cfg.optimizer == "adam":
            # foreach=None would make torch inspect every parameter on every step to pick an
            # implementation (~0.1 ms, a few % of a small step); on CPU it picks this one
            foreach = None if self.model.device.type != "cpu" else False
            return torch.optim.Adam(self.params, lr=self.lr, foreach=foreach)
        return PlainSGD(self.params, lr=self.lr)  # core/sgd.py says why not torch.optim.SGD

    def set_hyper(
        self,
        lr: float | None = None,
        clip_theta: float | None = None,
        clip_enabled: bool | None = None,
    ) -> None:
        """Change lr / clipping; takes effect at the next step."""
        if lr is not None:
            low, high = LR_RANGE
            if not low <= lr <= high:  # NaN fails too
                raise ValueError(f"lr must be in [{low:g}, {high:g}], not {lr}")
            self.lr = float(lr)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
        if clip_theta is not None:
            low, high = THETA_RANGE
            if not low <= clip_theta <= high:
                raise ValueError(f"clip theta must be in [{low:g}, {high:g}], not {clip_theta}")
            self.clip_theta = float(clip_theta)
        if clip_enabled is not None:
            self.clip_enabled = bool(clip_enabled)

    @property
    def loss_spike(self) -> bool:
        """Alias of ``last_spike`` (the name the session looks for)."""
        return self.last_spike

    def snapshot_steps(self) -> tuple[int, ...]:
        return tuple(s.step for s in self.snapshots)

    # ------------------------------------------------------------------ one step

    def train_step(self) -> StepRecord:
        """One optimizer step on the next batch (or a skipped one, ``nonfinite=True``)."""
        if self.diverged:
            raise RuntimeError("training diverged: roll back or reset before training on")
        start = time.perf_counter()
        X, Y = self.batches.batch(self.epoch, self.batch_index)
        device = self.model.device
        X, Y = X.to(device), Y.to(device)
        state = self.carried if self.batches.continues_state(self.batch_index) else None

        loss, final, grad_flow = self._loss_and_grads(X, Y, state)
        for p in self._held_at_zero:
            if p.grad is not None:
                p.grad.zero_()
        tokens = X.numel()
        if self.reducer is not None:
            # data parallel: X was this process's rows of the batch. From here on every
            # process holds the whole batch's loss and mean gradient, so the norms, the
            # clipping, the guards and the update below are those of one process on the whole
            # batch, and the same on every process (the parameters stay equal)
            loss, tokens, grad_flow = self.reducer.reduce_step(loss, tokens, grad_flow, self.params)
        grads = [p.grad for p in self.params]
        have_grads = all(g is not None for g in grads)
        nan = float("nan")
        before = after = nan
        per_param: dict[str, float] = {name: nan for name in self._names}
        clipped = False
        ok = math.isfinite(loss) and have_grads
        if ok:
            grad_list = [g for g in grads if g is not None]
            norms = torch.stack(torch._foreach_norm(grad_list)).tolist()
            per_param = dict(zip(self._names, norms, strict=True))
            # exactly what clip_grad_norm_ does (and returns), in its two public halves
            total = torch.nn.utils.get_total_norm(grad_list)
            before = float(total)
            ok = math.isfinite(before)
            # only above theta: clip_grads_with_norm_ scales by theta / (norm + 1e-6), which
            # shrinks a gradient just below theta too (by 0.05 % at theta = 1e-3)
            if ok and self.clip_enabled and before > self.clip_theta:
                torch.nn.utils.clip_grads_with_norm_(self.params, self.clip_theta, total)
                after = float(torch.nn.utils.get_total_norm(grad_list))
                clipped = True
            else:
                after = before
        if ok:
            ok = self._update()
        if ok:
            self.nonfinite_in_row = 0
            self.carried = final
        else:
            self.nonfinite_total += 1
            self.nonfinite_in_row += 1
            if self.nonfinite_in_row >= self.cfg.max_nonfinite_in_row:
                self.diverged = True
            # nothing computed from this batch is trusted, the state it ended in included
            self.carried = None
            for p in self.params:
                p.grad = None
        self.last_spike_median = None
        self.last_spike = ok and self._is_spike(loss)
        if ok:
            self.recent_losses.append(loss)

        epoch = self.epoch  # the record names the epoch its batch came from
        self.step += 1
        self.batch_index += 1
        if self.batch_index >= self.batches.steps_per_epoch:
            self.epoch += 1
            self.batch_index = 0
            self.carried = None
        # a run worse than uniform guessing is no point to roll back to
        if (
            ok
            and self.step % SNAPSHOT_EVERY == 0
            and not worse_than_uniform(loss, self.model.output_size)
        ):
            self._take_snapshot()
        elapsed = time.perf_counter() - start
        self.wall_s += elapsed
        val_ppl = val_metric = None
        if self.cfg.val_every > 0 and self.step % self.cfg.val_every == 0 and not self.diverged:
            val_ppl = self.evaluate()  # adds its own time to wall_s
            val_metric = self.evaluate_metric()
        return StepRecord(
            step=self.step,
            epoch=epoch,
            loss=loss,
            ppl=perplexity(loss),
            grad_norm_before_clip=before,
            grad_norm_after_clip=after,
            clipped=clipped,
            lr=self.lr,
            clip_theta=self.clip_theta,
            clip_enabled=self.clip_enabled,
            tokens_per_s=tokens / max(elapsed, 1e-9),
            nonfinite=not ok,
            nonfinite_total=self.nonfinite_total,
            param_grad_norms=per_param,
            grad_flow=frozen_array(grad_flow, dtype=np.float64),
            w_hh_sigma_max=self._sigma_max(),
            val_ppl=val_ppl,
            wall_s=self.wall_s,
            val_metric=val_metric,
        )

    def _loss_and_grads(
        self, X: Tensor, Y: Tensor, state: State | None
    ) -> tuple[float, State, np.ndarray]:
        """Mean cross-entropy, its gradient in every ``p.grad``, final state, grad flow."""
        model = self.model
        if isinstance(model, FastRNN):
            assert state is None or isinstance(state, Tensor)
            return model.loss_and_grads(X, Y, state)
        for p in self.params:
            p.grad = None
        logits, hidden_seq, final = model(X, state)
        flow = _GradFlow(hidden_seq, self._flow_buffer)
        if flow.total:
            self._flow_buffer = flow.buffer
        if self.loss_fn is not None:
            loss_t = self.loss_fn(logits, Y)
        else:
            loss_t = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
        loss = float(loss_t.detach())
        if not math.isfinite(loss):  # nothing to learn from: spare the backward pass
            return loss, detach_state(final), np.full(X.shape[1], np.nan)
        torch.autograd.backward(loss_t)
        # a bidirectional GRU/LSTM (the tagging task) reports the output layer's part alone:
        # the written-out recurrence is one direction's
        fused = isinstance(model, GRUModel | LSTMModel) and not model.bidirectional
        if self.fused_flow and not flow.total and fused:
            assert isinstance(model, GRUModel | LSTMModel)
            grad = hidden_seq.grad
            if grad is not None:  # the output layer's part; the recurrence's, written out
                return loss, detach_state(final), fused_grad_flow(model, X, state, hidden_seq, grad)
        return loss, detach_state(final), flow.result()

    def _update(self) -> bool:
        """The optimizer step, undone if it leaves a non-finite parameter."""
        with torch.no_grad():
            torch._foreach_copy_(self._backup_params, self.params)
            self._backup_optimizer_state()
            try:
                self.optimizer.step()
            except RuntimeError as exc:
                # torch refuses an lr * g that overflows the parameters' dtype, after it may
                # have updated some of them already: the same case as an update gone inf
                if "overflow" not in str(exc):
                    raise
            else:
                # a NaN or inf anywhere makes the norm non-finite (so does an overflowing
                # norm of parameters beyond ~1e19, which are no use either)
                if math.isfinite(float(torch.nn.utils.get_total_norm(self.params))):
                    return True
            torch._foreach_copy_(self.params, self._backup_params)
            if self._backup_opt:
                torch._foreach_copy_(
                    [t for t, _ in self._backup_opt], [b for _, b in self._backup_opt]
                )
            else:  # the optimizer's first step created its state: forget it again
                self.optimizer.state.clear()
        return False

    def _backup_optimizer_state(self) -> None:
        live = [
            t
            for p in self.params
            for t in self.optimizer.state.get(p, {}).values()
            if isinstance(t, Tensor)
        ]
        # the optimizer updates its state tensors in place, so the pairs are built once and
        # rebuilt only when the state was replaced (first step, load, rollback)
        if len(live) != len(self._backup_opt) or any(
            a is not b for a, (b, _) in zip(live, self._backup_opt, strict=True)
        ):
            self._backup_opt = [(t, t.detach().clone()) for t in live]
        elif live:
            torch._foreach_copy_([b for _, b in self._backup_opt], live)

    def _is_spike(self, loss: float) -> bool:
        factor = self.cfg.loss_spike_factor
        if factor <= 0 or len(self.recent_losses) < SPIKE_MIN_STEPS:
            return False
        median = statistics.median(self.recent_losses)
        if loss > factor * median:
            self.last_spike_median = float(median)
            return True
        return False

    def _sigma_max(self) -> float | None:
        W = self._weight
        if W is None:
            return None
        if self._sigma is None or self.step - self._sigma_step >= _sigma_every(W.shape[1]):
            with torch.no_grad():
                self._sigma = float(torch.linalg.matrix_norm(W.detach(), ord=2))
            self._sigma_step = self.step
        return self._sigma

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def evaluate(self) -> float:
        """Validation perplexity exp(mean cross-entropy) over ``batches.val_batches()``.

        Every validation batch starts from a zero state, whatever the partitioning: the
        number then means the same for random and sequential runs. Gradients are untouched.
        """
        start = time.perf_counter()
        device = self.model.device
        total = 0.0
        count = 0
        for X, Y in self.batches.val_batches():
            logits, _, _ = self.model(X.to(device), None)
            total += float(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), Y.to(device).reshape(-1), reduction="sum"
                )
            )
            # a task's steps without an output hold the ignore index (core.tasks); the
            # language model has none, so this is Y.numel() there
            count += int((Y != IGNORE_INDEX).sum())
        if self.reducer is not None:  # data parallel: each process validated its rows
            total, count = self.reducer.reduce_sums(total, count)
        self.wall_s += time.perf_counter() - start
        if count == 0:
            return math.nan
        return perplexity(total / count)

    @torch.no_grad()
    def evaluate_metric(self) -> float | None:
        """The task's held-out metric (None without one); its time counts in wall_s."""
        if self.metric is None:
            return None
        start = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        try:
            value = float(self.metric(self.model))
        finally:
            self.model.train(was_training)
        self.wall_s += time.perf_counter() - start
        return value

    # ------------------------------------------------------------------ rollback

    def _take_snapshot(self) -> None:
        with torch.no_grad():
            self.snapshots.append(
                Snapshot(
                    step=self.step,
                    epoch=self.epoch,
                    batch_index=self.batch_index,
                    params=[p.detach().clone() for p in self.params],
                    optimizer=copy.deepcopy(self.optimizer.state_dict()),
                    carried=None if self.carried is None else _clone_state(self.carried),
                )
            )

    def rollback(self, step: int) -> int:
        """Restore the newest kept snapshot at or before ``step``; returns its step.

        The data position goes back too, so the same batches replay; lr and clipping stay
        as they are now (lowering lr and rolling back is the usual cure). Snapshots after
        the restored one are dropped: they belong to the abandoned continuation.
        """
        candidates = [s for s in self.snapshots if s.step <= step]
        if not candidates:
            raise ValueError(
                f"no snapshot at or before step {step}; kept: {list(self.snapshot_steps())}"
            )
        snap = candidates[-1]
        with torch.no_grad():
            torch._foreach_copy_(self.params, snap.params)
        self.optimizer.load_state_dict(copy.deepcopy(snap.optimizer))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self._backup_opt = []
        self.step, self.epoch, self.batch_index = snap.step, snap.epoch, snap.batch_index
        self.carried = None if snap.carried is None else _clone_state(snap.carried)
        self.nonfinite_in_row = 0
        self.diverged = False
        self.last_spike = False
        self.recent_losses.clear()
        self._sigma = None
        while self.snapshots and self.snapshots[-1].step > snap.step:
            self.snapshots.pop()
        return snap.step

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Tensors (optimizer state, carried hidden state) and JSON-able meta.

        With the model's parameters this is all a resumed run needs to continue exactly as
        an uninterrupted one. The rollback ring is not included.
        """
        tensors: dict[str, Tensor] = {}
        opt = self.optimizer.state_dict()
        opt_scalars: dict[str, dict[str, Any]] = {}
        for index, entry in opt["state"].items():
            for key, value in entry.items():
                if isinstance(value, Tensor):
                    tensors[f"optimizer.{index}.{key}"] = value.detach().clone()
                else:
                    opt_scalars.setdefault(str(index), {})[key] = value
        if self.carried is not None:
            if isinstance(self.carried, tuple):
                tensors["carried.h"] = self.carried[0].detach().clone()
                tensors["carried.c"] = self.carried[1].detach().clone()
            else:
                tensors["carried.h"] = self.carried.detach().clone()
        meta: dict[str, Any] = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "nonfinite_total": self.nonfinite_total,
            "nonfinite_in_row": self.nonfinite_in_row,
            "diverged": self.diverged,
            "lr": self.lr,
            "clip_theta": self.clip_theta,
            "clip_enabled": self.clip_enabled,
            "optimizer": self.cfg.optimizer,
            "optimizer_scalars": opt_scalars,
            "recent_losses": list(self.recent_losses),
            "wall_s": self.wall_s,
        }
        json.dumps(meta)  # fail here, not in the checkpoint writer, if something slipped in
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s output (the model's parameters loaded separately)."""
        if meta.get("optimizer", self.cfg.optimizer) != self.cfg.optimizer:
            raise ValueError(
                f"the saved optimizer state is for {meta['optimizer']}, not {self.cfg.optimizer}"
            )
        state: dict[int, dict[str, Any]] = {}
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                state.setdefault(int(index), {})[key] = value
        for index, scalars in meta.get("optimizer_scalars", {}).items():
            state.setdefault(int(index), {}).update(scalars)
        opt = self.optimizer.state_dict()
        opt["state"] = state
        self.optimizer.load_state_dict(opt)
        self._backup_opt = []
        self.set_hyper(
            lr=float(meta["lr"]),
            clip_theta=float(meta["clip_theta"]),
            clip_enabled=bool(meta["clip_enabled"]),
        )
        self.step = int(meta["step"])
        self.epoch = int(meta["epoch"])
        self.batch_index = int(meta["batch_index"])
        self.nonfinite_total = int(meta.get("nonfinite_total", 0))
        self.nonfinite_in_row = int(meta.get("nonfinite_in_row", 0))
        self.diverged = bool(meta.get("diverged", False))
        self.wall_s = float(meta.get("wall_s", 0.0))  # absent in checkpoints from before it
        self.recent_losses = deque(
            (float(x) for x in meta.get("recent_losses", [])), maxlen=SPIKE_WINDOW
        )
        self.last_spike = False
        device = self.model.device
        h = tensors.get("carried.h")
        c = tensors.get("carried.c")
        if h is None:
            self.carried = None
        elif c is None:
            self.carried = h.to(device).clone()
        else:
            self.carried = (h.to(device).clone(), c.to(device).clone())
        self._sigma = None
        self.snapshots.clear()
        self._take_snapshot()


def _clone_state(state: State) -> State:
    if isinstance(state, tuple):
        return (state[0].detach().clone(), state[1].detach().clone())
    return state.detach().clone()

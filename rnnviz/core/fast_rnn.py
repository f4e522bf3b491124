"""The scratch RNN with a hand-written BPTT: same parameters, same numbers, fewer ops.

Autograd records ~10 small ops per time step and replays them one by one. Here the work that
does not depend on the recurrence is done once over all T*B rows (the input row lookup, the
output layer, the softmax-cross-entropy gradient, every weight gradient), and only what must be
sequential stays in the loop: one ``addmm`` plus one element-wise op per step, forward and
backward, written in place into time-major buffers (so each step is a contiguous (B, H) slab
that BLAS writes into directly).

Internally everything is time-major: row ``t * B + b`` is step t of sequence b.

The per-step product is ``slab.addmm_(prev, W)`` on the (B, H) slabs: the other layouts and
kernels tried were no faster (docs/performance-notes.md lists them with their timings). The
recurrent products, dW_hh and the output layer are most of a step; the rest is element-wise
passes over the (T*B, H) buffers, kept few.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import SCRATCH_PARAM_NAMES, ScratchRNN, State

_LOG2_E = 1.0 / math.log(2.0)


def _recurrence(
    x_tm: Tensor,
    state: Tensor | None,
    W_xh: Tensor,
    W_hh: Tensor,
    b_h: Tensor,
    tanh: bool,
    out: Tensor | None = None,
    out_slabs: tuple[Tensor, ...] | None = None,
) -> Tensor:
    """H_t = phi(X_t W_xh + H_{t-1} W_hh + b_h) for all t; returns (T, B, H), time-major.

    ``x_tm`` is (T, B). ``state`` None means H_{-1} = 0, which saves the first matmul.
    ``out`` is an optional (T*B, H) buffer to write into, ``out_slabs`` its T (B, H) step views
    if the caller keeps them with the buffer (making the 35 views costs ~15 us per call).
    """
    T, B = x_tm.shape
    rows = x_tm.reshape(-1)
    if not tanh:
        # the pre-activations of every step start as the input row lookup plus bias; each step
        # adds its recurrent term and applies phi in place, so the buffer ends up holding H
        hs = torch.index_select(W_xh, 0, rows, out=out).view(T, B, -1)
        hs.add_(b_h)
        prev = state
        # one call for all T slab views: indexing costs per call
        for cur in hs.unbind(0) if out_slabs is None else out_slabs:
            if prev is not None:
                cur.addmm_(prev, W_hh)
            cur.relu_()
            prev = cur
        return hs
    # tanh(a) = 2 sigmoid(2a) - 1, and torch's CPU sigmoid is several times faster than its
    # tanh. The loop keeps S_t = sigmoid(2 a_t); since H_t W_hh = S_t (2 W_hh) - 1^T W_hh, the
    # factor 2 and the constant row fold into the weights and the bias, so each step is one
    # addmm + one sigmoid, and S becomes H for all steps at once after the loop.
    #
    # The per-step constants (bias, constant row) go into the small (V, H) lookup tables, not
    # into a pass over the (T*B, H) buffer: the lookup writes every row anyway, and a pass
    # over the 1.1 MB buffer costs ~25 us at config B, a (28, 256) add well under 5.
    H = W_hh.shape[1]
    if out is None:
        out = W_xh.new_empty(T * B, H)
    table_0 = torch.add(W_xh, b_h).mul_(2.0)  # step 0: H_{-1} = 0 or the given state
    hs = out.view(T, B, H)
    torch.index_select(table_0, 0, rows[:B], out=out[:B])
    if T > 1:
        table_rest = table_0.sub_(W_hh.sum(0), alpha=2.0)  # table_0 is no longer needed
        torch.index_select(table_rest, 0, rows[B:], out=out[B:])
    if state is not None:
        hs[0].addmm_(state, W_hh, alpha=2.0)
    W_hh_4 = W_hh * 4.0
    slabs = hs.unbind(0) if out_slabs is None else out_slabs
    slabs[0].sigmoid_()
    for prev, cur in zip(slabs[:-1], slabs[1:], strict=True):
        cur.addmm_(prev, W_hh_4)
        cur.sigmoid_()
    # H = 2 S - 1 in one pass (mul_ then sub_ is two passes: 39 us vs 18 us at config B)
    minus_one = torch.full((), -1.0, dtype=hs.dtype, device=hs.device)
    torch.add(minus_one, hs, alpha=2.0, out=hs)
    return hs


def _backward_recurrence(
    dh: Tensor,
    hs: Tensor,
    state: Tensor | None,
    x_tm: Tensor,
    W_hh: Tensor,
    vocab_size: int,
    tanh: bool,
    da_out: Tensor | None = None,
    slabs: tuple[tuple[Tensor, ...], tuple[Tensor, ...]] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """BPTT through the recurrence.

    ``dh`` (T, B, H) holds the direct gradients dL/dH_t (from the output layer); it is
    overwritten in place with the total dL/dH_t (through all later steps too), which is what the
    grad-flow plot shows. Returns (dW_xh, dW_hh, db_h, dA) with dA (T, B, H) the gradient of
    the pre-activations; dL/dH_{-1} = dA[0] W_hh^T is left to the caller (only the autograd path
    needs it). ``da_out`` is an optional (T, B, H) buffer for dA; ``slabs`` the step views
    (``dh.unbind(0)``, ``da_out.unbind(0)``) if the caller keeps them.
    """
    T, B, H = hs.shape
    # phi'(a_t) expressed through H_t = phi(a_t), for every step at once; the loop turns the
    # buffer into dA_t = dH_t * phi'(a_t) in place
    if tanh:
        one = torch.ones((), dtype=hs.dtype, device=hs.device)
        da = torch.addcmul(one, hs, hs, value=-1.0, out=da_out)  # 1 - H^2
    else:
        da = torch.gt(hs, 0, out=da_out) if da_out is not None else (hs > 0).to(hs.dtype)
    W_hh_T = W_hh.t()
    dh_slabs, da_slabs = (dh.unbind(0), da.unbind(0)) if slabs is None else slabs
    da_slabs[-1].mul_(dh_slabs[-1])
    for t in range(T - 2, -1, -1):
        dh_t = dh_slabs[t]
        dh_t.addmm_(da_slabs[t + 1], W_hh_T)
        da_slabs[t].mul_(dh_t)
    da_rows = da.view(T * B, H)
    # every weight gradient is one op over all T*B rows instead of T small ones
    dW_hh = torch.mm(hs[:-1].reshape(-1, H).t(), da[1:].reshape(-1, H))
    if state is not None:
        dW_hh.addmm_(state.t(), da[0])
    dW_xh = torch.zeros(vocab_size, H, dtype=hs.dtype, device=hs.device)
    dW_xh.index_add_(0, x_tm.reshape(-1), da_rows)
    # every row of dA lands in exactly one row of dW_xh, so its (V, H) column sums are the
    # bias gradient: no second pass over the (T*B, H) buffer (~19 us at config B)
    db_h = dW_xh.sum(0)
    return dW_xh, dW_hh, db_h, da


def _grad_flow(dh: Tensor) -> np.ndarray:
    """(T, B, H) total dL/dH_t -> (T,) per-row L2 norm averaged over the batch."""
    flow: np.ndarray = torch.linalg.vector_norm(dh, dim=2).mean(dim=1).cpu().numpy()
    return flow


class _RecurrenceFn(torch.autograd.Function):
    """The recurrence as one autograd node, so ``torch.autograd.grad`` works through it.

    Only the hidden sequence is produced here; the output layer stays ordinary autograd, so
    ``hiddens`` is upstream of ``logits`` exactly as in ScratchRNN (in both models a gradient
    taken w.r.t. ``hiddens`` is the direct part: the recurrence is hidden inside).
    """

    @staticmethod
    def forward(
        ctx: Any,
        tokens: Tensor,
        state: Tensor | None,
        W_xh: Tensor,
        W_hh: Tensor,
        b_h: Tensor,
        tanh: bool,
    ) -> Tensor:
        x_tm = tokens.t().contiguous()
        hs = _recurrence(x_tm, state, W_xh, W_hh, b_h, tanh)
        ctx.save_for_backward(hs, W_hh, x_tm, state)
        ctx.tanh = tanh
        ctx.vocab_size = W_xh.shape[0]
        return hs.transpose(0, 1).contiguous()  # (B, T, H)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_hiddens: Tensor
    ) -> tuple[None, Tensor | None, Tensor, Tensor, Tensor, None]:
        hs, W_hh, x_tm, state = ctx.saved_tensors
        dh = grad_hiddens.transpose(0, 1).contiguous()  # (T, B, H); overwritten in place
        dW_xh, dW_hh, db_h, da = _backward_recurrence(
            dh, hs, state, x_tm, W_hh, ctx.vocab_size, ctx.tanh
        )
        d_state = None
        if state is not None and ctx.needs_input_grad[1]:
            d_state = da[0] @ W_hh.t()
        return None, d_state, dW_xh, dW_hh, db_h, None


class _Workspace:
    """Buffers reused from one training step to the next.

    A fresh multi-megabyte tensor is a fresh ``mmap`` on CPU, and touching its pages costs more
    than the arithmetic done in it; the trainer calls with the same shapes every step.
    """

    def __init__(self, T: int, B: int, H: int, V: int, like: Tensor) -> None:
        N = T * B
        self.hs = like.new_empty(N, H)
        self.dh = like.new_empty(N, H)
        self.da = like.new_empty(T, B, H)
        self.logits_t = like.new_empty(V, N)  # vocabulary-major: reductions run along N
        # the per-step (B, H) views the loops walk, made once (35 views cost ~15 us per call)
        self.hs_slabs = self.hs.view(T, B, H).unbind(0)
        self.dh_slabs = self.dh.view(T, B, H).unbind(0)
        self.da_slabs = self.da.unbind(0)
        self.minus_one = torch.full((1, N), -1.0, dtype=like.dtype, device=like.device)


class FastRNN(ScratchRNN):
    """ScratchRNN's parameters and numbers with a hand-written backward (see module doc)."""

    kind = "fast"

    def __init__(
        self, vocab_size: int, config: ModelConfig, output_size: int | None = None
    ) -> None:
        super().__init__(vocab_size, config, output_size)
        self._tanh = config.activation == "tanh"
        self._workspaces: dict[tuple[Any, ...], _Workspace] = {}

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, Tensor, State]:
        assert state is None or isinstance(state, Tensor)
        if not torch.is_grad_enabled():
            x_tm = tokens.t().contiguous()
            hs = _recurrence(x_tm, state, self.W_xh, self.W_hh, self.b_h, self._tanh)
            T, B, H = hs.shape
            logits = torch.addmm(self.b_q, hs.view(T * B, H), self.W_hq).view(T, B, -1)
            final = hs[-1].clone()
            return logits.transpose(0, 1).contiguous(), hs.transpose(0, 1).contiguous(), final
        hiddens: Tensor = _RecurrenceFn.apply(  # type: ignore[no-untyped-call]
            tokens, state, self.W_xh, self.W_hh, self.b_h, self._tanh
        )
        logits = hiddens @ self.W_hq + self.b_q  # (B, T, V)
        return logits, hiddens, hiddens[:, -1]

    def _workspace_for(self, T: int, B: int) -> _Workspace:
        like = self.W_hh
        key = (T, B, self.hidden_size, self.vocab_size, like.dtype, like.device)
        ws = self._workspaces.pop(key, None)
        if ws is None:
            ws = _Workspace(T, B, self.hidden_size, self.vocab_size, like)
        self._workspaces[key] = ws  # most recently used last
        # two shapes: the full batch and an epoch's smaller last one
        while len(self._workspaces) > 2:
            del self._workspaces[next(iter(self._workspaces))]
        return ws

    @torch.no_grad()
    def loss_and_grads(
        self, X: Tensor, Y: Tensor, state: Tensor | None
    ) -> tuple[float, Tensor, np.ndarray]:
        """Mean cross-entropy over all B*T tokens, its gradients into ``p.grad`` (assigned).

        ``state`` is a constant (truncated BPTT): no gradient flows into it. Returns the loss,
        the final state (detached), and grad flow (T,): ||dL/dH_t|| (total derivative, through
        later steps too) per batch row, averaged over the batch.
        """
        W_xh, W_hh, b_h = self.W_xh.detach(), self.W_hh.detach(), self.b_h.detach()
        W_hq, b_q = self.W_hq.detach(), self.b_q.detach()
        B, T = X.shape
        N = B * T
        ws = self._workspace_for(T, B)
        x_tm = X.t().contiguous()
        y_tm = Y.t().reshape(1, N)
        if state is not None:
            state = state.detach()
        hs = _recurrence(x_tm, state, W_xh, W_hh, b_h, self._tanh, out=ws.hs, out_slabs=ws.hs_slabs)
        H = hs.shape[2]
        hs_rows = hs.view(N, H)

        # Output layer and softmax, vocabulary-major (V, N): with V ~ 30 the per-row softmax
        # kernels are slow, while reductions over dim 0 run along long contiguous rows. The
        # logits are scaled by log2(e) (folded into the matmul) so that exp2, much cheaper than
        # exp here, gives the same softmax.
        z = torch.addmm(
            (b_q * _LOG2_E).unsqueeze(1), W_hq.t() * _LOG2_E, hs_rows.t(), out=ws.logits_t
        )
        z_max = z.amax(0)  # (N,)
        z_target = z.gather(0, y_tm).squeeze(0) - z_max
        z.sub_(z_max).exp2_()
        total = z.sum(0)
        # CE = ln(sum exp(o)) - o_y = ln 2 * (log2(sum 2^z) - z_y), z = o log2(e), max removed
        loss = math.log(2.0) * float((total.log2() - z_target).sum()) / N
        # d(mean CE)/d logits = (softmax - onehot) / N; the 1/N is folded into the small
        # matrices below instead of a pass over this (V, N) buffer
        z.div_(total)
        z.scatter_add_(0, y_tm, ws.minus_one)
        d_out_t = z  # (V, N)
        dW_hq = torch.mm(d_out_t, hs_rows).t().contiguous().mul_(1.0 / N)
        db_q = d_out_t.sum(1).mul_(1.0 / N)
        dh = torch.mm(d_out_t.t(), W_hq.t() * (1.0 / N), out=ws.dh).view(T, B, H)

        dW_xh, dW_hh, db_h, _ = _backward_recurrence(
            dh,
            hs,
            state,
            x_tm,
            W_hh,
            self.vocab_size,
            self._tanh,
            da_out=ws.da,
            slabs=(ws.dh_slabs, ws.da_slabs),
        )
        grads = (dW_xh, dW_hh, db_h, dW_hq, db_q)
        for name, g in zip(SCRATCH_PARAM_NAMES, grads, strict=True):
            getattr(self, name).grad = g
        return loss, hs[-1].clone(), _grad_flow(dh)

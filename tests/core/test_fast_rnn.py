"""FastRNN against the textbook ScratchRNN (autograd) and torch.nn.RNN with copied weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnviz.core.config import ModelConfig
from rnnviz.core.fast_rnn import FastRNN
from rnnviz.core.model import SCRATCH_PARAM_NAMES, ScratchRNN, build_model

torch.set_num_threads(1)  # tiny tensors: a second thread only adds hand-overs

V, H, B, T = 11, 16, 5, 9


TOL = {torch.float32: 1e-5, torch.float64: 1e-11}


def make_pair(
    activation: str, dtype: torch.dtype = torch.float32, hidden: int = H, scale_hh: float = 1.0
) -> tuple[ScratchRNN, FastRNN]:
    cfg = ModelConfig(kind="fast", activation=activation, hidden_size=hidden)  # type: ignore[arg-type]
    fast = build_model(V, cfg, seed=3).to(dtype)
    assert isinstance(fast, FastRNN)
    with torch.no_grad():
        # a larger W_hh puts tanh in saturation and lets relu units switch: a harder check
        fast.W_hh.mul_(scale_hh)
    scratch = ScratchRNN(V, cfg).to(dtype)
    scratch.load_state_dict(fast.state_dict())
    return scratch, fast


def reference_rnn(model: ScratchRNN, activation: str) -> nn.RNN:
    """torch.nn.RNN holding the same weights: W_ih = W_xh^T, W_hh^T, bias_ih = b_h, bias_hh = 0."""
    dtype = model.W_hh.dtype
    rnn = nn.RNN(V, model.hidden_size, nonlinearity=activation, batch_first=True).to(dtype)
    weights = dict(rnn.named_parameters())
    with torch.no_grad():
        weights["weight_ih_l0"].copy_(model.W_xh.t())
        weights["weight_hh_l0"].copy_(model.W_hh.t())
        weights["bias_ih_l0"].copy_(model.b_h)
        weights["bias_hh_l0"].zero_()
    return rnn


def data(
    dtype: torch.dtype, with_state: bool, hidden: int = H
) -> tuple[Tensor, Tensor, Tensor | None]:
    gen = torch.Generator().manual_seed(7)
    X = torch.randint(0, V, (B, T), generator=gen)
    Y = torch.randint(0, V, (B, T), generator=gen)
    state = torch.rand(B, hidden, generator=gen, dtype=dtype) * 1.6 - 0.8 if with_state else None
    return X, Y, state


def ce(logits: Tensor, Y: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))


def assert_close(a: Tensor, b: Tensor, tol: float) -> None:
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


CASES = [
    (act, dtype, with_state, scale)
    for act in ("tanh", "relu")
    for dtype in (torch.float32, torch.float64)
    for with_state in (False, True)
    for scale in (1.0, 3.0)
]


@dataclass
class Case:
    activation: str
    tol: float
    scratch: ScratchRNN
    fast: FastRNN
    X: Tensor
    Y: Tensor
    state: Tensor | None


@pytest.fixture(params=CASES, ids=lambda c: f"{c[0]}-{str(c[1])[6:]}-state{c[2]}-x{c[3]}")
def case(request: pytest.FixtureRequest) -> Case:
    activation, dtype, with_state, scale_hh = request.param
    scratch, fast = make_pair(activation, dtype, scale_hh=scale_hh)
    X, Y, state = data(dtype, with_state)
    return Case(activation, TOL[dtype], scratch, fast, X, Y, state)


def test_scratch_fast_and_nn_rnn_agree(case: Case) -> None:
    scratch, fast, X, Y, state, tol = case.scratch, case.fast, case.X, case.Y, case.state, case.tol
    dtype = scratch.W_hh.dtype
    rnn = reference_rnn(scratch, case.activation)

    results = {}
    for name, model in (("scratch", scratch), ("fast", fast)):
        s0 = None if state is None else state.clone().requires_grad_(True)
        logits, hiddens, final = model(X, s0)
        params = [getattr(model, n) for n in SCRATCH_PARAM_NAMES]
        inputs = params + ([s0] if s0 is not None else [])
        grads = torch.autograd.grad(ce(logits, Y), inputs)
        results[name] = (logits.detach(), hiddens.detach(), final.detach(), grads)

    s0 = None if state is None else state.clone().unsqueeze(0).requires_grad_(True)
    x = F.one_hot(X, V).to(dtype)
    out, h_n = rnn(x, s0)
    logits = out @ scratch.W_hq + scratch.b_q
    inputs = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, scratch.W_hq, scratch.b_q]
    inputs += [s0] if s0 is not None else []
    g = torch.autograd.grad(ce(logits, Y), inputs)
    grads = (g[0].t(), g[1].t(), *g[2:])
    if s0 is not None:
        grads = (*grads[:5], grads[5].squeeze(0))
    results["nn.RNN"] = (logits.detach(), out.detach(), h_n.squeeze(0).detach(), grads)

    want = results["scratch"]
    for name in ("fast", "nn.RNN"):
        got = results[name]
        for a, b in zip(got[:3], want[:3], strict=True):
            assert_close(a, b, tol)
        assert len(got[3]) == len(want[3])
        for a, b in zip(got[3], want[3], strict=True):
            assert_close(a, b, tol)


def test_loss_and_grads_equal_autograd(case: Case) -> None:
    scratch, fast, X, Y, state, tol = case.scratch, case.fast, case.X, case.Y, case.state, case.tol
    logits, _, final = scratch(X, state)
    loss = ce(logits, Y)
    params = [getattr(scratch, n) for n in SCRATCH_PARAM_NAMES]
    want = torch.autograd.grad(loss, params)

    got_loss, got_final, flow = fast.loss_and_grads(X, Y, state)
    assert got_loss == pytest.approx(float(loss.detach()), abs=tol, rel=tol)
    assert not got_final.requires_grad
    assert_close(got_final, final.detach(), tol)
    for name, w in zip(SCRATCH_PARAM_NAMES, want, strict=True):
        g = getattr(fast, name).grad
        assert g is not None and g.shape == w.shape
        assert_close(g, w, tol)
    assert flow.shape == (T,) and np.all(np.isfinite(flow))


def total_hidden_grad_norms(
    model: ScratchRNN, X: Tensor, Y: Tensor, state: Tensor | None
) -> np.ndarray:
    """The textbook loop again, with retain_grad on every H_t the recurrence itself uses:
    H_t.grad is then the total dL/dH_t (direct + through every later step)."""
    H_t = torch.zeros(X.shape[0], model.hidden_size, dtype=model.W_hh.dtype)
    if state is not None:
        H_t = state
    x_proj = model.W_xh[X]
    steps = []
    for t in range(X.shape[1]):
        H_t = model.phi(x_proj[:, t] + H_t @ model.W_hh + model.b_h)
        H_t.retain_grad()
        steps.append(H_t)
    logits = torch.stack(steps, dim=1) @ model.W_hq + model.b_q
    torch.autograd.backward(ce(logits, Y))
    return np.array([float(torch.linalg.vector_norm(h.grad, dim=1).mean()) for h in steps])


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("with_state", [False, True])
def test_grad_flow_is_the_total_hidden_gradient(activation: str, with_state: bool) -> None:
    scratch, fast = make_pair(activation, torch.float64, scale_hh=3.0)
    X, Y, state = data(torch.float64, with_state)
    want = total_hidden_grad_norms(scratch, X, Y, state)
    _, _, flow = fast.loss_and_grads(X, Y, state)
    np.testing.assert_allclose(flow, want, rtol=1e-10, atol=1e-14)
    # the recurrent part is really in it: the last step has only the direct part, so the
    # earlier steps differ from what the output layer alone would give
    assert not np.allclose(flow[:-1], flow[-1])


def test_loss_and_grads_assigns_and_reuses_buffers_safely() -> None:
    scratch, fast = make_pair("tanh")
    X, Y, state = data(torch.float32, True)
    loss1, final1, flow1 = fast.loss_and_grads(X, Y, state)
    grads1 = [getattr(fast, n).grad.clone() for n in SCRATCH_PARAM_NAMES]
    # another shape in between (the last batch of an epoch is smaller), then the first again
    fast.loss_and_grads(X[:3, :4], Y[:3, :4], None)
    fast.loss_and_grads(X[:2], Y[:2], state[:2] if state is not None else None)
    loss2, final2, flow2 = fast.loss_and_grads(X, Y, state)
    assert loss1 == loss2
    assert torch.equal(final1, final2)
    np.testing.assert_array_equal(flow1, flow2)
    for name, g1 in zip(SCRATCH_PARAM_NAMES, grads1, strict=True):
        assert torch.equal(getattr(fast, name).grad, g1)  # assigned, not accumulated


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_forward_without_grad_is_the_same_fast_loop(activation: str) -> None:
    scratch, fast = make_pair(activation, scale_hh=3.0)
    X, _, state = data(torch.float32, True)
    with torch.no_grad():
        got = fast(X, state)
        want = scratch(X, state)
    for a, b in zip(got, want, strict=True):
        assert isinstance(a, Tensor) and isinstance(b, Tensor)
        assert a.shape == b.shape and a.is_contiguous()
        assert_close(a, b, 1e-5)
    logits, hiddens, final = fast(X, state)  # with grad: the autograd.Function path
    assert logits.requires_grad and hiddens.requires_grad
    assert_close(hiddens.detach(), got[1], 1e-6)


def test_single_step_and_batch_of_one() -> None:
    scratch, fast = make_pair("tanh")
    X = torch.tensor([[3]])
    Y = torch.tensor([[4]])
    loss, final, flow = fast.loss_and_grads(X, Y, None)
    logits, _, _ = scratch(X)
    want = torch.autograd.grad(ce(logits, Y), [scratch.W_hh, scratch.W_xh])
    assert loss == pytest.approx(float(ce(logits, Y).detach()), rel=1e-6)
    assert torch.count_nonzero(fast.W_hh.grad) == 0  # type: ignore[arg-type]
    assert_close(fast.W_hh.grad, want[0], 1e-6)  # type: ignore[arg-type]
    assert_close(fast.W_xh.grad, want[1], 1e-6)  # type: ignore[arg-type]
    assert final.shape == (1, H) and flow.shape == (1,)

"""The training-time gradient flow of a GRU/LSTM, ||dL/dH_t||, is the total derivative (through
the output layer and every later step), as for the scratch RNN: against autograd on the same
torch.nn stack stepped one step at a time, with each step's top-layer h a node (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rnnviz.core.config import RunConfig
from rnnviz.core.model import GRUModel, LSTMModel
from rnnviz.core.recurrence_vjp import flow_rows, fused_grad_flow
from rnnviz.core.runs import build_run

torch.set_num_threads(1)
H = 8


def reference_flow(model: GRUModel | LSTMModel, X: Tensor, Y: Tensor, state: object) -> np.ndarray:
    rnn, L = model.rnn, model.rnn.num_layers
    B, T = X.shape
    V = model.vocab_size
    x = nn.functional.one_hot(X, V).float()
    if state is None:
        h, c = torch.zeros(L, B, H), torch.zeros(L, B, H)
    elif isinstance(state, tuple):
        h, c = (s.reshape(L, B, H).clone() for s in state)
    else:
        h, c = state.reshape(L, B, H).clone(), torch.zeros(L, B, H)
    tops = []
    for t in range(T):
        if isinstance(model, LSTMModel):
            _, (h_n, c) = rnn(x[:, t : t + 1], (h, c))
        else:
            _, h_n = rnn(x[:, t : t + 1], h)
        top = h_n[-1].clone()
        tops.append(top)
        h = torch.cat([h_n[:-1], top[None]])
    logits = torch.stack(tops, 1) @ model.W_hq + model.b_q
    loss = nn.functional.cross_entropy(logits.reshape(-1, V), Y.reshape(-1))
    grads = torch.autograd.grad(loss, tops)
    # (B, T): every row's ||dL/dh_t|| of the whole batch's loss
    return torch.stack([g.norm(dim=-1) for g in grads], dim=1).detach().numpy()


@pytest.mark.parametrize("partition", ["random", "sequential"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_the_training_flow_of_a_fused_model_is_the_total_derivative(
    kind: str, layers: int, partition: str
) -> None:
    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 3000},
        model={"kind": kind, "hidden_size": H, "num_layers": layers},
        train={"batch_size": 40, "num_steps": 7, "windows_per_epoch": 240, "val_windows": 8,
               "partition": partition},
    )  # fmt: skip
    run = build_run(cfg)
    trainer = run.trainer
    carried = 0
    for _ in range(3):  # a sequential partition carries the state into steps 2 and 3
        X, Y = run.batches.batch(trainer.epoch, trainer.batch_index)
        state = trainer.carried if run.batches.continues_state(trainer.batch_index) else None
        carried += state is not None
        rows = flow_rows(X.shape[0])
        assert rows == 2  # a sixteenth of the batch's rows
        expected = reference_flow(run.model, X, Y, state)[:rows].mean(axis=0)
        record = trainer.train_step()
        np.testing.assert_allclose(record.grad_flow, expected, rtol=1e-5, atol=0)
        # more than the output layer's part: the recurrence adds to every step but the last
        assert np.all(np.isfinite(record.grad_flow))
    assert carried == (2 if partition == "sequential" else 0)


def test_a_large_batch_is_measured_on_its_first_rows() -> None:
    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 3000},
        model={"kind": "lstm", "hidden_size": H},
        train={"batch_size": 10, "num_steps": 5, "windows_per_epoch": 40, "val_windows": 8},
    )
    run = build_run(cfg)
    model = run.model
    assert isinstance(model, LSTMModel)
    X, Y = run.batches.batch(0, 0)
    logits, hidden_seq, _ = model(X)
    hidden_seq.retain_grad()
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
    loss.backward()
    assert hidden_seq.grad is not None
    three = fused_grad_flow(model, X, None, hidden_seq, hidden_seq.grad, rows=3)
    # the first three rows' own total derivatives of the whole batch's loss
    per_row = reference_flow(model, X, Y, None)
    np.testing.assert_allclose(three, per_row[:3].mean(axis=0), rtol=1e-5)
    every = fused_grad_flow(model, X, None, hidden_seq, hidden_seq.grad, rows=10)
    np.testing.assert_allclose(every, per_row.mean(axis=0), rtol=1e-5)

"""Stacked GRU/LSTM layers (d2l ch. 10.3): the model, the probe, the checkpoint and a user's
model, each against ``torch.nn`` with ``num_layers`` set (issue 16, issue 18)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rnnviz.core.checkpoint import load_checkpoint, restore_run, save_run
from rnnviz.core.config import ConfigError, ModelConfig, RunConfig
from rnnviz.core.model import GRUModel, LSTMModel, build_model
from rnnviz.core.probe import Prober, hidden_jacobian_norms, probe
from rnnviz.core.runs import build_run
from rnnviz.core.torch_model import open_torch_model
from rnnviz.core.trainer import Trainer
from rnnviz.core.vocab import Vocab
from tests.core.test_torch_model import TEXT, VOCAB, make_net, save_net

torch.set_num_threads(1)
TOL = 1e-5
H = 6


def stacked_reference(
    rnn: nn.LSTM | nn.GRU, x: Tensor, head: nn.Linear | tuple[Tensor, Tensor], ids: Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """The module's own forward on ``x`` (T, I): the top layer's h (T, H), the softmax (T, V),
    G[t, k] = ||dL_t/dh_k|| of the top layer's h_k by autograd, stepping the whole stack one
    step at a time with h_k a node of its own (the layers below, and c_k, are others), and
    every layer's h (T, H)."""
    L, T = rnn.num_layers, x.shape[0]

    def logits_of(h: Tensor) -> Tensor:
        if isinstance(head, nn.Linear):
            return head(h)
        return h @ head[0] + head[1]

    with torch.no_grad():
        out, _ = rnn(x[None])
        probs = torch.softmax(logits_of(out[0]), dim=-1)
    lstm = isinstance(rnn, nn.LSTM)
    h = torch.zeros(L, 1, rnn.hidden_size)
    c = torch.zeros(L, 1, rnn.hidden_size)
    tops: list[Tensor] = []
    layers: list[list[Tensor]] = [[] for _ in range(L)]
    for t in range(T):
        if lstm:
            _, (h_n, c) = rnn(x[None, t : t + 1], (h, c))
        else:
            _, h_n = rnn(x[None, t : t + 1], h)
        top = h_n[-1].clone()  # the node whose gradient G measures
        tops.append(top)
        h = torch.cat([h_n[:-1], top[None]])
        for layer in range(L):
            layers[layer].append(h_n[layer, 0].detach())
    stepped = torch.cat(tops).detach()
    torch.testing.assert_close(stepped, out[0], atol=1e-6, rtol=0)  # the test's own sanity
    G = np.zeros((T, T))
    for t in range(T - 1):
        loss = nn.functional.cross_entropy(logits_of(tops[t]), ids[t + 1 : t + 2])
        grads = torch.autograd.grad(loss, tops[: t + 1], retain_graph=True)
        G[t, : t + 1] = [float(g.norm()) for g in grads]
    per_layer = [torch.stack(rows).numpy() for rows in layers]
    return out[0].detach().numpy(), probs.numpy(), G, per_layer


def tiny_vocab() -> Vocab:
    return Vocab.from_text(TEXT)


@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_stacked_models_probe_is_torch_nns_own(kind: str, layers: int) -> None:
    vocab = tiny_vocab()
    V = len(vocab)
    model = build_model(V, ModelConfig(kind=kind, hidden_size=H, num_layers=layers), seed=3)
    assert isinstance(model, GRUModel | LSTMModel) and model.rnn.num_layers == layers
    model.eval()
    ids = torch.from_numpy(vocab.encode(TEXT))
    x = nn.functional.one_hot(ids, V).float()
    hidden, probs, G, per_layer = stacked_reference(model.rnn, x, (model.W_hq, model.b_q), ids)

    result = probe(model, vocab, TEXT)
    np.testing.assert_allclose(result.hidden, hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(result.probs, probs, atol=TOL, rtol=0)
    assert result.grad_flow is not None
    np.testing.assert_allclose(result.grad_flow, G, atol=TOL, rtol=0)
    assert np.count_nonzero(np.tril(G, -1)) > len(TEXT)  # not a comparison of zeros
    assert result.gates is not None and result.gates.num_layers == layers
    for layer in range(layers):
        np.testing.assert_allclose(
            result.gates.trace(layer)["h"], per_layer[layer], atol=TOL, rtol=0
        )
    assert set(result.gates.flat()) >= {f"l{layers - 1}.forward.h", "l0.forward.h"}
    if kind == "lstm":
        np.testing.assert_array_equal(result.cell, result.gates.trace(layers - 1)["c"])

    # typing: the prefix's every layer is reused, and the result is the same
    prober = Prober(model, vocab)
    prober.probe(TEXT[:5])
    again = prober.probe(TEXT)
    assert prober.reused_steps == 5
    np.testing.assert_allclose(again.hidden, result.hidden, atol=1e-6, rtol=0)
    np.testing.assert_allclose(again.grad_flow, result.grad_flow, atol=1e-6, rtol=0)
    for layer in range(layers):
        np.testing.assert_allclose(
            again.gates.trace(layer)["h"], per_layer[layer], atol=TOL, rtol=0
        )
    # ||dH_t/dH_k|| along the top layer's recurrence: dH_t/dH_t is the identity
    norms = hidden_jacobian_norms(model, vocab, TEXT, 6)
    assert norms.shape == (7,) and norms[6] == pytest.approx(np.sqrt(H))


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_stacked_models_training_step_is_torch_nns(kind: str) -> None:
    """One clipped step of rnnviz's trainer equals the same step on a plain torch.nn stack."""
    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"kind": kind, "hidden_size": H, "num_layers": 2},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8,
               "lr": 0.5, "clip_theta": 0.05},
    )  # fmt: skip
    run = build_run(cfg)
    model = run.model
    V = run.model.vocab_size
    rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(V, H, num_layers=2, batch_first=True)
    head = nn.Linear(H, V)
    with torch.no_grad():
        rnn.load_state_dict({k.removeprefix("rnn."): v for k, v in model.state_dict().items()
                             if k.startswith("rnn.")})  # fmt: skip
        head.weight.copy_(model.W_hq.t())
        head.bias.copy_(model.b_q)
    X, Y = run.batches.batch(0, 0)
    out, _ = rnn(nn.functional.one_hot(X, V).float())
    loss = nn.functional.cross_entropy(head(out).reshape(-1, V), Y.reshape(-1))
    loss.backward()
    params = [*rnn.parameters(), head.weight, head.bias]
    before = float(nn.utils.clip_grad_norm_(params, 0.05))

    record = Trainer(model, run.batches, cfg.train).train_step()
    assert record.loss == pytest.approx(float(loss.detach()), abs=TOL)
    assert record.grad_norm_before_clip == pytest.approx(before, rel=1e-5)
    assert record.clipped and record.grad_norm_after_clip == pytest.approx(0.05, rel=1e-4)
    # SGD: p - lr * clipped g, the same on both sides
    with torch.no_grad():
        for p in params:
            p -= 0.5 * p.grad
    for name, p in rnn.named_parameters():
        np.testing.assert_allclose(
            model.get_parameter(f"rnn.{name}").detach().numpy(), p.detach().numpy(), atol=TOL
        )
    np.testing.assert_allclose(model.W_hq.detach().numpy(), head.weight.detach().t(), atol=TOL)
    # every layer's parameters by name in the per-parameter norms
    assert {"W_x(gates) l0", "W_h(gates) l1", "b_x(gates) l1"} <= set(record.param_grad_norms)


def test_a_stacked_run_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"kind": "lstm", "hidden_size": H, "num_layers": 3},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )
    run = build_run(cfg)
    for _ in range(3):
        run.trainer.train_step()
    path = tmp_path / "deep.safetensors"
    save_run(path, run)
    back = restore_run(load_checkpoint(path))
    assert back.config.model.num_layers == 3 and back.trainer.step == 3
    for name, value in run.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[name], value)
    assert back.trainer.train_step().loss == pytest.approx(run.trainer.train_step().loss)


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "scratch", "num_layers": 5},
        {"kind": "fast", "num_layers": 2},
        {"kind": "lstm", "num_layers": 5},
        {"kind": "gru", "num_layers": 0},
    ],
)
def test_layers_out_of_range_are_refused_in_one_line(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        ModelConfig(**changes)
    assert "layer" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("embedding", [True, False], ids=["embedding", "one-hot"])
def test_a_users_stacked_module_opens_with_its_own_numbers(
    tmp_path: Path, kind: str, embedding: bool
) -> None:
    net = make_net(kind=kind, embedding=embedding, num_layers=2)
    model, vocab = open_torch_model(*save_net(tmp_path, net))
    assert model.config.num_layers == 2
    # the module's numbers, in its own vocabulary order
    ids_module = torch.tensor([VOCAB.index(c) for c in TEXT])
    hidden, probs, G, per_layer = stacked_reference(net.rnn, net.inputs(ids_module), net.fc,
                                                    ids_module)  # fmt: skip
    order = [VOCAB.index(tok) for tok in vocab.tokens]
    result = probe(model, vocab, TEXT)
    np.testing.assert_allclose(result.hidden, hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(result.probs, probs[:, order], atol=TOL, rtol=0)
    np.testing.assert_allclose(result.grad_flow, G, atol=TOL, rtol=0)
    for layer in range(2):
        np.testing.assert_allclose(
            result.gates.trace(layer)["h"], per_layer[layer], atol=TOL, rtol=0
        )


def test_probe_json_of_a_stacked_checkpoint_keys_gates_by_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from rnnviz.cli import main

    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"kind": "lstm", "hidden_size": H, "num_layers": 2},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )
    run = build_run(cfg)
    path = tmp_path / "deep.safetensors"
    save_run(path, run)
    capsys.readouterr()
    assert main(["probe", "machine", "--checkpoint", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    gates = data["gates"]
    assert {"l0.forward.h", "l0.forward.c", "l1.forward.f", "l1.forward.c"} <= set(gates)
    assert "l1.forward.h" not in gates  # the top layer's h is "hidden"
    result = probe(run.model, run.vocab, "machine")
    np.testing.assert_allclose(data["hidden"], result.hidden, atol=1e-6)
    np.testing.assert_allclose(gates["l0.forward.h"]["values"], result.gates.trace(0)["h"])
    np.testing.assert_allclose(data["cell"], result.gates.trace(1)["c"], atol=1e-6)

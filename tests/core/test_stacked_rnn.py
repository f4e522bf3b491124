"""The stacked plain RNN (d2l ch. 10.3's deep RNN on the scratch RNN): the model, the probe,
the step view, a training step, the checkpoint and a user's stacked ``nn.RNN``, each against
``torch.nn.RNN(num_layers=L)`` with copied weights (issue 16, issue 18)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rnnviz.core.checkpoint import load_checkpoint, restore_run, save_run
from rnnviz.core.config import ConfigError, ModelConfig, RunConfig
from rnnviz.core.model import ScratchRNN, build_model
from rnnviz.core.probe import Prober, hidden_jacobian_norms, probe, step_detail
from rnnviz.core.runs import build_run
from rnnviz.core.torch_model import open_torch_model
from rnnviz.core.trainer import Trainer
from rnnviz.core.vocab import Vocab
from tests.core.test_stacked_layers import stacked_reference
from tests.core.test_torch_model import TEXT, VOCAB, make_net, save_net

torch.set_num_threads(1)
TOL = 1e-5
H = 6


def scratch(layers: int, activation: str = "tanh", V: int | None = None) -> ScratchRNN:
    vocab_size = len(Vocab.from_text(TEXT)) if V is None else V
    config = ModelConfig(kind="scratch", hidden_size=H, num_layers=layers, activation=activation)
    model = build_model(vocab_size, config, seed=3)
    assert isinstance(model, ScratchRNN)
    torch.manual_seed(7)
    with torch.no_grad():  # wider than the init: the layers' numbers are not all near 0
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    return model.eval()


def torch_rnn(model: ScratchRNN) -> nn.RNN:
    """torch.nn.RNN with the scratch model's weights: W_ih = W_xh^T, W_hh = W_hh^T,
    b_ih = b_h, b_hh = 0 (the two biases only ever appear summed)."""
    rnn = nn.RNN(
        model.vocab_size,
        H,
        num_layers=model.num_layers,
        nonlinearity=model.config.activation,
        batch_first=True,
    )
    with torch.no_grad():
        for layer in range(model.num_layers):
            W_xh, W_hh, b_h = model.layer_params(layer)
            getattr(rnn, f"weight_ih_l{layer}").copy_(W_xh.t())
            getattr(rnn, f"weight_hh_l{layer}").copy_(W_hh.t())
            getattr(rnn, f"bias_ih_l{layer}").copy_(b_h)
            getattr(rnn, f"bias_hh_l{layer}").zero_()
    return rnn


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("layers", [2, 3])
def test_a_stacked_scratch_rnns_probe_is_torch_nn_rnns_own(activation: str, layers: int) -> None:
    vocab = Vocab.from_text(TEXT)
    model = scratch(layers, activation)
    names = [n for n, _ in model.named_parameters()]
    assert names[:6] == ["W_xh", "W_hh", "b_h", "W_xh_l1", "W_hh_l1", "b_h_l1"]
    shown = [n for n, _ in model.named_grad_params()]
    assert {"W_xh l0", "W_hh l1", f"b_h l{layers - 1}", "W_hq", "b_q"} <= set(shown)
    ids = torch.from_numpy(vocab.encode(TEXT))
    x = nn.functional.one_hot(ids, len(vocab)).float()
    rnn = torch_rnn(model)
    hidden, probs, G, per_layer = stacked_reference(rnn, x, (model.W_hq, model.b_q), ids)

    result = probe(model, vocab, TEXT)
    np.testing.assert_allclose(result.hidden, hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(result.probs, probs, atol=TOL, rtol=0)
    assert result.grad_flow is not None
    np.testing.assert_allclose(result.grad_flow, G, atol=TOL, rtol=0)
    assert np.count_nonzero(np.tril(G, -1)) > len(TEXT)  # not a comparison of zeros
    assert result.layer_hidden is not None and len(result.layer_hidden) == layers
    for layer in range(layers):
        np.testing.assert_allclose(result.layer_hidden[layer], per_layer[layer], atol=TOL)
    # top-k is of the same softmax
    np.testing.assert_array_equal(result.topk_ids[:, 0], probs.argmax(axis=1))

    # typing: every layer's state at the end of the prefix is reused, the result the same
    prober = Prober(model, vocab)
    prober.probe(TEXT[:5])
    again = prober.probe(TEXT)
    assert prober.reused_steps == 5
    np.testing.assert_allclose(again.hidden, hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(again.grad_flow, G, atol=TOL, rtol=0)
    for layer in range(layers):
        np.testing.assert_allclose(again.layer_hidden[layer], per_layer[layer], atol=TOL)
    shorter = prober.probe(TEXT[:4])  # a backspace: the cached rows of every layer
    np.testing.assert_allclose(shorter.layer_hidden[0], per_layer[0][:4], atol=TOL)
    # ||dH_t/dH_k|| along the top layer's recurrence: dH_t/dH_t is the identity
    norms = hidden_jacobian_norms(model, vocab, TEXT, 6)
    assert norms.shape == (7,) and norms[6] == pytest.approx(np.sqrt(H))


def test_one_layer_keeps_d2l_names_and_one_layer_state() -> None:
    model = scratch(1)
    assert [n for n, _ in model.named_grad_params()] == ["W_xh", "W_hh", "b_h", "W_hq", "b_q"]
    _, _, state = model(torch.zeros(2, 3, dtype=torch.long))
    assert isinstance(state, torch.Tensor) and state.shape == (2, H)
    deep = scratch(3)
    _, _, state = deep(torch.zeros(2, 3, dtype=torch.long))
    assert isinstance(state, torch.Tensor) and state.shape == (3, 2, H)
    # layer 0 and the output layer start as the one-layer model of the same seed does
    one = build_model(9, ModelConfig(kind="scratch", hidden_size=H), seed=4)
    two = build_model(9, ModelConfig(kind="scratch", hidden_size=H, num_layers=2), seed=4)
    for name in ("W_xh", "W_hh", "b_h", "W_hq", "b_q"):
        assert torch.equal(one.get_parameter(name), two.get_parameter(name))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_step_view_of_each_layer_is_torch_nn_rnns(activation: str) -> None:
    vocab = Vocab.from_text(TEXT)
    model = scratch(3, activation)
    rnn = torch_rnn(model).double()
    x = nn.functional.one_hot(torch.from_numpy(vocab.encode(TEXT)), len(vocab)).double()
    with torch.no_grad():
        logits = model(torch.from_numpy(vocab.encode(TEXT))[None])[0][0]
        h = torch.zeros(3, 1, H, dtype=torch.float64)
        states = []  # every layer's h_t after each step, from torch.nn.RNN
        for t in range(len(TEXT)):
            _, h = rnn(x[None, t : t + 1], h)
            states.append(h[:, 0].clone())
    for layer in range(3):
        w_ih = getattr(rnn, f"weight_ih_l{layer}").detach()
        w_hh = getattr(rnn, f"weight_hh_l{layer}").detach()
        b = (getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}")).detach()
        for t in (0, 1, 6, len(TEXT) - 1):
            d = step_detail(model, vocab, TEXT, t, layer=layer)
            assert (d.layer, d.num_layers) == (layer, 3)
            layer_in = x[t] if layer == 0 else states[t][layer - 1]
            h_prev = states[t - 1][layer] if t > 0 else torch.zeros(H, dtype=torch.float64)
            assert d.layer_input is not None
            np.testing.assert_allclose(d.layer_input, layer_in.numpy(), atol=TOL)
            np.testing.assert_allclose(d.H_prev, h_prev.numpy(), atol=TOL)
            np.testing.assert_allclose(d.xW, (layer_in @ w_ih.t()).numpy(), atol=TOL)
            np.testing.assert_allclose(d.hW, (h_prev @ w_hh.t()).numpy(), atol=TOL)
            np.testing.assert_allclose(d.b_h, b.numpy(), atol=TOL)
            np.testing.assert_allclose(d.H_t, states[t][layer].numpy(), atol=TOL)
            np.testing.assert_allclose(d.O_t, logits[t].numpy(), atol=TOL)  # the top layer's
            assert d.concat_max_abs_diff < TOL
    assert step_detail(model, vocab, TEXT, 2).layer == 2  # the top one by default
    with pytest.raises(ValueError, match="3 layer"):
        step_detail(model, vocab, TEXT, 2, layer=3)


def test_a_stacked_scratch_training_step_is_torch_nn_rnns() -> None:
    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"kind": "scratch", "hidden_size": H, "num_layers": 2},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8,
               "lr": 0.5, "clip_theta": 0.05},
    )  # fmt: skip
    run = build_run(cfg)
    model = run.model
    assert isinstance(model, ScratchRNN)
    V = model.vocab_size
    rnn = torch_rnn(model)
    X, Y = run.batches.batch(0, 0)
    x = nn.functional.one_hot(X, V).float()
    # torch.nn.RNN stepped one step at a time, the top layer's h_t a node of its own: its
    # gradient is the total dL/dH_t (the fused output's .grad is only the part through O_t)
    h = torch.zeros(2, X.shape[0], H)
    tops = []
    for t in range(X.shape[1]):
        _, h_n = rnn(x[:, t : t + 1], h)
        top = h_n[-1].clone()
        top.retain_grad()
        tops.append(top)
        h = torch.cat([h_n[:-1], top[None]])
    out = torch.stack(tops, dim=1)
    W_hq = model.W_hq.detach().clone().requires_grad_()
    b_q = model.b_q.detach().clone().requires_grad_()
    loss = nn.functional.cross_entropy((out @ W_hq + b_q).reshape(-1, V), Y.reshape(-1))
    loss.backward()
    # rnnviz's parameters are these (b_h once: bias_hh's gradient is bias_ih's again)
    grads = {}
    for layer in range(2):
        grads[f"W_xh l{layer}"] = getattr(rnn, f"weight_ih_l{layer}").grad.t()
        grads[f"W_hh l{layer}"] = getattr(rnn, f"weight_hh_l{layer}").grad.t()
        grads[f"b_h l{layer}"] = getattr(rnn, f"bias_ih_l{layer}").grad
    grads.update(W_hq=W_hq.grad, b_q=b_q.grad)
    total = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads.values()])))

    trainer = Trainer(model, run.batches, cfg.train)
    record = trainer.train_step()
    assert record.loss == pytest.approx(float(loss.detach()), abs=TOL)
    assert record.grad_norm_before_clip == pytest.approx(total, rel=1e-5)
    for name, g in grads.items():
        assert record.param_grad_norms[name] == pytest.approx(float(g.norm()), rel=1e-5, abs=1e-7)
    # the trainer's ||dL/dH_t|| is the top layer's total derivative, the batch's mean
    flow = np.array([float(torch.linalg.vector_norm(t.grad, dim=1).mean()) for t in tops])
    np.testing.assert_allclose(record.grad_flow, flow, rtol=1e-5, atol=1e-9)
    # SGD on the clipped gradient moved each parameter by lr * clip * g
    scale = min(1.0, 0.05 / record.grad_norm_before_clip)
    assert record.clipped
    olds = {"W_hq": W_hq.detach(), "b_q": b_q.detach()}
    for layer in range(2):
        olds[f"W_xh l{layer}"] = getattr(rnn, f"weight_ih_l{layer}").detach().t()
        olds[f"W_hh l{layer}"] = getattr(rnn, f"weight_hh_l{layer}").detach().t()
        olds[f"b_h l{layer}"] = getattr(rnn, f"bias_ih_l{layer}").detach()
    for name, p in model.named_grad_params():
        new = olds[name] - 0.5 * scale * grads[name]
        np.testing.assert_allclose(p.detach().numpy(), new.numpy(), atol=TOL, err_msg=name)


def test_a_stacked_scratch_run_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"kind": "scratch", "hidden_size": H, "num_layers": 3},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )
    run = build_run(cfg)
    for _ in range(3):
        run.trainer.train_step()
    path = tmp_path / "deep.safetensors"
    save_run(path, run)
    back = restore_run(load_checkpoint(path))
    assert back.config.model.num_layers == 3 and back.trainer.step == 3
    assert "W_hh_l2" in back.model.state_dict()
    for name, value in run.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[name], value)
    assert back.trainer.train_step().loss == pytest.approx(run.trainer.train_step().loss)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("embedding", [True, False], ids=["embedding", "one-hot"])
def test_a_users_stacked_nn_rnn_opens_with_its_own_numbers(
    tmp_path: Path, nonlinearity: str, embedding: bool
) -> None:
    net = make_net(kind="rnn", nonlinearity=nonlinearity, embedding=embedding, num_layers=3)
    model, vocab = open_torch_model(*save_net(tmp_path, net, nonlinearity))
    assert isinstance(model, ScratchRNN) and model.config.num_layers == 3
    assert model.config.activation == nonlinearity
    ids_module = torch.tensor([VOCAB.index(c) for c in TEXT])
    hidden, probs, G, per_layer = stacked_reference(net.rnn, net.inputs(ids_module), net.fc,
                                                    ids_module)  # fmt: skip
    order = [VOCAB.index(tok) for tok in vocab.tokens]
    result = probe(model, vocab, TEXT)
    np.testing.assert_allclose(result.hidden, hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(result.probs, probs[:, order], atol=TOL, rtol=0)
    np.testing.assert_allclose(result.grad_flow, G, atol=TOL, rtol=0)
    assert np.count_nonzero(np.tril(G, -1)) > len(TEXT)
    for layer in range(3):
        np.testing.assert_allclose(result.layer_hidden[layer], per_layer[layer], atol=TOL)


def test_the_fast_rnns_refusal_names_the_scratch_kind_as_the_stacked_one() -> None:
    with pytest.raises(ConfigError, match="scratch") as err:
        ModelConfig(kind="fast", num_layers=2)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="one layer"):
        ModelConfig(kind="scratch", num_layers=2, recurrence=False)
    assert ModelConfig(kind="scratch", num_layers=4).num_layers == 4


def test_probe_json_of_a_stacked_scratch_checkpoint_has_every_layers_hidden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from rnnviz.cli import main
    from rnnviz.core.probe_json import state_arrays

    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"kind": "scratch", "hidden_size": H, "num_layers": 2},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )
    run = build_run(cfg)
    path = tmp_path / "deep.safetensors"
    save_run(path, run)
    capsys.readouterr()
    assert main(["probe", "machine", "--checkpoint", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    result = probe(run.model, run.vocab, "machine")
    assert len(data["layer_hidden"]) == 2
    for layer in range(2):
        np.testing.assert_allclose(data["layer_hidden"][layer], result.layer_hidden[layer])
    np.testing.assert_allclose(data["layer_hidden"][1], data["hidden"], atol=1e-7)
    assert state_arrays("scratch", 2) == 3 and state_arrays("scratch") == 1

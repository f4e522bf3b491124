"""Bidirectional recurrent layers (issue 16, issue 18): the configuration's verdicts, the
models against ``torch.nn`` with ``bidirectional=True`` and copied weights (forward and
gradients), the checkpoint, the probe and a user's bidirectional module.

Every reference is computed on ``torch.nn`` modules (their forward pass, and autograd through
them), never on rnnviz's own model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rnnviz.core.config import (
    BIDIRECTIONAL_LM_REFUSAL,
    LANGUAGE_MODEL,
    ConfigError,
    ModelConfig,
    RunConfig,
    bidirectional_allowed,
    training_refusal,
)
from rnnviz.core.model import CharModel, GRUModel, LSTMModel, ScratchRNN, build_model

torch.set_num_threads(1)
TOL = 1e-5
V, H = 7, 5


# ------------------------------------------------------------------ the configuration


def test_bidirectional_is_off_by_default_and_old_configs_read_as_one_direction() -> None:
    assert ModelConfig().bidirectional is False
    data = RunConfig().to_json()
    del data["model"]["bidirectional"]  # a file from before the field
    assert RunConfig.from_json(data).model.bidirectional is False


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"kind": "fast", "bidirectional": True}, "is the scratch kind"),
        ({"kind": "scratch", "bidirectional": "yes"}, "bidirectional must be true or false"),
        ({"kind": "scratch", "bidirectional": 1}, "bidirectional must be true or false"),
        ({"kind": "scratch", "bidirectional": True, "recurrence": False}, "needs recurrence"),
        ({"kind": "scratch", "bidirectional": True, "num_layers": 2}, "stacked bidirectional"),
    ],
)
def test_bad_bidirectional_configs_are_one_line_errors(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        ModelConfig(**changes)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["scratch", "gru", "lstm"])
def test_bidirectional_builds_for_scratch_gru_lstm(kind: str) -> None:
    layers = 1 if kind == "scratch" else 3
    ModelConfig(kind=kind, bidirectional=True, num_layers=layers)  # type: ignore[arg-type]


def test_the_language_model_refuses_to_train_a_bidirectional_model() -> None:
    assert bidirectional_allowed(LANGUAGE_MODEL) is False
    assert training_refusal(ModelConfig(kind="gru", bidirectional=True)) == BIDIRECTIONAL_LM_REFUSAL
    assert "next character" in BIDIRECTIONAL_LM_REFUSAL and "\n" not in BIDIRECTIONAL_LM_REFUSAL
    assert training_refusal(ModelConfig(kind="gru")) is None
    with pytest.raises(ConfigError, match="task must be one of"):
        bidirectional_allowed("tagging-that-does-not-exist")


# ------------------------------------------------------------------ models vs torch.nn


def bi_model(kind: str, layers: int = 1) -> CharModel:
    config = ModelConfig(kind=kind, hidden_size=H, num_layers=layers, bidirectional=True)  # type: ignore[arg-type]
    return build_model(V, config, seed=3).double()


def reference_module(model: CharModel) -> tuple[nn.RNNBase, nn.Linear]:
    """A ``torch.nn`` module with ``bidirectional=True`` holding copies of ``model``'s weights
    (the scratch RNN's W_xh is nn.RNN's weight_ih transposed, its b_h bias_ih, bias_hh 0)."""
    if isinstance(model, GRUModel | LSTMModel):
        cls = nn.LSTM if isinstance(model, LSTMModel) else nn.GRU
        rnn: nn.RNNBase = cls(
            V, H, num_layers=model.num_layers, bidirectional=True, batch_first=True
        ).double()
        rnn.load_state_dict(
            {
                k.removeprefix("rnn."): v
                for k, v in model.state_dict().items()
                if k.startswith("rnn.")
            }
        )
    else:
        assert isinstance(model, ScratchRNN)
        rnn = nn.RNN(V, H, nonlinearity="tanh", bidirectional=True, batch_first=True).double()
        with torch.no_grad():
            for sfx in ("", "_reverse"):
                getattr(rnn, f"weight_ih_l0{sfx}").copy_(getattr(model, f"W_xh{sfx}").t())
                getattr(rnn, f"weight_hh_l0{sfx}").copy_(getattr(model, f"W_hh{sfx}").t())
                getattr(rnn, f"bias_ih_l0{sfx}").copy_(getattr(model, f"b_h{sfx}"))
                getattr(rnn, f"bias_hh_l0{sfx}").zero_()
    head = nn.Linear(2 * H, V).double()
    with torch.no_grad():
        head.weight.copy_(model.get_parameter("W_hq").t())
        head.bias.copy_(model.get_parameter("b_q"))
    return rnn, head


def _grads_of(model: CharModel, loss: Tensor) -> dict[str, Tensor]:
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return dict(zip(names, grads, strict=True))


@pytest.mark.parametrize(
    ("kind", "layers"), [("scratch", 1), ("gru", 1), ("gru", 2), ("lstm", 1), ("lstm", 3)]
)
def test_forward_and_gradients_are_torch_nns_bidirectional(kind: str, layers: int) -> None:
    model = bi_model(kind, layers)
    rnn, head = reference_module(model)
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, V, (3, 9), generator=gen)
    targets = torch.randint(0, V, (3, 9), generator=gen)
    logits, hidden, state = model(tokens)
    x = nn.functional.one_hot(tokens, V).double()
    out, ref_state = rnn(x)
    ref_logits = head(out)
    assert hidden.shape == (3, 9, 2 * H)
    torch.testing.assert_close(hidden, out, atol=TOL, rtol=0)
    torch.testing.assert_close(logits, ref_logits, atol=TOL, rtol=0)
    h_n = ref_state[0] if isinstance(ref_state, tuple) else ref_state
    got = state[0] if isinstance(state, tuple) else state
    assert got.shape == (2 * layers, 3, H)
    torch.testing.assert_close(got, h_n, atol=TOL, rtol=0)
    # the reverse half is not the forward one: it read the text from the end
    assert (out[..., H:] - out[..., :H]).abs().max() > 1e-3

    loss = nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    ref_loss = nn.functional.cross_entropy(ref_logits.reshape(-1, V), targets.reshape(-1))
    grads = _grads_of(model, loss)
    ref_params = dict(rnn.named_parameters())
    ref_grads = dict(
        zip(
            ref_params,
            torch.autograd.grad(ref_loss, list(ref_params.values()), retain_graph=True),
            strict=True,
        )
    )
    head_w, head_b = torch.autograd.grad(ref_loss, [head.weight, head.bias])
    torch.testing.assert_close(grads["W_hq"], head_w.t(), atol=TOL, rtol=0)
    torch.testing.assert_close(grads["b_q"], head_b, atol=TOL, rtol=0)
    if kind == "scratch":
        for sfx in ("", "_reverse"):
            torch.testing.assert_close(
                grads[f"W_xh{sfx}"], ref_grads[f"weight_ih_l0{sfx}"].t(), atol=TOL, rtol=0
            )
            torch.testing.assert_close(
                grads[f"W_hh{sfx}"], ref_grads[f"weight_hh_l0{sfx}"].t(), atol=TOL, rtol=0
            )
            torch.testing.assert_close(
                grads[f"b_h{sfx}"], ref_grads[f"bias_ih_l0{sfx}"], atol=TOL, rtol=0
            )
    else:
        for name, g in ref_grads.items():
            torch.testing.assert_close(grads[f"rnn.{name}"], g, atol=TOL, rtol=0)
        assert any(n.endswith(" rev") for n, _ in model.named_grad_params())


def test_a_one_direction_scratch_rnn_draws_the_same_weights_as_before() -> None:
    one = build_model(V, ModelConfig(kind="scratch", hidden_size=H), seed=3)
    two = build_model(V, ModelConfig(kind="scratch", hidden_size=H, bidirectional=True), seed=3)
    assert set(one.state_dict()) == {"W_xh", "W_hh", "b_h", "W_hq", "b_q"}
    for name in ("W_xh", "W_hh", "b_h"):
        assert torch.equal(one.state_dict()[name], two.state_dict()[name])
    assert two.get_parameter("W_hq").shape == (2 * H, V)


# ------------------------------------------------------------------ checkpoint, session


def bi_run_config(kind: str = "gru", layers: int = 2) -> RunConfig:
    from tests.core.test_checkpoint import tiny_config

    return tiny_config().replace(model={"kind": kind, "num_layers": layers, "bidirectional": True})


@pytest.mark.parametrize(("kind", "layers"), [("scratch", 1), ("lstm", 2)])
def test_a_bidirectional_run_round_trips_through_a_checkpoint(
    tmp_path: Path, kind: str, layers: int
) -> None:
    from rnnviz.core.checkpoint import load_checkpoint, restore_model, save_run
    from rnnviz.core.runs import build_run

    cfg = bi_run_config(kind, layers)
    run = build_run(cfg)
    path = tmp_path / "bi.safetensors"
    save_run(path, run)
    ckpt = load_checkpoint(path)
    assert ckpt.config == cfg and ckpt.config.model.bidirectional is True
    model = restore_model(ckpt)
    assert set(model.state_dict()) == set(run.model.state_dict())
    assert any("reverse" in k for k in model.state_dict())
    for k, v in run.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_the_session_refuses_to_train_a_bidirectional_language_model() -> None:
    from rnnviz.core.messages import Failure, Start, Step
    from tests.core.test_session import make

    session, rec = make(bi_run_config("gru", 1))
    for command in (Start(), Step(1)):
        rec.clear()
        session.handle(command)
        session.run_until_idle()
        (failure,) = rec.of(Failure)
        assert failure.message == BIDIRECTIONAL_LM_REFUSAL and not failure.fatal
    assert session.main.trainer.step == 0 and session.state != "training"


def test_cli_train_bidirectional_exits_2_with_the_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rnnviz.cli import main

    code = main(["train", "--model", "lstm", "--bidirectional", "--max-steps", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == f"error: {BIDIRECTIONAL_LM_REFUSAL}"
    code = main(["train", "--model", "fast", "--bidirectional", "--max-steps", "1"])
    assert code == 2 and "scratch" in capsys.readouterr().err


# ------------------------------------------------------------------ a user's module, the probe


class BiNet(nn.Module):
    """An engineer's bidirectional model: Embedding (or one-hot) -> RNN/GRU/LSTM with
    ``bidirectional=True`` -> Linear(2H, V)."""

    def __init__(self, kind: str, layers: int = 1, embedding: bool = True) -> None:
        super().__init__()
        from tests.core.test_torch_model import EMBED, HIDDEN, VOCAB

        self.kind, self.vocab_size = kind, len(VOCAB)
        self.emb = nn.Embedding(self.vocab_size, EMBED) if embedding else None
        width = EMBED if embedding else self.vocab_size
        cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind]
        self.rnn: nn.RNNBase = cls(
            width, HIDDEN, num_layers=layers, bidirectional=True, batch_first=True
        )
        self.fc = nn.Linear(2 * HIDDEN, self.vocab_size)

    def inputs(self, ids: Tensor) -> Tensor:
        if self.emb is None:
            return nn.functional.one_hot(ids, self.vocab_size).float()
        return self.emb(ids)


def _cell(rnn: nn.RNNBase, layer: int, reverse: bool) -> nn.RNNCellBase:
    """A torch.nn cell that shares the module's own weights of one layer and direction."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih = getattr(rnn, "weight_ih" + sfx)
    cls = {nn.RNN: nn.RNNCell, nn.GRU: nn.GRUCell, nn.LSTM: nn.LSTMCell}[type(rnn)]
    cell = cls(w_ih.shape[1], rnn.hidden_size)
    for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        setattr(cell, part, getattr(rnn, part + sfx))
    return cell


def bi_reference(net: BiNet, text: str) -> dict[str, Any]:
    """The module's own numbers on ``text``: its output (T, 2H) and softmax (T, V) by its own
    forward; by autograd through its own weights, stepped one position at a time per layer and
    direction (each top-layer h_k a node of its own), G[t, k] = ||dL_t/dH_k|| with
    H_k = (h_fwd_k, h_rev_k), for every k; and every layer's h per direction."""
    from tests.core.test_torch_model import ids_of

    ids = ids_of(text)
    T = len(ids)
    x = net.inputs(ids)
    with torch.no_grad():
        out, _ = net.rnn(x[None])
        probs = torch.softmax(net.fc(out[0]), dim=-1)
    lstm = isinstance(net.rnn, nn.LSTM)
    layer_in = [x[t] for t in range(T)]
    states: dict[tuple[int, str], list[Tensor]] = {}
    for layer in range(net.rnn.num_layers):
        for reverse in (False, True):
            cell = _cell(net.rnn, layer, reverse)
            h = torch.zeros(1, net.rnn.hidden_size)
            c = torch.zeros_like(h)
            hs: list[Tensor | None] = [None] * T
            for t in reversed(range(T)) if reverse else range(T):
                if lstm:
                    h, c = cell(layer_in[t][None], (h, c))
                else:
                    h = cell(layer_in[t][None], h)
                h = h.clone()  # the node whose gradient G measures
                hs[t] = h
            states[(layer, "reverse" if reverse else "forward")] = [v for v in hs if v is not None]
        layer_in = [
            torch.cat([states[(layer, "forward")][t][0], states[(layer, "reverse")][t][0]])
            for t in range(T)
        ]
    top = net.rnn.num_layers - 1
    fwd, rev = states[(top, "forward")], states[(top, "reverse")]
    stepped = torch.cat([torch.cat(fwd), torch.cat(rev)], dim=1).detach()
    torch.testing.assert_close(stepped, out[0], atol=1e-6, rtol=0)  # the test's own sanity
    G = np.zeros((T, T))
    for t in range(T - 1):
        logits = net.fc(torch.cat([fwd[t], rev[t]], dim=1))
        loss = nn.functional.cross_entropy(logits, ids[t + 1 : t + 2])
        grads = torch.autograd.grad(loss, fwd + rev, retain_graph=True, allow_unused=True)
        sq = [0.0 if g is None else float(g.pow(2).sum()) for g in grads]
        G[t] = np.sqrt(np.array(sq[:T]) + np.array(sq[T:]))
    return {
        "out": out[0].detach().numpy(),
        "probs": probs.numpy(),
        "G": G,
        "h": {key: torch.cat(v).detach().numpy() for key, v in states.items()},
    }


@pytest.mark.parametrize(
    ("kind", "layers", "embedding"),
    [
        ("rnn", 1, True),
        ("rnn", 1, False),
        ("gru", 1, True),
        ("gru", 2, False),
        ("lstm", 1, False),
        ("lstm", 3, True),
    ],
)
def test_a_users_bidirectional_module_opens_and_probes_as_itself(
    tmp_path: Path, kind: str, layers: int, embedding: bool
) -> None:
    from rnnviz.core.probe import probe
    from rnnviz.core.torch_model import open_torch_model
    from tests.core.test_torch_model import HIDDEN, TEXT, VOCAB, save, spec_of

    torch.manual_seed(5)
    net = BiNet(kind, layers, embedding)
    model, vocab = open_torch_model(*save(tmp_path, net.state_dict(), spec_of(kind, embedding)))
    assert model.config.bidirectional and model.config.num_layers == layers
    ref = bi_reference(net, TEXT)
    result = probe(model, vocab, TEXT)
    order = [VOCAB.index(tok) for tok in vocab.tokens]
    assert result.bidirectional and result.directions == ("forward", "reverse")
    np.testing.assert_allclose(result.hidden, ref["out"][:, :HIDDEN], atol=TOL, rtol=0)
    assert result.hidden_reverse is not None
    np.testing.assert_allclose(result.hidden_reverse, ref["out"][:, HIDDEN:], atol=TOL, rtol=0)
    np.testing.assert_allclose(result.hidden_of("reverse"), ref["out"][:, HIDDEN:], atol=TOL)
    np.testing.assert_allclose(result.probs, ref["probs"][:, order], atol=TOL, rtol=0)
    assert result.grad_flow is not None
    np.testing.assert_allclose(result.grad_flow, ref["G"], atol=TOL, rtol=0)
    # not causal, and not zeros: a loss reaches the reverse states after it
    assert np.count_nonzero(np.triu(ref["G"], 1)) > len(TEXT)
    assert np.count_nonzero(np.tril(ref["G"], -1)) > len(TEXT)
    if kind != "rnn":
        assert result.gates is not None and result.gates.bidirectional
        for (layer, direction), h in ref["h"].items():
            trace = result.gates.trace(layer, direction)  # type: ignore[arg-type]
            np.testing.assert_allclose(trace["h"], h, atol=TOL, rtol=0)
    if kind == "lstm":
        with torch.no_grad():
            _, (_, c_n) = net.rnn(net.inputs(torch.tensor([VOCAB.index(c) for c in TEXT]))[None])
        assert result.cell is not None and result.cell_reverse is not None
        np.testing.assert_allclose(result.cell[-1], c_n[-2, 0].numpy(), atol=TOL, rtol=0)
        np.testing.assert_allclose(result.cell_reverse[0], c_n[-1, 0].numpy(), atol=TOL, rtol=0)


def test_a_bidirectional_probe_of_a_changed_text_is_a_fresh_one() -> None:
    from rnnviz.core.probe import Prober, probe
    from rnnviz.core.vocab import Vocab

    vocab = Vocab(("<unk>", *"abcdef"))
    model = bi_model("lstm", 2).float()
    prober = Prober(model, vocab)
    prober.probe("abcab")
    typed = prober.probe("abcabf")
    assert prober.reused_steps == 0  # every reverse state changed
    fresh = probe(model, vocab, "abcabf")
    assert typed.hidden_reverse is not None and fresh.hidden_reverse is not None
    np.testing.assert_allclose(typed.hidden_reverse, fresh.hidden_reverse, atol=1e-6)
    assert typed.grad_flow is not None and fresh.grad_flow is not None
    np.testing.assert_allclose(typed.grad_flow, fresh.grad_flow, atol=1e-6)


def test_a_one_direction_probe_says_so() -> None:
    from rnnviz.core.probe import probe
    from rnnviz.core.vocab import Vocab

    vocab = Vocab(("<unk>", *"abcdef"))
    model = build_model(len(vocab), ModelConfig(kind="gru", hidden_size=H), seed=1)
    result = probe(model, vocab, "abcab")
    assert not result.bidirectional and result.hidden_reverse is None
    assert result.directions == ("forward",)
    with pytest.raises(KeyError, match="no reverse direction"):
        result.hidden_of("reverse")


def test_cli_probe_json_keys_hidden_and_gates_by_layer_and_direction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from rnnviz.cli import main
    from tests.core.test_torch_model import HIDDEN, TEXT, save, spec_of

    torch.manual_seed(2)
    net = BiNet("lstm", 2, embedding=True)
    weights, spec = save(tmp_path, net.state_dict(), spec_of("lstm", True))
    code = main(["probe", TEXT, "--torch-model", str(weights), "--spec", str(spec), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["bidirectional"] is True
    ref = bi_reference(net, TEXT)
    np.testing.assert_allclose(out["hidden"], ref["out"][:, :HIDDEN], atol=TOL)
    np.testing.assert_allclose(out["hidden_reverse"], ref["out"][:, HIDDEN:], atol=TOL)
    np.testing.assert_allclose(
        out["gates"]["l0.reverse.h"]["values"], ref["h"][(0, "reverse")], atol=TOL
    )
    assert {"l1.reverse.f", "l1.forward.f", "l0.reverse.c", "cell_reverse"} <= set(
        out["gates"]
    ) | set(out)
    assert "l1.reverse.h" not in out["gates"]  # that is "hidden_reverse"
    np.testing.assert_allclose(out["grad_flow"], ref["G"], atol=TOL)


def test_an_opened_bidirectional_model_probes_in_the_session_and_its_reset_does_not_train(
    tmp_path: Path,
) -> None:
    from rnnviz.core.messages import (
        Failure,
        OpenModel,
        ProbeReply,
        ProbeRequest,
        Reset,
        Start,
        Step,
    )
    from tests.core.test_session import make
    from tests.core.test_torch_model import HIDDEN, TEXT, save, spec_of

    torch.manual_seed(4)
    net = BiNet("gru", 2, embedding=False)
    weights, spec = save(tmp_path, net.state_dict(), spec_of("gru", False))
    session, rec = make()
    session.handle(OpenModel(str(weights), str(spec)))
    assert not rec.of(Failure) and session.main.config.model.bidirectional
    session.handle(ProbeRequest(TEXT))
    (reply,) = rec.of(ProbeReply)
    ref = bi_reference(net, TEXT)
    assert reply.result.hidden_reverse is not None
    np.testing.assert_allclose(reply.result.hidden_reverse, ref["out"][:, HIDDEN:], atol=TOL)
    rec.clear()
    session.handle(Start())  # read-only, and Reset is the way out
    (failure,) = rec.of(Failure)
    assert "read-only" in failure.message and "its shape (one direction)" in failure.message
    # Reset trains a new model of its shape, in the one direction the language model trains
    session.handle(Reset(None))
    model = session.main.config.model
    assert not session.main.opened and not model.bidirectional
    assert (model.kind, model.num_layers, model.hidden_size) == ("gru", 2, HIDDEN)
    session.handle(Step(1))
    session.run_until_idle()
    assert session.main.trainer.step == 1
    # a bidirectional configuration asked for by name still does not train
    session.handle(Reset(bi_run_config("gru", 1)))
    assert session.main.config.model.bidirectional
    rec.clear()
    session.handle(Start())
    session.run_until_idle()
    (failure,) = rec.of(Failure)
    assert failure.message == BIDIRECTIONAL_LM_REFUSAL
    assert session.main.trainer.step == 0


def test_a_bidirectional_session_file_round_trips(tmp_path: Path) -> None:
    from rnnviz.core.checkpoint import restore_model, run_checkpoint_bytes
    from rnnviz.core.history import MetricHistory
    from rnnviz.core.probe import params_to_numpy
    from rnnviz.core.runs import build_run
    from rnnviz.core.session_file import SessionData, load_session, save_session
    from rnnviz.core.snapshots import SnapshotStore

    run = build_run(bi_run_config("scratch", 1))
    store = SnapshotStore()
    store.add(0, params_to_numpy(run.model))
    data = SessionData(
        checkpoint=run_checkpoint_bytes(run),
        config=run.config,
        probe_text="abc",
        cursor=0,
        view={},
        runs=(("main", MetricHistory()),),
        snapshots=store,
    )
    path = tmp_path / "bi.rnnviz"
    save_session(path, data)
    again = load_session(path)
    assert again.config.model.bidirectional is True
    model = restore_model(again.load_checkpoint())
    for name, value in run.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert "W_hh_reverse" in again.snapshots.snapshots()[0].params  # type: ignore[union-attr]


def test_cli_sample_of_a_bidirectional_checkpoint_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnviz.cli import main
    from rnnviz.core.checkpoint import save_run
    from rnnviz.core.runs import build_run

    path = tmp_path / "bi.safetensors"
    save_run(path, build_run(bi_run_config("lstm", 1)))
    code = main(["sample", "ma", "--checkpoint", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: a bidirectional model does not generate text")
    assert err.count("\n") == 1

"""Bidirectional recurrent layers (issue 16, issue 18): the configuration's verdicts, the
models against ``torch.nn`` with ``bidirectional=True`` and copied weights (forward and
gradients), the checkpoint, the probe and a user's bidirectional module.

Every reference is computed on ``torch.nn`` modules (their forward pass, and autograd through
them), never on rnnviz's own model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
        ({"kind": "scratch", "bidirectional": True, "num_layers": 2}, "stacked layers"),
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

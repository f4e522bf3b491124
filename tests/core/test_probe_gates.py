"""The gates in a probe: ProbeResult.gates is core.gates' record, kept by the Prober, in JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnviz.core.probe as probe_module
from rnnviz.cli import main
from rnnviz.core.config import ModelConfig
from rnnviz.core.gates import DESCRIPTIONS, GRU_NAMES, LSTM_NAMES, gate_key, model_gates
from rnnviz.core.model import CharModel, build_model
from rnnviz.core.probe import Prober, ProbeResult, probe
from rnnviz.core.probe_json import probe_json, state_arrays
from rnnviz.core.vocab import Vocab

torch.set_num_threads(1)

CORPUS = "the time traveller for so it will be convenient to speak of him"
TEXT = "the time traveller"
HIDDEN = 6
GATED = ["gru", "lstm"]
NAMES = {"lstm": LSTM_NAMES, "gru": GRU_NAMES}

TINY = [
    "--corpus", "synthetic:repeat", "--hidden", "8", "--batch-size", "8",
    "--num-steps", "8", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.from_text(CORPUS)


def make_model(vocab: Vocab, kind: str, seed: int = 1) -> CharModel:
    model = build_model(len(vocab), ModelConfig(kind=kind, hidden_size=HIDDEN), seed=seed)  # type: ignore[arg-type]
    with torch.no_grad():  # gates well away from 0.5 and a cell that grows past 1
        for name, p in model.named_parameters():
            if "rnn" in name:
                p.mul_(3.0)
    return model


def assert_same_gates(got: ProbeResult, expected: ProbeResult, atol: float = 1e-5) -> None:
    assert got.gates is not None and expected.gates is not None
    a, b = got.gates.trace(), expected.gates.trace()
    assert a.names == b.names
    for name in b.names:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=atol, err_msg=name)
        assert not a[name].flags.writeable
        assert a[name].shape == (len(expected.text), HIDDEN)
        np.testing.assert_allclose(a.levels[name], b.levels[name], rtol=1e-5, err_msg=name)
        assert a.descriptions[name] == b.descriptions[name]
    np.testing.assert_allclose(got.hidden, expected.hidden, rtol=1e-5, atol=atol)
    if expected.cell is not None:
        np.testing.assert_allclose(got.cell, expected.cell, rtol=1e-5, atol=atol)


# ------------------------------------------------------------------------ the record


@pytest.mark.parametrize("kind", ["scratch", "fast"])
def test_the_plain_rnn_has_no_gates(vocab: Vocab, kind: str) -> None:
    assert probe(make_model(vocab, kind), vocab, TEXT).gates is None


@pytest.mark.parametrize("kind", GATED)
def test_the_gates_are_model_gates(vocab: Vocab, kind: str) -> None:
    model = make_model(vocab, kind)
    result = probe(model, vocab, TEXT)
    expected = model_gates(model, vocab.encode(TEXT))
    assert result.gates is not None
    assert result.gates.kind == kind and result.gates.num_layers == 1
    assert result.gates.flat().keys() == expected.flat().keys()
    assert set(result.gates.flat()) == {gate_key(0, "forward", n) for n in NAMES[kind]}
    for key, values in expected.flat().items():
        got = result.gates.flat()[key]
        np.testing.assert_array_equal(got, values, err_msg=key)
        assert not got.flags.writeable
    assert result.gates.flat_descriptions() == expected.flat_descriptions()
    trace = result.gates.trace()
    assert trace.levels == expected.trace().levels
    # the probe's H_t and C_t are the record's h and c, and the fused layer's output
    np.testing.assert_array_equal(result.hidden, trace["h"])
    if kind == "lstm":
        np.testing.assert_array_equal(result.cell, trace["c"])
    else:
        assert result.cell is None
    with torch.no_grad():
        logits, fused, _ = model(torch.from_numpy(vocab.encode(TEXT))[None])
    np.testing.assert_allclose(result.hidden, fused[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(
        result.probs, torch.softmax(logits[0], -1).numpy(), rtol=1e-5, atol=1e-6
    )


def test_lstm_h_and_c_follow_from_the_gates(vocab: Vocab) -> None:
    res = probe(make_model(vocab, "lstm"), vocab, TEXT)
    assert res.gates is not None and res.cell is not None
    g = res.gates.trace()
    c_prev = np.vstack([np.zeros((1, HIDDEN), np.float32), res.cell[:-1]])
    np.testing.assert_allclose(res.cell, g["f"] * c_prev + g["i"] * g["g"], atol=1e-5)
    np.testing.assert_allclose(res.hidden, g["o"] * np.tanh(res.cell), atol=1e-5)
    assert np.abs(res.cell).max() > 1.0  # the cell state is not bounded like h
    lo, hi = g.levels["c"]
    assert lo == -hi and hi == pytest.approx(float(np.abs(res.cell).max()))
    for name in ("i", "f", "o"):
        assert g.levels[name] == (0.0, 1.0)
        assert g[name].min() >= 0.0 and g[name].max() <= 1.0
    assert g.levels["g"] == (-1.0, 1.0)


def test_gru_h_follows_from_the_gates(vocab: Vocab) -> None:
    res = probe(make_model(vocab, "gru"), vocab, TEXT)
    assert res.gates is not None
    g = res.gates.trace()
    h_prev = np.vstack([np.zeros((1, HIDDEN), np.float32), res.hidden[:-1]])
    np.testing.assert_allclose(res.hidden, (1 - g["z"]) * g["n"] + g["z"] * h_prev, atol=1e-5)
    assert g.levels["r"] == g.levels["z"] == (0.0, 1.0)
    assert g.levels["n"] == (-1.0, 1.0)


# ------------------------------------------------------------------------ the Prober


@pytest.mark.parametrize("kind", GATED)
@pytest.mark.parametrize(
    ("before", "after", "reused"),
    [
        ("the time travelle", "the time traveller", 17),  # a key typed at the end
        ("the time traveller", "the lime traveller", 4),  # an edit in the middle
        ("the time traveller", "the time travelle", 17),  # a backspace
        ("the time traveller", "the time traveller", 18),  # the same text again
        ("the time traveller", "xhe time", 0),  # nothing in common
    ],
)
def test_a_prober_result_is_a_fresh_probe(
    vocab: Vocab, kind: str, before: str, after: str, reused: int
) -> None:
    model = make_model(vocab, kind)
    prober = Prober(model, vocab)
    prober.probe(before)
    got = prober.probe(after)
    assert prober.reused_steps == reused
    fresh = probe(model, vocab, after)
    assert_same_gates(got, fresh)
    np.testing.assert_allclose(got.probs, fresh.probs, rtol=1e-5, atol=1e-6)
    assert got.grad_flow is not None and fresh.grad_flow is not None
    np.testing.assert_allclose(got.grad_flow, fresh.grad_flow, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", GATED)
def test_a_typing_session_keeps_the_gates_equal_to_fresh_probes(vocab: Vocab, kind: str) -> None:
    model = make_model(vocab, kind)
    prober = Prober(model, vocab)
    for text in ["t", "th", "the", "the ", "the t", "the", "thx time", "thx times", "thx"]:
        assert_same_gates(prober.probe(text, with_grad_flow=False), probe(model, vocab, text))


@pytest.mark.parametrize("kind", GATED)
def test_a_key_at_the_end_steps_the_gates_once(
    vocab: Vocab, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new step starts from the cached (h, c) at p - 1: model_gates reads one token."""
    model = make_model(vocab, kind)
    prober = Prober(model, vocab)
    prober.probe("the time travelle")
    lengths: list[int] = []
    real = probe_module.model_gates

    def counting(model, tokens, state=None):  # type: ignore[no-untyped-def]
        lengths.append(len(tokens))
        assert state is not None  # continued, not from zeros
        return real(model, tokens, state)

    monkeypatch.setattr(probe_module, "model_gates", counting)
    prober.probe("the time traveller", with_grad_flow=False)
    assert lengths == [1]
    prober.probe("the time travel", with_grad_flow=False)  # a backspace: no step at all
    assert lengths == [1]


def test_prober_results_stay_as_they_were(vocab: Vocab) -> None:
    """A later probe never writes into the arrays of a result already handed out."""
    model = make_model(vocab, "lstm")
    prober = Prober(model, vocab)
    first = prober.probe("the time")
    assert first.gates is not None
    kept = {k: v.copy() for k, v in first.gates.flat().items()}
    prober.probe("the time traveller")
    prober.probe("the")
    for key, values in first.gates.flat().items():
        np.testing.assert_array_equal(values, kept[key])
        assert values.shape[0] == len("the time")


# ------------------------------------------------------------------------------ JSON


@pytest.mark.parametrize("kind", GATED)
def test_the_json_holds_every_gate_by_key(vocab: Vocab, kind: str) -> None:
    result = probe(make_model(vocab, kind), vocab, TEXT)
    data = json.loads(json.dumps(probe_json(result)))
    assert result.gates is not None
    trace = result.gates.trace()
    names = [n for n in NAMES[kind] if n != "h"]  # h is "hidden"
    assert list(data["gates"]) == [gate_key(0, "forward", n) for n in names]
    for name in names:
        entry = data["gates"][gate_key(0, "forward", name)]
        assert entry["description"] == DESCRIPTIONS[kind][name]
        assert entry["levels"] == list(trace.levels[name])
        np.testing.assert_allclose(entry["values"], trace[name], rtol=1e-6)
    assert np.array(data["hidden"]).shape == (len(TEXT), HIDDEN)
    assert ("cell" in data) == (kind == "lstm")
    # the CLI's size check counts what is written
    arrays = 1 + len(names) + (1 if kind == "lstm" else 0)
    assert state_arrays(kind) == arrays


def test_the_plain_rnn_json_has_no_gates(vocab: Vocab) -> None:
    data = probe_json(probe(make_model(vocab, "fast"), vocab, TEXT))
    assert "gates" not in data and "cell" not in data
    assert state_arrays("fast") == state_arrays("scratch") == 1


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gated")
    out = {}
    for kind in GATED:
        ck = folder / f"{kind}.safetensors"
        argv = ["train", *TINY, "--model", kind, "--max-steps", "3", "--checkpoint-out", str(ck)]
        assert main(argv) == 0
        out[kind] = ck
    return out


@pytest.mark.parametrize("kind", GATED)
def test_probe_json_on_the_command_line_has_the_gates(
    checkpoints: dict[str, Path], kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnviz.core.checkpoint import load_checkpoint, restore_model

    capsys.readouterr()
    ck = checkpoints[kind]
    assert main(["probe", "machine", "--checkpoint", str(ck), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [n for n in NAMES[kind] if n != "h"]
    assert sorted(data["gates"]) == sorted(gate_key(0, "forward", n) for n in names)
    f_or_z = data["gates"]["l0.forward." + ("f" if kind == "lstm" else "z")]
    assert f_or_z["levels"] == [0.0, 1.0] and "(sigmoid)" in f_or_z["description"]
    assert np.array(f_or_z["values"]).shape == (len("machine"), 8)
    if kind == "lstm":
        np.testing.assert_allclose(data["gates"]["l0.forward.c"]["values"], data["cell"])
    # the same numbers as a probe of the checkpoint's model
    ckpt = load_checkpoint(ck)
    expected = probe(restore_model(ckpt, "cpu"), ckpt.vocab, "machine")
    assert expected.gates is not None
    for name in names:
        np.testing.assert_allclose(
            data["gates"][gate_key(0, "forward", name)]["values"],
            expected.gates.trace()[name],
            rtol=1e-6,
        )


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", GATED)
def test_a_key_typed_at_the_end_sweeps_one_row_from_the_gates_as_the_full_sweep_does(
    vocab: Vocab, kind: str, layers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one new row of G (recurrence_vjp.one_row_flow, NumPy on the forward pass's gates)
    equals the torch sweep of a fresh probe, with gates driven into saturation and back."""
    import rnnviz.core.recurrence_vjp as vjp

    torch.manual_seed(3)
    model = build_model(len(vocab), ModelConfig(kind=kind, hidden_size=16, num_layers=layers), 3)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    calls = []
    real = vjp.one_row_flow
    monkeypatch.setattr(probe_module, "one_row_flow", lambda *a: calls.append(1) or real(*a))
    text = CORPUS[:40]
    prober = Prober(model, vocab)
    prober.probe(text[:-1])
    typed = prober.probe(text)
    assert calls == [1]  # the one-row path was taken
    fresh = probe(model, vocab, text)
    assert calls == [1]  # and not by a whole probe
    assert typed.grad_flow is not None and fresh.grad_flow is not None
    np.testing.assert_allclose(typed.grad_flow, fresh.grad_flow, rtol=1e-5, atol=1e-6)
    assert typed.grad_flow[len(text) - 2, : len(text) - 1].min() > 0  # the new row, all of it

"""An engineer's own PyTorch RNN, opened read-only: the numbers are the module's own.

Every reference here is computed on the ORIGINAL torch.nn modules (their forward pass, and
autograd through them one step at a time for the gradient flow), never on rnnviz's model.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from rnnviz.cli import main
from rnnviz.core.model import GRUModel, LSTMModel, ScratchRNN
from rnnviz.core.probe import probe
from rnnviz.core.torch_model import (
    TorchModelError,
    conversion_hint,
    open_torch_model,
    parse_spec,
)

torch.set_num_threads(1)

# d2l's Vocab sorts its tokens, so "<unk>" is not first: ' ' < '<' < 'a'
VOCAB = sorted(["<unk>", " ", "a", "b", "c", "e", "h", "t"])
TEXT = "the cab ate a bee"
EMBED, HIDDEN = 5, 6
TOL = 1e-5


class Net(nn.Module):
    """The model an engineer trains: Embedding (or one-hot) -> RNN/GRU/LSTM -> Linear."""

    def __init__(
        self,
        kind: str,
        nonlinearity: str = "tanh",
        embedding: bool = True,
        bias: bool = True,
        vocab_size: int = len(VOCAB),
        **rnn_kwargs: Any,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.vocab_size = vocab_size
        self.emb = nn.Embedding(vocab_size, EMBED) if embedding else None
        width = EMBED if embedding else vocab_size
        if kind == "rnn":
            self.rnn: nn.RNNBase = nn.RNN(
                width, HIDDEN, nonlinearity=nonlinearity, bias=bias, batch_first=True, **rnn_kwargs
            )
        else:
            cls = nn.GRU if kind == "gru" else nn.LSTM
            self.rnn = cls(width, HIDDEN, bias=bias, batch_first=True, **rnn_kwargs)
        self.fc = nn.Linear(HIDDEN, vocab_size, bias=bias)

    def inputs(self, ids: Tensor) -> Tensor:
        if self.emb is None:
            return nn.functional.one_hot(ids, self.vocab_size).float()
        return self.emb(ids)


def make_net(seed: int = 0, **kwargs: Any) -> Net:
    torch.manual_seed(seed)
    return Net(**kwargs)


def spec_of(kind: str, embedding: bool = True, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "format": "rnnviz-torch-model",
        "version": 1,
        "kind": kind,
        "vocab": list(VOCAB),
        "prefixes": {"embedding": "emb." if embedding else None, "rnn": "rnn.", "output": "fc."},
    }
    spec.update(changes)
    return spec


def save(
    tmp_path: Path, tensors: dict[str, Tensor], spec: Any, stem: str = "model"
) -> tuple[Path, Path]:
    weights, spec_path = tmp_path / f"{stem}.safetensors", tmp_path / f"{stem}.json"
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(weights))
    spec_path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return weights, spec_path


def save_net(tmp_path: Path, net: Net, nonlinearity: str | None = None) -> tuple[Path, Path]:
    extra = {"nonlinearity": nonlinearity} if nonlinearity else {}
    return save(tmp_path, net.state_dict(), spec_of(net.kind, net.emb is not None, **extra))


def ids_of(text: str) -> Tensor:
    return torch.tensor([VOCAB.index(c) for c in text])


def reference(net: Net, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The module's own forward: hidden (T, H), softmax (T, V) in VOCAB's order, and
    G[t, k] = ||dL_t/dh_k|| by autograd through the module one step at a time (for the LSTM,
    h_k is a node of its own and the cell state c_k another, so c_k is held fixed)."""
    ids = ids_of(text)
    T = len(ids)
    x = net.inputs(ids)[None]  # (1, T, D)
    with torch.no_grad():
        out, _ = net.rnn(x)
        probs = torch.softmax(net.fc(out[0]), dim=-1)
    h = torch.zeros(1, 1, HIDDEN)
    c = torch.zeros(1, 1, HIDDEN)
    hs: list[Tensor] = []
    for t in range(T):
        if isinstance(net.rnn, nn.LSTM):
            _, (h, c) = net.rnn(x[:, t : t + 1], (h, c))
        else:
            _, h = net.rnn(x[:, t : t + 1], h)
        hs.append(h)
    stepped = torch.cat([v.reshape(1, HIDDEN) for v in hs]).detach()
    torch.testing.assert_close(stepped, out[0], atol=1e-6, rtol=0)  # the test's own sanity
    G = np.zeros((T, T))
    for t in range(T - 1):
        loss = nn.functional.cross_entropy(net.fc(hs[t].reshape(1, HIDDEN)), ids[t + 1 : t + 2])
        grads = torch.autograd.grad(loss, hs[: t + 1], retain_graph=True)
        G[t, : t + 1] = [float(g.norm()) for g in grads]
    return out[0].numpy(), probs.numpy(), G


def rnnviz_order(tokens: tuple[str, ...]) -> list[int]:
    """Column i of rnnviz's probs is column ``order[i]`` of the module's."""
    return [VOCAB.index(tok) for tok in tokens]


# ------------------------------------------------------------------ the numbers


KINDS = [("rnn", "tanh"), ("rnn", "relu"), ("gru", None), ("lstm", None)]


@pytest.mark.parametrize("embedding", [True, False], ids=["embedding", "one-hot"])
@pytest.mark.parametrize(
    ("kind", "nonlinearity"), KINDS, ids=["rnn-tanh", "rnn-relu", "gru", "lstm"]
)
def test_hidden_probs_and_grad_flow_are_the_modules_own(
    tmp_path: Path, kind: str, nonlinearity: str | None, embedding: bool
) -> None:
    net = make_net(kind=kind, nonlinearity=nonlinearity or "tanh", embedding=embedding)
    model, vocab = open_torch_model(*save_net(tmp_path, net, nonlinearity))
    expected = {"rnn": ScratchRNN, "gru": GRUModel, "lstm": LSTMModel}[kind]
    assert isinstance(model, expected) and not model.training
    assert vocab.tokens[0] == "<unk>" and sorted(vocab.tokens) == VOCAB
    assert model.hidden_size == HIDDEN and model.vocab_size == len(VOCAB)

    hidden, probs, G = reference(net, TEXT)
    result = probe(model, vocab, TEXT)
    assert result.unknown == ()
    assert result.activation == (nonlinearity or "tanh")
    np.testing.assert_allclose(result.hidden, hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(result.probs, probs[:, rnnviz_order(vocab.tokens)], atol=TOL, rtol=0)
    assert result.grad_flow is not None
    np.testing.assert_allclose(result.grad_flow, G, atol=TOL, rtol=0)
    # the comparison is not of zeros: earlier steps reach later losses
    assert np.count_nonzero(np.tril(G, -1)) > len(TEXT)
    if kind == "lstm":
        with torch.no_grad():
            _, (_, c_n) = net.rnn(net.inputs(ids_of(TEXT))[None])
        assert result.cell is not None
        np.testing.assert_allclose(result.cell[-1], c_n[0, 0].numpy(), atol=TOL, rtol=0)


def test_unk_first_needs_no_permutation(tmp_path: Path) -> None:
    vocab = ["<unk>", *[t for t in VOCAB if t != "<unk>"]]
    net = make_net(kind="gru")
    weights, spec = save(tmp_path, net.state_dict(), spec_of("gru", vocab=vocab))
    model, rv_vocab = open_torch_model(weights, spec)
    assert list(rv_vocab.tokens) == vocab
    ids = torch.tensor([vocab.index(c) for c in TEXT])
    with torch.no_grad():
        out, _ = net.rnn(net.inputs(ids)[None])
        logits = net.fc(out[0])
    result = probe(model, rv_vocab, TEXT, with_grad_flow=False)
    np.testing.assert_allclose(result.probs, torch.softmax(logits, -1).numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_bias_false_layers_open_with_zero_biases(tmp_path: Path, kind: str) -> None:
    net = make_net(kind=kind, bias=False)
    assert not any("bias" in k for k in net.state_dict())
    model, vocab = open_torch_model(*save_net(tmp_path, net))
    hidden, probs, G = reference(net, TEXT)
    result = probe(model, vocab, TEXT)
    np.testing.assert_allclose(result.hidden, hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(result.probs, probs[:, rnnviz_order(vocab.tokens)], atol=TOL, rtol=0)
    assert result.grad_flow is not None
    np.testing.assert_allclose(result.grad_flow, G, atol=TOL, rtol=0)


# ------------------------------------------------------------------ d2l's names


def d2l_params(seed: int = 0) -> dict[str, Tensor]:
    """RNNScratch + RNNLMScratch's output layer, with weights large enough to matter."""
    g = torch.Generator().manual_seed(seed)
    V, H = len(VOCAB), HIDDEN

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g) * 0.5

    return {"W_xh": rand(V, H), "W_hh": rand(H, H), "b_h": rand(H), "W_hq": rand(H, V),
            "b_q": rand(V)}  # fmt: skip


def d2l_reference(p: dict[str, Tensor], text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """d2l's RNNScratch.forward and RNNLMScratch.output_layer, step by step, autograd for G."""
    p = {k: v.clone().requires_grad_() for k, v in p.items()}  # so that each H_t is a node
    ids = ids_of(text)
    X = nn.functional.one_hot(ids, len(VOCAB)).float()
    h = torch.zeros(1, HIDDEN)
    hs = []
    for x in X:
        h = torch.tanh(x[None] @ p["W_xh"] + h @ p["W_hh"] + p["b_h"])
        hs.append(h)
    hidden = torch.cat(hs)
    probs = torch.softmax(hidden @ p["W_hq"] + p["b_q"], dim=-1)
    T = len(ids)
    G = np.zeros((T, T))
    for t in range(T - 1):
        loss = nn.functional.cross_entropy(hs[t] @ p["W_hq"] + p["b_q"], ids[t + 1 : t + 2])
        G[t, : t + 1] = [
            float(g.norm()) for g in torch.autograd.grad(loss, hs[: t + 1], retain_graph=True)
        ]
    return hidden.detach().numpy(), probs.detach().numpy(), G


@pytest.mark.parametrize("rnn_prefix", ["", "rnn."], ids=["RNNScratch", "RNNLMScratch"])
def test_d2l_scratch_names_open_as_they_are(tmp_path: Path, rnn_prefix: str) -> None:
    params = d2l_params()
    tensors = {
        (rnn_prefix if k in ("W_xh", "W_hh", "b_h") else "") + k: v for k, v in params.items()
    }
    spec = spec_of("rnn", prefixes={"rnn": rnn_prefix, "output": ""})
    model, vocab = open_torch_model(*save(tmp_path, tensors, spec))
    assert isinstance(model, ScratchRNN) and model.config.activation == "tanh"
    hidden, probs, G = d2l_reference(params, TEXT)
    result = probe(model, vocab, TEXT)
    np.testing.assert_allclose(result.hidden, hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(result.probs, probs[:, rnnviz_order(vocab.tokens)], atol=TOL, rtol=0)
    assert result.grad_flow is not None
    np.testing.assert_allclose(result.grad_flow, G, atol=TOL, rtol=0)
    # the step view shows the chapter's W_xh: the student's own, rows in rnnviz's order
    order = rnnviz_order(vocab.tokens)
    torch.testing.assert_close(model.W_xh.detach(), params["W_xh"][order])


def test_d2l_names_need_kind_rnn(tmp_path: Path) -> None:
    weights, spec = save(tmp_path, d2l_params(), spec_of("gru", prefixes={"rnn": "", "output": ""}))
    with pytest.raises(TorchModelError, match="d2l's RNNScratch.*kind must be 'rnn', not 'gru'"):
        open_torch_model(weights, spec)


# ------------------------------------------------------------------ refused files


def test_wrong_shape_names_the_tensor_and_both_shapes(tmp_path: Path) -> None:
    sd = make_net(kind="lstm").state_dict()
    sd["rnn.weight_ih_l0"] = sd["rnn.weight_ih_l0"][:, :3]
    weights, spec = save(tmp_path, sd, spec_of("lstm"))
    with pytest.raises(TorchModelError) as err:
        open_torch_model(weights, spec)
    message = str(err.value)
    assert "tensor rnn.weight_ih_l0 has shape (24, 3)" in message
    assert "make it (24, 5)" in message and "\n" not in message


def test_vocab_size_mismatch_names_the_tensor_and_both_shapes(tmp_path: Path) -> None:
    net = make_net(kind="gru", embedding=False)
    spec = spec_of("gru", embedding=False, vocab=[*VOCAB, "z"])
    weights, spec_path = save(tmp_path, net.state_dict(), spec)
    with pytest.raises(TorchModelError) as err:
        open_torch_model(weights, spec_path)
    message = str(err.value)
    assert "tensor rnn.weight_ih_l0 has shape (18, 8)" in message
    assert "make it (18, 9)" in message and "9 tokens" in message


def test_embedding_rows_must_match_the_vocabulary(tmp_path: Path) -> None:
    net = make_net(kind="rnn", vocab_size=len(VOCAB) - 1)
    weights, spec = save(tmp_path, net.state_dict(), spec_of("rnn"))
    with pytest.raises(TorchModelError, match=r"emb\.weight has shape \(7, 5\).*make it \(8, 5\)"):
        open_torch_model(weights, spec)


def test_kind_that_does_not_fit_the_tensors_says_which_would(tmp_path: Path) -> None:
    weights, spec = save(tmp_path, make_net(kind="gru").state_dict(), spec_of("lstm"))
    with pytest.raises(TorchModelError, match=r"\(18, 6\).*\(4\*H, H\).*a GRU's"):
        open_torch_model(weights, spec)


@pytest.mark.parametrize(
    "drop", ["rnn.weight_hh_l0", "fc.weight", "emb.weight", "rnn.bias_hh_l0"]
)  # fmt: skip
def test_missing_tensor_is_named(tmp_path: Path, drop: str) -> None:
    sd = dict(make_net(kind="lstm").state_dict())
    del sd[drop]
    weights, spec = save(tmp_path, sd, spec_of("lstm"))
    with pytest.raises(TorchModelError, match=f"missing tensor\\(s\\) {drop}"):
        open_torch_model(weights, spec)


def test_wrong_prefix_lists_what_the_file_has(tmp_path: Path) -> None:
    weights, spec = save(
        tmp_path,
        make_net(kind="gru").state_dict(),
        spec_of("gru", prefixes={"embedding": "emb.", "rnn": "gru.", "output": "fc."}),
    )
    with pytest.raises(TorchModelError, match=r"missing.*gru\.weight_ih_l0.*rnn\.weight_hh_l0"):
        open_torch_model(weights, spec)


def test_one_tensor_for_two_parts_is_refused(tmp_path: Path) -> None:
    spec = spec_of("gru", prefixes={"embedding": "fc.", "rnn": "rnn.", "output": "fc."})
    weights, spec_path = save(tmp_path, make_net(kind="gru").state_dict(), spec)
    with pytest.raises(TorchModelError, match="make fc.weight both the embedding and the weight"):
        open_torch_model(weights, spec_path)


def test_tensors_the_spec_does_not_place_are_refused(tmp_path: Path) -> None:
    sd = dict(make_net(kind="gru").state_dict())
    sd["norm.weight"] = torch.ones(HIDDEN)  # a layer between the GRU and the Linear
    weights, spec = save(tmp_path, sd, spec_of("gru"))
    with pytest.raises(TorchModelError, match=r"does not place: norm\.weight"):
        open_torch_model(weights, spec)


def test_a_stacked_bidirectional_rnn_is_refused_by_name(tmp_path: Path) -> None:
    net = make_net(kind="rnn", num_layers=2, bidirectional=True)
    with pytest.raises(TorchModelError, match="a stacked bidirectional nn.RNN is not supported"):
        open_torch_model(*save_net(tmp_path, net))


@pytest.mark.parametrize(
    ("kind", "kwargs", "words"),
    [
        ("lstm", {"num_layers": 5}, "num_layers=5 is not supported yet"),
        ("rnn", {"num_layers": 5}, "num_layers=5 is not supported yet"),
        ("gru", {"num_layers": 5, "bidirectional": True}, "num_layers=5 is not supported yet"),
        ("lstm", {"proj_size": 3}, "proj_size is not supported yet"),
    ],
)  # fmt: skip
def test_more_layers_or_directions_are_refused_by_name(
    tmp_path: Path, kind: str, kwargs: dict[str, Any], words: str
) -> None:
    net = make_net(kind=kind, **kwargs)
    with pytest.raises(TorchModelError) as err:
        open_torch_model(*save_net(tmp_path, net))
    opens = {"rnn": "an RNN", "gru": "a GRU", "lstm": "an LSTM"}[kind] + " of 1 to 4 layers"
    assert words in str(err.value) and f"opens {opens}, either direction" in str(err.value)


def test_float64_weights_are_refused_with_the_fix(tmp_path: Path) -> None:
    sd = {k: v.double() for k, v in make_net(kind="rnn").state_dict().items()}
    weights, spec = save(tmp_path, sd, spec_of("rnn"))
    with pytest.raises(TorchModelError, match=r"is F64; rnnviz opens float32.*model\.float\(\)"):
        open_torch_model(weights, spec)


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    sd = dict(make_net(kind="rnn").state_dict())
    sd["fc.bias"] = sd["fc.bias"].clone()
    sd["fc.bias"][2] = float("nan")
    weights, spec = save(tmp_path, sd, spec_of("rnn"))
    with pytest.raises(TorchModelError, match="1 of the 8 values of tensor fc.bias are not finite"):
        open_torch_model(weights, spec)


def test_not_a_safetensors_file(tmp_path: Path) -> None:
    _, spec = save(tmp_path, make_net(kind="rnn").state_dict(), spec_of("rnn"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello, this is not a model at all")
    with pytest.raises(TorchModelError, match="not a safetensors file"):
        open_torch_model(junk, spec)
    with pytest.raises(TorchModelError, match="no such model"):
        open_torch_model(tmp_path / "absent.safetensors", spec)
    with pytest.raises(TorchModelError, match="is a folder"):
        open_torch_model(tmp_path, spec)


def _forbid_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("something tried to unpickle the file")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("how", ["torch.save", "torch.save legacy", "pickle"])
def test_a_pickle_is_refused_with_the_conversion_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    net = make_net(kind="lstm")
    _, spec = save_net(tmp_path, net)
    pt = tmp_path / ("net.pt" if how != "pickle" else "net.pkl")
    if how == "torch.save":
        torch.save(net.state_dict(), pt)
    elif how == "torch.save legacy":
        torch.save(net.state_dict(), pt, _use_new_zipfile_serialization=False)
    else:
        pt.write_bytes(pickle.dumps({k: v.tolist() for k, v in net.state_dict().items()}))
    with monkeypatch.context() as patch:
        _forbid_unpickling(patch)
        with pytest.raises(TorchModelError) as err:
            open_torch_model(pt, spec)
    lines = str(err.value).splitlines()
    assert "rnnviz never loads a pickle" in lines[0] and "trusted machine" in lines[0]
    code = [line.strip() for line in lines[1:]]
    assert len(code) == 2
    assert "weights_only=True" in code[1] and "safetensors.torch.save_file(" in code[1]
    if how == "pickle":
        return
    # the two lines work: run them (this test's file is trusted), then the result opens
    exec(compile("\n".join(code), "<conversion hint>", "exec"), {})
    converted = tmp_path / "net.safetensors"
    assert converted.exists()
    model, vocab = open_torch_model(converted, spec)
    hidden, _, _ = reference(net, TEXT)
    result = probe(model, vocab, TEXT, with_grad_flow=False)
    np.testing.assert_allclose(result.hidden, hidden, atol=TOL, rtol=0)


def test_a_safetensors_file_named_pt_is_read_by_its_content(tmp_path: Path) -> None:
    net = make_net(kind="gru")
    weights, spec = save_net(tmp_path, net)
    renamed = tmp_path / "model.pt"
    renamed.write_bytes(weights.read_bytes())
    model, _ = open_torch_model(renamed, spec)
    assert isinstance(model, GRUModel)


def test_conversion_hint_names_the_files() -> None:
    hint = conversion_hint("runs/net.pth")
    assert "torch.load('runs/net.pth', weights_only=True)" in hint
    assert "'runs/net.safetensors'" in hint


# ------------------------------------------------------------------ refused specs


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("{not json", "is not JSON"),
        ('["a", "list"]', "the spec must be a JSON object, not list"),
        ('{"kind": "rnn", "kind": "gru"}', "the key 'kind' appears twice"),
        (spec_of("transformer"), "kind must be one of 'rnn', 'gru', 'lstm', not 'transformer'"),
        (spec_of("rnn", format="other"), "format must be 'rnnviz-torch-model'"),
        (spec_of("rnn", version=2), "version 2 is from a newer rnnviz"),
        (spec_of("rnn", version="1"), "version must be an integer"),
        (spec_of("rnn", nonlinearity="gelu"), "nonlinearity must be 'tanh' or 'relu'"),
        (spec_of("gru", nonlinearity="tanh"), "nonlinearity is for kind 'rnn' only"),
        (spec_of("rnn", vocab="abc"), "vocab must be a list of tokens"),
        (spec_of("rnn", vocab=["<unk>", "a", 3]), r"vocab\[2\] is 3"),
        (spec_of("rnn", vocab=["<unk>", "ab"]), "rnnviz is character-level"),
        (spec_of("rnn", vocab=["<unk>", "a", "a"]), r"vocab\[2\] 'a' appears twice"),
        (spec_of("rnn", vocab=["a", "b"]), "vocab has no '<unk>'"),
        (spec_of("rnn", vocab=[]), "vocab has 0 tokens"),
        (spec_of("rnn", prefixes="rnn."), "prefixes must be an object"),
        (spec_of("rnn", prefixes={"rnn": "rnn."}), "prefixes.output is missing"),
        (spec_of("rnn", prefixes={"rnn": "rnn.", "output": 3}), "prefixes.output must be"),
        (spec_of("rnn", prefixes={"rnn": "r", "output": "o", "decoder": "d"}),
         "unknown part 'decoder'"),
        (spec_of("rnn", vocabulary=[]), "unknown key 'vocabulary'"),
        ({k: v for k, v in spec_of("rnn").items() if k != "kind"}, "the key 'kind' is missing"),
    ],
)  # fmt: skip
def test_bad_specs_get_one_line(tmp_path: Path, spec: Any, words: str) -> None:
    weights, spec_path = save(tmp_path, make_net(kind="rnn").state_dict(), spec)
    with pytest.raises(TorchModelError, match=words) as err:
        open_torch_model(weights, spec_path)
    assert "\n" not in str(err.value) and str(spec_path) in str(err.value)


def test_parse_spec_defaults() -> None:
    spec = parse_spec(spec_of("rnn", embedding=False))
    assert spec.nonlinearity == "tanh" and spec.embedding is None
    spec = parse_spec({**spec_of("rnn"), "prefixes": {"rnn": "", "output": ""}})
    assert spec.embedding is None and spec.rnn == "" and spec.output == ""


def test_the_spec_is_read_before_the_model(tmp_path: Path) -> None:
    _, spec = save(tmp_path, make_net(kind="rnn").state_dict(), "{")
    with pytest.raises(TorchModelError, match="is not JSON"):
        open_torch_model(tmp_path / "absent.safetensors", spec)


# ------------------------------------------------------------------ the CLI


def test_cli_probe_json_is_the_modules_softmax(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = make_net(kind="lstm")
    weights, spec = save_net(tmp_path, net)
    text = "a bat"
    rc = main(["probe", text, "--torch-model", str(weights), "--spec", str(spec), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = json.loads(captured.out)
    hidden, probs, G = reference(net, text)
    order = [VOCAB.index(tok) for tok in out["vocab"]]
    np.testing.assert_allclose(np.array(out["probs"]), probs[:, order], atol=TOL, rtol=0)
    np.testing.assert_allclose(np.array(out["hidden"]), hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(np.array(out["grad_flow"]), G, atol=TOL, rtol=0)
    assert "l0.forward.f" in out["gates"]


def test_cli_probe_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights, spec = save_net(tmp_path, make_net(kind="rnn"), "relu")
    assert main(["probe", "a cat", "--torch-model", str(weights), "--spec", str(spec)]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:3] == ["pos", "char", "next"]


def test_cli_bad_spec_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights, spec = save(tmp_path, make_net(kind="rnn").state_dict(), spec_of("cnn"))
    rc = main(["probe", "abc", "--torch-model", str(weights), "--spec", str(spec), "--json"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "kind must be" in lines[0]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--torch-model", "m.safetensors"], "--torch-model needs --spec"),
        (["--checkpoint", "ck.safetensors", "--spec", "m.json"], "--spec goes with --torch-model"),
        (["--torch-model", "m.safetensors", "--spec", "m.json", "--at-step", "3"],
         "--at-step needs --session"),
        (["--torch-model", "m.safetensors", "--session", "s.rnnviz"], "not allowed with"),
    ],
)  # fmt: skip
def test_cli_usage_errors_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], words: str
) -> None:
    # none of these files exist: the usage is refused before anything is opened
    rc = main(["probe", "abc", *[str(tmp_path / a) if "." in a else a for a in extra]])
    err = capsys.readouterr().err
    assert rc == 2 and words in err
    assert "no such" not in err


def test_cli_refuses_a_pt_file_with_the_conversion_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    net = make_net(kind="gru")
    _, spec = save_net(tmp_path, net)
    pt = tmp_path / "net.pt"
    torch.save(net.state_dict(), pt)
    _forbid_unpickling(monkeypatch)
    rc = main(["probe", "abc", "--torch-model", str(pt), "--spec", str(spec)])
    err = capsys.readouterr().err
    assert rc == 2 and "never loads a pickle" in err
    assert f"torch.load({str(pt)!r}, weights_only=True)" in err

"""Open an engineer's own PyTorch RNN, read-only: a ``.safetensors`` state_dict and a spec JSON.

The model is ``input layer -> one recurrent layer -> torch.nn.Linear``, the input layer a
``torch.nn.Embedding`` or one-hot, the recurrent layer a ``torch.nn.RNN`` (tanh or relu),
``GRU`` or ``LSTM``. The spec names the vocabulary and where each part's tensors are (the
``#`` notes are for this page; JSON has no comments)::

    {
      "format": "rnnviz-torch-model",
      "version": 1,
      "kind": "lstm",                       # "rnn" | "gru" | "lstm"
      "nonlinearity": "tanh",               # "tanh" | "relu"; kind "rnn" only (default tanh)
      "vocab": ["<unk>", " ", "a", "b"],    # token i is the model's input/output index i
      "prefixes": {"embedding": "emb.",     # "emb.weight"; null or absent: one-hot input
                   "rnn": "rnn.",           # "rnn.weight_ih_l0", "rnn.weight_hh_l0", ...
                   "output": "fc."}         # "fc.weight", "fc.bias"
    }

Every key but ``nonlinearity`` and ``prefixes.embedding`` is required, and no other key is
allowed (a misspelt key is a mistake, not something to ignore). The vocabulary is the list the
model was trained with, in its order: ``"<unk>"`` once, anywhere (d2l's ``Vocab`` sorts it
among the characters), and every other token one distinct character. rnnviz's own vocabulary
puts ``<unk>`` first, so the rows and columns of the weights are permuted to that order here;
a probe's ``vocab`` lists the order it uses.

d2l's names: the tensors under the rnn prefix may be ``W_xh`` (D, H), ``W_hh`` (H, H) and
``b_h`` (H,) of d2l's ``RNNScratch``, and those under the output prefix ``W_hq`` (H, V) and
``b_q`` (V,); such a file is recognised by these names (kind ``"rnn"``). d2l's
``RNNLMScratch`` saves ``rnn.W_xh``, ``rnn.W_hh``, ``rnn.b_h``, ``W_hq``, ``b_q``: prefixes
``{"rnn": "rnn.", "output": ""}``. Its concise ``RNNLM`` (``d2l.RNN`` / ``d2l.GRU``, one-hot)
saves ``rnn.rnn.weight_ih_l0``, ... and ``linear.weight``: prefixes ``{"rnn": "rnn.rnn.",
"output": "linear."}``. A PyTorch layer built with ``bias=False`` has no bias tensors; both
of a pair absent means zeros, one of them absent is a missing tensor.

Why any such model is exactly one of rnnviz's (so every probe panel works on it unchanged):
on a one-hot input X_t, an embedding E (V, D) followed by W_ih (G*H, D) is the single matrix
``W_ih E^T`` (G*H, V), and ``nn.RNN``'s two biases only ever appear summed. So

* ``nn.RNN``: ``W_xh = E W_ih^T``, ``W_hh = W_hh^T``, ``b_h = b_ih + b_hh`` (rnnviz's
  scratch RNN, row vectors as in d2l); a stacked layer l > 0 the same without E
  (``W_xh_l1 = weight_ih_l1^T``, ...), since it reads the layer below's h_t;
* ``nn.GRU`` / ``nn.LSTM``: the same layer over the one-hot input, ``weight_ih = W_ih E^T``;
* ``nn.Linear(H, V)``: ``W_hq = weight^T``, ``b_q = bias``.

The products are summed in float64 and rounded once to float32. ``bidirectional=True`` (the
``_reverse`` tensors; nn.RNN of one layer, nn.GRU/nn.LSTM of 1 to 4) opens as rnnviz's
bidirectional model: the reverse direction's input matrix folds the embedding the same way,
and the Linear reads 2H. A stacked nn.RNN (1 to 4 layers) opens as the stacked scratch RNN.
Not supported yet, and refused with a message that says which (found from the tensor names):
``num_layers`` > 4, a stacked bidirectional nn.RNN, ``proj_size``.

Reading is the checkpoint loader's (``core.checkpoint``): a regular file within
:data:`~rnnviz.core.checkpoint.MAX_CHECKPOINT_BYTES`, the safetensors header and tensor table
checked (float32 only, offsets tiling the data), then every tensor's name and shape against the
spec, then memory, and only then the data is read and every value checked to be finite. A
pickle, a ``torch.save`` zip or a ``.pt``/``.pth`` file is never loaded: the message says how
to convert it on the user's own trusted machine. Every refusal is a :class:`TorchModelError`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rnnviz.core.checkpoint import (
    _PICKLE_SNIFF_BYTES,
    MAX_CHECKPOINT_BYTES,
    MAX_HEADER_BYTES,
    MAX_JSON_DEPTH,
    CheckpointError,
    _check_finite,
    _check_memory,
    _DuplicateKeyError,
    _json_depth,
    _no_duplicates,
    _one_line,
    _open_regular,
    _parse_json,
    _pickle_protocol,
    _read_tensors,
    _show,
    _tensor_table,
    load_params,
)
from rnnviz.core.config import (
    HIDDEN_RANGE,
    LAYERS_RANGE,
    VOCAB_SIZE_RANGE,
    ConfigError,
    ModelConfig,
)
from rnnviz.core.model import CharModel, build_model
from rnnviz.core.vocab import Vocab

SPEC_FORMAT = "rnnviz-torch-model"
SPEC_VERSION = 1
KINDS: tuple[str, ...] = ("rnn", "gru", "lstm")
NONLINEARITIES: tuple[str, ...] = ("tanh", "relu")
# a spec is a few keys and the vocabulary: 65,536 tokens at ~12 bytes each escaped is < 1 MB
MAX_SPEC_BYTES = 16 * 2**20
PARTS: tuple[str, ...] = ("embedding", "rnn", "output")
_SPEC_KEYS = ("format", "version", "kind", "nonlinearity", "vocab", "prefixes")
_MAX_PREFIX_CHARS = 200
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_KIND_NAMES = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
_A = {"rnn": "an", "gru": "a", "lstm": "an"}
_RNNVIZ_KIND = {"rnn": "scratch", "gru": "gru", "lstm": "lstm"}
_D2L_RNN = ("W_xh", "W_hh", "b_h")
_D2L_OUTPUT = ("W_hq", "b_q")
# PyTorch's names of a recurrent layer's tensors: weight_ih_l0, bias_hh_l1_reverse, weight_hr_l0
_LAYER_NAME = re.compile(r"(weight|bias)_(ih|hh|hr)_l([0-9]+)(_reverse)?")
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")
# rows of the vocabulary per float64 product: bounds the temporary to a few MB per 1,000 gates
_CHUNK_ROWS = 1024


class TorchModelError(ValueError):
    """The files do not make a model rnnviz can open; the message says why."""


@dataclass(frozen=True)
class TorchSpec:
    """A validated spec: ``vocab`` in the model's own order, the prefixes as given."""

    kind: str  # rnn | gru | lstm
    nonlinearity: str  # tanh | relu (always tanh for gru/lstm)
    vocab: tuple[str, ...]
    embedding: str | None  # None: one-hot input
    rnn: str
    output: str


# ---------------------------------------------------------------------------- the spec


def spec_beside(path: str | os.PathLike[str]) -> str:
    """The spec a model file's name implies: ``mine.safetensors`` -> ``mine.json``."""
    return os.path.splitext(str(path))[0] + ".json"


def conversion_hint(path: str | os.PathLike[str]) -> str:
    """The two lines of Python that turn a ``torch.save`` state_dict into a safetensors file."""
    source = str(path)
    stem, _ = os.path.splitext(source)
    target = stem + ".safetensors"
    return (
        "Convert it on your own trusted machine, where unpickling it is safe:\n"
        "    import torch, safetensors.torch\n"
        f"    safetensors.torch.save_file(torch.load({source!r}, weights_only=True), {target!r})"
    )


def parse_spec(data: Any, name: str = "spec") -> TorchSpec:
    """Check a parsed spec field by field; the first problem is a one-line TorchModelError."""

    def bad(message: str) -> TorchModelError:
        return TorchModelError(f"{name}: {message}")

    if not isinstance(data, dict):
        raise bad(f"the spec must be a JSON object, not {type(data).__name__}")
    unknown = [k for k in data if k not in _SPEC_KEYS]
    if unknown:
        raise bad(f"unknown key {_show(unknown[0])}; a spec has {', '.join(_SPEC_KEYS)}")
    for key in ("format", "version", "kind", "vocab", "prefixes"):
        if key not in data:
            raise bad(f"the key {key!r} is missing (see rnnviz/core/torch_model.py)")
    if data["format"] != SPEC_FORMAT:
        raise bad(f"format must be {SPEC_FORMAT!r}, not {_show(data['format'])}")
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise bad(f"version must be an integer, not {_show(version)}")
    if version > SPEC_VERSION:
        raise bad(f"version {version} is from a newer rnnviz; this one reads {SPEC_VERSION}")
    if version < 1:
        raise bad(f"version must be {SPEC_VERSION}, not {version}")
    kind = data["kind"]
    if kind not in KINDS:
        raise bad(f"kind must be one of {', '.join(map(repr, KINDS))}, not {_show(kind)}")
    nonlinearity = data.get("nonlinearity", "tanh")
    if "nonlinearity" in data and kind != "rnn":
        raise bad(f"nonlinearity is for kind 'rnn' only; a {_KIND_NAMES[kind]} has its gates")
    if nonlinearity not in NONLINEARITIES:
        raise bad(f"nonlinearity must be 'tanh' or 'relu', not {_show(nonlinearity)}")
    vocab = _spec_vocab(data["vocab"], bad)
    prefixes = data["prefixes"]
    if not isinstance(prefixes, dict):
        raise bad(f"prefixes must be an object, not {_show(prefixes)}")
    unknown = [k for k in prefixes if k not in PARTS]
    if unknown:
        parts = ", ".join(PARTS)
        raise bad(f"prefixes has an unknown part {_show(unknown[0])}; the parts are {parts}")
    for part in ("rnn", "output"):
        if part not in prefixes:
            raise bad(f"prefixes.{part} is missing (the tensor-name prefix of that part)")
    for part in PARTS:
        value = prefixes.get(part)
        if part == "embedding" and value is None:
            continue
        if not isinstance(value, str):
            what = "a string, or null for one-hot input" if part == "embedding" else "a string"
            raise bad(f"prefixes.{part} must be {what}, not {_show(value)}")
        if len(value) > _MAX_PREFIX_CHARS:
            raise bad(f"prefixes.{part} is longer than {_MAX_PREFIX_CHARS} characters")
    return TorchSpec(
        kind=kind,
        nonlinearity=nonlinearity,
        vocab=vocab,
        embedding=prefixes.get("embedding"),
        rnn=prefixes["rnn"],
        output=prefixes["output"],
    )


def _spec_vocab(value: Any, bad: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise bad(f"vocab must be a list of tokens (strings), not {_show(value)}")
    low, high = VOCAB_SIZE_RANGE
    if not low <= len(value) <= high:
        raise bad(f"vocab has {len(value):,} tokens; rnnviz opens {low} to {high:,}")
    seen: set[str] = set()
    for i, token in enumerate(value):
        if not isinstance(token, str):
            raise bad(f"vocab must be a list of strings; vocab[{i}] is {_show(token)}")
        if token != Vocab.UNK and len(token) != 1:
            raise bad(
                f"vocab[{i}] is {_show(token)}; rnnviz is character-level: every token but "
                f"{Vocab.UNK!r} is one character"
            )
        if token in seen:
            raise bad(f"vocab[{i}] {_show(token)} appears twice")
        seen.add(token)
    if Vocab.UNK not in seen:
        raise bad(
            f"vocab has no {Vocab.UNK!r}; rnnviz reads a character the model does not know as "
            f"{Vocab.UNK!r}, so the model needs that token (d2l's Vocab has it)"
        )
    return tuple(value)


def load_spec(path: str | os.PathLike[str]) -> TorchSpec:
    """Read and check the spec file (a regular file of at most :data:`MAX_SPEC_BYTES`)."""
    name = str(path)
    try:
        fh, size = _open_regular(path, name, MAX_SPEC_BYTES, what="spec")
    except CheckpointError as exc:
        raise TorchModelError(str(exc)) from None
    with fh:
        raw = fh.read(size + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TorchModelError(f"{name} is not JSON (not UTF-8 text)") from None
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise TorchModelError(f"{name} nests {depth:,} deep; a spec nests 2 deep")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKeyError as exc:  # two readers could disagree on which one counts
        raise TorchModelError(f"{name}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise TorchModelError(f"{name} is not JSON ({_one_line(exc)})") from None
    return parse_spec(data, name)


# ---------------------------------------------------------------------------- the file


def _refuse_pickle(first: bytes, name: str, path: str | os.PathLike[str]) -> None:
    """A pickle, a torch.save zip, or a .pt-like file that is not safetensors: refused with
    the conversion lines. Never unpickles: pickletools disassembles, it does not run."""
    is_safetensors = len(first) >= 9 and first[8:9] == b"{"
    what = ""
    if first[:1] == b"\x80" and first[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        what = "a pickle"
    elif first[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        what = "a zip archive, as torch.save writes, holding a pickle"
    elif not is_safetensors and _pickle_protocol(first[:_PICKLE_SNIFF_BYTES]) is not None:
        what = "a pickle"
    elif not is_safetensors and name.lower().endswith(_PICKLE_SUFFIXES):
        what = "not a safetensors file (by its name, a torch.save file)"
    if what:
        raise TorchModelError(
            f"{name} is {what}; rnnviz never loads a pickle (unpickling can run any code). "
            + conversion_hint(path)
        )


def _framing(first: bytes, size: int, name: str) -> int:
    """The safetensors header length, once the 8-byte length and the ``{`` agree with it."""
    n = int.from_bytes(first[:8], "little") if len(first) >= 8 else 0
    if not (len(first) >= 9 and first[8:9] == b"{" and n >= 2):
        raise TorchModelError(
            f"{name} is not a safetensors file (save the state_dict with "
            "safetensors.torch.save_file)"
        )
    if n > MAX_HEADER_BYTES:
        raise TorchModelError(
            f"{name} is corrupt (its header length field says {n:,} bytes; "
            f"at most {MAX_HEADER_BYTES:,} are read)"
        )
    if 8 + n > size:
        raise TorchModelError(
            f"{name} is truncated (the header says {n:,} bytes, the file has {size - 8:,})"
        )
    return n


def _header(raw: bytes, name: str) -> dict[str, Any]:
    """The tensor table of a safetensors header (``__metadata__`` dropped), unvalidated."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TorchModelError(f"{name} is corrupt (its safetensors header is not UTF-8)") from None
    header = _parse_json(text, "the safetensors header", name)
    if not isinstance(header, dict):
        raise TorchModelError(f"{name} is corrupt (the safetensors header is not an object)")
    header.pop("__metadata__", None)
    for key, entry in header.items():
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if isinstance(dtype, str) and dtype != "F32":
            raise TorchModelError(
                f"{name}: tensor {key[:60]!r} is {dtype[:10]}; rnnviz opens float32 weights: "
                "save model.float().state_dict()"
            )
    return header


# ---------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class _Plan:
    """Which tensor of the file is which part, and the sizes they imply."""

    hidden: int
    input_dim: int  # D: the embedding's width, or V for one-hot input
    d2l_rnn: bool
    d2l_output: bool
    names: dict[str, str]  # role -> tensor name in the file (absent biases absent)
    layers: int = 1  # stacked layers; roles weight_ih_l1, ... for those above 0
    # the reverse direction's roles are its PyTorch names: weight_ih_l0_reverse, ...
    bidirectional: bool = False


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _refuse_layers(spec: TorchSpec, names: list[str], name: str) -> tuple[int, bool]:
    """The number of layers and whether there is a reverse direction; proj_size, num_layers
    beyond LAYERS_RANGE and a stacked bidirectional nn.RNN refused, told apart by PyTorch's
    tensor names."""
    layers = 1
    reverse = False
    examples: dict[str, str] = {}  # problem -> a tensor that shows it, weight_ih first
    for key in sorted(names, key=lambda k: ("weight_ih" not in k, k)):
        match = _LAYER_NAME.fullmatch(key[len(spec.rnn) :]) if key.startswith(spec.rnn) else None
        if match is None:
            continue
        layers = max(layers, int(match.group(3)) + 1)
        stackable = layers <= LAYERS_RANGE[1]
        if int(match.group(3)) > 0 and not stackable:
            examples.setdefault("layers", key)
        reverse = reverse or bool(match.group(4))
        if match.group(2) == "hr":
            examples.setdefault("proj_size", key)
    if examples:
        found = [(p, examples[p]) for p in ("layers", "proj_size") if p in examples]
        problems = [f"num_layers={layers}" if p == "layers" else p for p, _ in found]
        verb = "is" if len(problems) == 1 else "are"
        opens = f"{_A[spec.kind]} {_KIND_NAMES[spec.kind]} of 1 to {LAYERS_RANGE[1]} layers"
        raise TorchModelError(
            f"{name}: {' and '.join(problems)} {verb} not supported yet: rnnviz opens "
            f"{opens}, either direction (the file has {' and '.join(key for _, key in found)})"
        )
    if spec.kind == "rnn" and layers > 1 and reverse:
        raise TorchModelError(
            f"{name}: a stacked bidirectional nn.RNN is not supported yet: rnnviz opens an "
            f"nn.RNN of 1 to {LAYERS_RANGE[1]} layers in one direction, or of one layer in both"
        )
    return layers, reverse


def _plan(spec: TorchSpec, shapes: dict[str, tuple[int, ...]], name: str) -> _Plan:
    """Match the file's tensors to the spec's parts and check every shape; reads no data."""
    keys = sorted(shapes)
    layers, bidirectional = _refuse_layers(spec, keys, name)
    suffixes = ("", "_reverse") if bidirectional else ("",)
    d2l_rnn = any(spec.rnn + k in shapes for k in _D2L_RNN)
    d2l_output = any(spec.output + k in shapes for k in _D2L_OUTPUT)
    if d2l_rnn and spec.kind != "rnn":
        raise TorchModelError(
            f"{name}: {', '.join(_D2L_RNN)} are the names of d2l's RNNScratch, a plain RNN; "
            f"the spec's kind must be 'rnn', not {spec.kind!r}"
        )
    roles: dict[str, str] = {}  # role -> name
    optional: set[str] = set()
    if spec.embedding is not None:
        roles["embedding"] = spec.embedding + "weight"
    if d2l_rnn:
        roles.update({r: spec.rnn + r for r in _D2L_RNN})
    else:
        roles.update({r: spec.rnn + r + "_l0" for r in ("weight_ih", "weight_hh")})
        biases = {r: spec.rnn + r + "_l0" for r in ("bias_ih", "bias_hh")}
        # bias=False: neither bias exists; one alone is a missing tensor
        has_bias = any(b in shapes for b in biases.values())
        if has_bias:
            roles.update(biases)
        parts = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if has_bias else ())
        # a stacked layer's role, and a reverse direction's, is its own PyTorch name
        for layer in range(layers):
            for sfx in suffixes:
                if layer or sfx:
                    roles.update(
                        {f"{r}_l{layer}{sfx}": f"{spec.rnn}{r}_l{layer}{sfx}" for r in parts}
                    )
    if d2l_output:
        roles.update({"W_hq": spec.output + "W_hq", "b_q": spec.output + "b_q"})
    else:
        roles["weight"] = spec.output + "weight"
        roles["bias"] = spec.output + "bias"
        optional.add("bias")  # nn.Linear(bias=False)
    seen: dict[str, str] = {}
    for role, key in roles.items():
        if key in seen:
            raise TorchModelError(
                f"{name}: the spec's prefixes make {key} both the {seen[key]} and the {role}; "
                "give each part its own prefix"
            )
        seen[key] = role
    missing = [n for r, n in roles.items() if n not in shapes and r not in optional]
    if missing:
        have = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "") if keys else "none"
        raise TorchModelError(
            f"{name} is missing tensor(s) {', '.join(missing)} (prefixes: embedding "
            f"{spec.embedding!r}, rnn {spec.rnn!r}, output {spec.output!r}; the file has {have})"
        )
    roles = {r: n for r, n in roles.items() if n in shapes}
    unplaced = [k for k in keys if k not in roles.values()]
    if unplaced:
        raise TorchModelError(
            f"{name} has tensor(s) the spec does not place: {', '.join(unplaced[:5])} (rnnviz "
            "opens input layer -> one recurrent layer -> Linear, nothing in between; check the "
            "prefixes)"
        )

    G, V = _GATES[spec.kind], len(spec.vocab)
    kind = _KIND_NAMES[spec.kind]
    D = 2 if bidirectional else 1

    def mismatch(role: str, want: tuple[int, ...], why: str) -> None:
        got = shapes[roles[role]]
        if got != want:
            raise TorchModelError(
                f"{name}: tensor {roles[role]} has shape {_fmt(got)}, but {why} make it "
                f"{_fmt(want)}"
            )

    # the hidden size, from the recurrent matrix: (G*H, H), or d2l's (H, H)
    hh_role = "W_hh" if d2l_rnn else "weight_hh"
    hh = shapes[roles[hh_role]]
    H = hh[-1] if hh else 0
    if len(hh) != 2 or hh[0] != G * H:
        form = "(H, H)" if G == 1 else f"({G}*H, H)"
        other = [k for k, g in _GATES.items() if g != G and len(hh) == 2 and hh[0] == g * H]
        hint = ""
        if other:
            hint = f" (that is {_A[other[0]]} {_KIND_NAMES[other[0]]}'s: is the spec's kind right?)"
        raise TorchModelError(
            f"{name}: tensor {roles[hh_role]} has shape {_fmt(hh)}; {_A[spec.kind]} {kind}'s "
            f"recurrent matrix is {form} for its hidden size H{hint}"
        )
    low, high = HIDDEN_RANGE
    if not low <= H <= high:
        raise TorchModelError(
            f"{name}: hidden size {H} (from {roles[hh_role]}); rnnviz opens {low} to {high:,}"
        )
    width = V
    vocab_why = f"the vocabulary's {V} tokens"
    if "embedding" in roles:
        emb = shapes[roles["embedding"]]
        if len(emb) != 2 or emb[0] != V:
            want = f"({V}, {emb[1]})" if len(emb) == 2 else f"({V}, D)"
            raise TorchModelError(
                f"{name}: tensor {roles['embedding']} has shape {_fmt(emb)}, but "
                f"{vocab_why} make it {want} (an Embedding(V, D))"
            )
        width = emb[1]
        in_why = f"the embedding's width {width}"
    else:
        in_why = f"the one-hot input of {V} tokens"
    hid_why = f"hidden size {H}"
    if d2l_rnn:
        mismatch("W_xh", (width, H), f"{in_why} and {hid_why}")
        mismatch("b_h", (H,), hid_why)
    else:
        gates = f"{kind} ({G} x {hid_why})" if G > 1 else hid_why
        for sfx in suffixes:
            first = "weight_ih" if not sfx else f"weight_ih_l0{sfx}"
            mismatch(first, (G * H, width), f"{in_why} and {gates}")
            if sfx:
                mismatch(f"weight_hh_l0{sfx}", (G * H, H), gates)
            for role in (f"bias_ih_l0{sfx}", f"bias_hh_l0{sfx}") if sfx else ("bias_ih", "bias_hh"):
                if role in roles:
                    mismatch(role, (G * H,), gates)
        for layer in range(1, layers):
            below = (
                f"layer {layer - 1}'s output of {D} x {hid_why}"
                if D > 1
                else (f"layer {layer - 1}'s output of {hid_why}")
            )
            for sfx in suffixes:
                mismatch(f"weight_ih_l{layer}{sfx}", (G * H, D * H), f"{below} and {gates}")
                mismatch(f"weight_hh_l{layer}{sfx}", (G * H, H), gates)
                for role in (f"bias_ih_l{layer}{sfx}", f"bias_hh_l{layer}{sfx}"):
                    if role in roles:
                        mismatch(role, (G * H,), gates)
    out_why = f"{hid_why} in {D} directions" if D > 1 else hid_why
    if d2l_output:
        mismatch("W_hq", (D * H, V), f"{out_why} and {vocab_why}")
        mismatch("b_q", (V,), vocab_why)
    else:
        linear = f"a Linear({D}H, V)" if D > 1 else "a Linear(H, V)"
        mismatch("weight", (V, D * H), f"{vocab_why} and {out_why} ({linear})")
        if "bias" in roles:
            mismatch("bias", (V,), vocab_why)
    return _Plan(
        hidden=H,
        input_dim=width,
        d2l_rnn=d2l_rnn,
        d2l_output=d2l_output,
        names=roles,
        layers=layers,
        bidirectional=bidirectional,
    )


# ---------------------------------------------------------------------------- building


def _input_table(E: Tensor | None, W: Tensor, perm: Tensor) -> Tensor:
    """(V, G*H): row i is what token i (rnnviz's order) adds to the pre-activations.

    ``W`` is (D, G*H) (d2l's W_xh, or PyTorch's weight_ih transposed); ``E`` (V, D) or None
    for one-hot input. Summed in float64, rounded once.
    """
    if E is None:
        return W[perm].contiguous()
    E = E[perm]
    W64 = W.double()
    out = torch.empty(E.shape[0], W.shape[1], dtype=torch.float32)
    for start in range(0, E.shape[0], _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        out[rows] = (E[rows].double() @ W64).float()
    return out


def _build(spec: TorchSpec, plan: _Plan, tensors: dict[str, Tensor]) -> tuple[CharModel, Vocab]:
    roles = plan.names
    t = {role: tensors[n] for role, n in roles.items()}
    order = (Vocab.UNK, *(tok for tok in spec.vocab if tok != Vocab.UNK))
    position = {tok: i for i, tok in enumerate(spec.vocab)}
    perm = torch.tensor([position[tok] for tok in order], dtype=torch.long)
    V, H, G = len(order), plan.hidden, _GATES[spec.kind]
    E = t.get("embedding")
    W_in = t["W_xh"] if plan.d2l_rnn else t["weight_ih"].t()  # (D, G*H)
    table = _input_table(E, W_in, perm)  # (V, G*H)
    if plan.d2l_output:
        W_hq, b_q = t["W_hq"][:, perm], t["b_q"][perm]
    else:
        W_hq = t["weight"][perm].t()
        b_q = t["bias"][perm] if "bias" in t else torch.zeros(V)
    params: dict[str, Tensor] = {"W_hq": W_hq.contiguous(), "b_q": b_q.contiguous()}
    if plan.d2l_rnn:
        params.update(W_xh=table, W_hh=t["W_hh"], b_h=t["b_h"])
    elif spec.kind == "rnn":
        b_h = t["bias_ih"] + t["bias_hh"] if "bias_ih" in t else torch.zeros(H)
        params.update(W_xh=table, W_hh=t["weight_hh"].t().contiguous(), b_h=b_h)
        if plan.bidirectional:
            rev = "_l0_reverse"
            params["W_xh_reverse"] = _input_table(E, t["weight_ih" + rev].t(), perm)
            params["W_hh_reverse"] = t["weight_hh" + rev].t().contiguous()
            b_ih = t.get("bias_ih" + rev)
            b_hh = t.get("bias_hh" + rev)
            zero = torch.zeros(H)
            params["b_h_reverse"] = (zero if b_ih is None else b_ih) + (
                zero if b_hh is None else b_hh
            )
        for layer in range(1, plan.layers):  # reads the layer below's h_t: no embedding
            w_xh, w_hh, b = (f"{part}_l{layer}" for part in ("W_xh", "W_hh", "b_h"))
            params[w_xh] = t[f"weight_ih_l{layer}"].t().contiguous()
            params[w_hh] = t[f"weight_hh_l{layer}"].t().contiguous()
            pair = (f"bias_ih_l{layer}", f"bias_hh_l{layer}")
            params[b] = t[pair[0]] + t[pair[1]] if pair[0] in t else torch.zeros(H)
    else:
        zeros = torch.zeros(G * H)
        params["rnn.weight_ih_l0"] = table.t().contiguous()
        params["rnn.weight_hh_l0"] = t["weight_hh"]
        params["rnn.bias_ih_l0"] = t.get("bias_ih", zeros)
        params["rnn.bias_hh_l0"] = t.get("bias_hh", zeros)
        if plan.bidirectional:
            rev = "_l0_reverse"
            params["rnn.weight_ih" + rev] = _input_table(E, t["weight_ih" + rev].t(), perm).t()
            params["rnn.weight_hh" + rev] = t["weight_hh" + rev]
            params["rnn.bias_ih" + rev] = t.get("bias_ih" + rev, zeros)
            params["rnn.bias_hh" + rev] = t.get("bias_hh" + rev, zeros)
        for layer in range(1, plan.layers):
            for sfx in ("", "_reverse") if plan.bidirectional else ("",):
                for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    key = f"{part}_l{layer}{sfx}"
                    params[f"rnn.{key}"] = t.get(key, zeros)
    try:
        config = ModelConfig(
            kind=_RNNVIZ_KIND[spec.kind],  # type: ignore[arg-type]
            activation=spec.nonlinearity,  # type: ignore[arg-type]
            hidden_size=H,
            num_layers=plan.layers,
            bidirectional=plan.bidirectional,
        )
    except ConfigError as exc:
        raise TorchModelError(str(exc)) from None
    model = build_model(V, config, seed=0)
    try:
        load_params(model, params, "the converted model")
    except CheckpointError as exc:  # a bug here, not the user's file: say so plainly
        raise TorchModelError(f"cannot build the rnnviz model: {exc}") from None
    model.eval()
    return model, Vocab(order)


def _model_bytes(spec: TorchSpec, plan: _Plan) -> int:
    V, H, G = len(spec.vocab), plan.hidden, _GATES[spec.kind]
    D = 2 if plan.bidirectional else 1
    stacked = (plan.layers - 1) * (G * H * (D * H + H) + 2 * G * H)
    return 4 * (D * (G * H * (V + H) + 2 * G * H + stacked) + D * H * V + V)


# ---------------------------------------------------------------------------- public


def open_torch_model(
    safetensors_path: str | os.PathLike[str],
    spec_path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_CHECKPOINT_BYTES,
) -> tuple[CharModel, Vocab]:
    """The model of a PyTorch state_dict and its spec as an rnnviz model (CPU, eval mode,
    float32) and its vocabulary, ``<unk>`` first (see the module doc). Never unpickles."""
    spec = load_spec(spec_path)
    name = str(safetensors_path)
    try:
        fh, size = _open_regular(safetensors_path, name, max_bytes, what="model")
    except CheckpointError as exc:
        raise TorchModelError(str(exc)) from None
    with fh:
        try:
            return _read(fh, size, name, safetensors_path, spec)
        except CheckpointError as exc:  # the shared readers' messages are the user's as is
            raise TorchModelError(str(exc)) from None


def _read(
    fh: Any, size: int, name: str, path: str | os.PathLike[str], spec: TorchSpec
) -> tuple[CharModel, Vocab]:
    first: bytes = fh.read(min(size, _PICKLE_SNIFF_BYTES))
    _refuse_pickle(first, name, path)
    n = _framing(first, size, name)
    raw = first[8 : 8 + n] if 8 + n <= len(first) else first[8:] + fh.read(8 + n - len(first))
    header = _header(raw, name)
    shapes = _tensor_table(header, size - 8 - n, name)
    plan = _plan(spec, shapes, name)
    _check_memory(size + _model_bytes(spec, plan), name)
    data, tensors = _read_tensors(fh, size, first[:8] + raw, shapes, name)
    del data
    _check_finite(tensors, name, "such a model is not opened")
    return _build(spec, plan, tensors)


__all__ = [
    "KINDS",
    "MAX_SPEC_BYTES",
    "SPEC_FORMAT",
    "SPEC_VERSION",
    "TorchModelError",
    "TorchSpec",
    "conversion_hint",
    "load_spec",
    "open_torch_model",
    "parse_spec",
    "spec_beside",
]

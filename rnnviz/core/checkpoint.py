"""Checkpoints: one ``.safetensors`` file, never a pickle.

Tensors: the model's ``state_dict`` under ``model.<name>`` and the trainer's tensors (optimizer
state, carried hidden state) under ``trainer.<name>``, all float32. Everything else is JSON in
the safetensors metadata, under the key ``rnnviz``::

    {"format_version": 2, "config": RunConfig.to_json(), "vocab": [...],
     "trainer_meta": {...}, "created": "2025-...Z", "corpus": {"name", "chars", "sha1"},
     "model_keys": [...], "trainer_keys": [...],
     "task": {"name", "inputs": [...], "outputs": [...]}}

``task`` is there for a model trained on one of core.tasks' applications: its name and the
tokens its input ids and outputs mean (the model's sizes follow from them). A file without
it is a language model (every file written before tasks existed).

and next to it, under ``rnnviz_checksum``, ``"sha256:<64 hex digits>"``: SHA-256 over that JSON
text exactly as stored and every tensor's name, dtype, shape and bytes in name order
(:func:`content_digest`; independent of how safetensors lays the file out). Format 2 files must
carry it and it is verified on load: any change to a stored byte is found (even one that leaves
a number's value as it was, such as the unneeded 17th digit of a float). Format 1 files,
written before there was a checksum, still load, unverified, through every other check.

Files are written atomically (:func:`rnnviz.core.atomic.atomic_write_bytes`). Loading reads
nothing it has not checked, and allocates nothing for tensors before every check but the last:

1. the path is a regular file (``os.stat``; opened with ``O_NONBLOCK`` so a FIFO cannot block,
   then ``fstat`` again) of at most ``max_bytes``, by default :data:`MAX_CHECKPOINT_BYTES`:
   the largest checkpoint this app can write (an LSTM of hidden size 8192 over a vocabulary of
   65,536, with Adam's state and a carried state at batch 65,536: about 39.7 GB);
2. the 8-byte header length and the JSON header (at most :data:`MAX_HEADER_BYTES`, nested at
   most :data:`MAX_JSON_DEPTH` deep, no duplicate keys); a pickle (any protocol) or a zip
   archive (``torch.save``) is named as such;
3. the tensor table: float32 only, shapes and offsets consistent and covering the data exactly;
4. the rnnviz metadata against the schema (:func:`_validate_meta`: types, ranges, required
   keys; the first violation is the message), the configuration and vocabulary;
5. every declared tensor against the shape the declared configuration and vocabulary imply
   (from a model built on PyTorch's ``meta`` device, which allocates nothing);
6. then the file is read whole (after a check that about twice its size is free in memory),
   the checksum verified, and every tensor checked to be finite.

Every refusal is a :class:`CheckpointError` with a one-line message shown to the user as is.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
import pickletools
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from rnnviz.core.atomic import OutputPathError, atomic_write_bytes, file_kind
from rnnviz.core.config import (
    BATCH_RANGE,
    HIDDEN_RANGE,
    LANGUAGE_MODEL,
    LR_RANGE,
    TASKS,
    THETA_RANGE,
    VOCAB_SIZE_RANGE,
    ConfigError,
    RunConfig,
)
from rnnviz.core.model import CharModel, build_model

if TYPE_CHECKING:
    from rnnviz.core.corpus import Corpus
    from rnnviz.core.runs import Run
    from rnnviz.core.tasks import Task
    from rnnviz.core.trainer import Trainer
    from rnnviz.core.vocab import Vocab

FORMAT_VERSION = 2
META_KEY = "rnnviz"
MODEL_PREFIX = "model."
TRAINER_PREFIX = "trainer."
CHECKSUM_KEY = "rnnviz_checksum"
CHECKSUM_PREFIX = "sha256:"
# ours is a few KB plus the vocabulary (at most 65,536 characters, ~12 bytes each escaped)
MAX_HEADER_BYTES = 16 * 2**20
# ours nest 4 deep (trainer_meta.optimizer_scalars.<index>.<key>)
MAX_JSON_DEPTH = 32
MAX_TENSORS = 1024
_MAX_INT = 2**63 - 1
# trainer_meta.wall_s, seconds of training: a bound no real run reaches (about 3,000 years)
_MAX_WALL_S = 1e11


def _largest_checkpoint_bytes() -> int:
    # the LSTM is the largest kind (a test checks this formula against build_model on "meta")
    V, H, B = VOCAB_SIZE_RANGE[1], HIDDEN_RANGE[1], BATCH_RANGE[1]
    params = 4 * H * (V + H) + 8 * H + H * V + V
    adam = 2 * params + 6  # exp_avg, exp_avg_sq, and one step scalar per parameter tensor
    carried = 2 * B * H  # h and c
    return 4 * (params + adam + carried) + 8 + MAX_HEADER_BYTES


MAX_CHECKPOINT_BYTES = _largest_checkpoint_bytes()

# the file's first bytes searched for a pickle's opcodes (pickletools disassembles, never runs)
_PICKLE_SNIFF_BYTES = 65536
_DTYPE = "F32"
_ITEMSIZE = 4
_OPTIMIZER_KEYS = {"sgd": {"momentum_buffer"}, "adam": {"step", "exp_avg", "exp_avg_sq"}}
_CARRIED = ("carried.h", "carried.c")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# a JSON string (possessive: no backtracking on a long unterminated one)
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)


class CheckpointError(ValueError):
    """The file is not a usable rnnviz checkpoint; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    path: str
    config: RunConfig
    vocab: Vocab
    params: dict[str, Tensor]  # the model's state_dict (names without "model.")
    trainer_tensors: dict[str, Tensor]  # names without "trainer."
    trainer_meta: dict[str, Any]
    format_version: int = FORMAT_VERSION
    created: str = ""
    corpus: dict[str, Any] = field(default_factory=dict)
    # the task the model was trained on (core.tasks) and the tokens of its inputs and
    # outputs; "lm" and () for a language model
    task: str = LANGUAGE_MODEL
    task_inputs: tuple[str, ...] = ()
    task_outputs: tuple[str, ...] = ()

    @property
    def step(self) -> int:
        return int(self.trainer_meta.get("step", 0))

    def task_object(self) -> Task:
        """The task as this checkpoint's model reads and writes it (CheckpointError for a
        language model, or when the task cannot be built here)."""
        return _task_of(self.task, self.task_inputs, self.task_outputs, self.path)


def _task_of(name: str, inputs: tuple[str, ...], outputs: tuple[str, ...], path: str) -> Task:
    from rnnviz.core.tasks import TaskUnavailable, get_task
    from rnnviz.core.tasks.run import with_tokens

    if name == LANGUAGE_MODEL:
        raise CheckpointError(f"{path} is a language model, not a task's model")
    try:
        return with_tokens(get_task(name), inputs, outputs)
    except (TaskUnavailable, ConfigError) as exc:
        raise CheckpointError(f"{path}: the {name} task cannot be read here: {exc}") from None


def task_vocab(task: Task) -> Vocab:
    """The one-character input tokens of ``task`` as a Vocab (the checkpoint's "vocab"):
    id i of the Vocab is the task's input id i (its padding is the Vocab's <unk>)."""
    from rnnviz.core.vocab import Vocab

    return Vocab((Vocab.UNK, *(t for t in task.input_tokens[1:] if len(t) == 1)))


def corpus_digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _cpu_copy(t: Tensor) -> Tensor:
    # safetensors wants contiguous tensors that share no storage
    return t.detach().to("cpu").contiguous().clone()


# ---------------------------------------------------------------- checksum


def content_digest(meta_text: str, tensors: dict[str, Tensor]) -> str:
    """SHA-256 (hex) of the metadata's JSON text as stored and of every tensor, in name order."""
    h = hashlib.sha256()

    def put(part: bytes | memoryview) -> None:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)

    put(b"rnnviz checkpoint content, format 2")
    put(meta_text.encode("utf-8", "surrogatepass"))
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        put(json.dumps([key, str(t.dtype), list(t.shape)]).encode())
        put(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def encode_checkpoint(tensors: dict[str, Tensor], meta: dict[str, Any]) -> bytes:
    """The file's bytes: ``tensors`` (on the CPU) and ``meta``, with their checksum."""
    text = json.dumps(meta)
    checksum = CHECKSUM_PREFIX + content_digest(text, tensors)
    return st_save(tensors, metadata={META_KEY: text, CHECKSUM_KEY: checksum})


def checkpoint_bytes(
    *,
    config: RunConfig,
    vocab: Vocab,
    model: CharModel,
    trainer: Trainer | None = None,
    corpus: Corpus | None = None,
    task: Task | None = None,
) -> bytes:
    """The bytes :func:`save_checkpoint` writes (for tests and in-memory copies); ``task``:
    the application the model was trained on (None: the language model)."""
    tensors: dict[str, Tensor] = {
        MODEL_PREFIX + k: _cpu_copy(v) for k, v in model.state_dict().items()
    }
    trainer_meta: dict[str, Any] = {}
    trainer_keys: list[str] = []
    if trainer is not None:
        t_tensors, trainer_meta = trainer.state_dict()
        if task is not None:
            # a task's batch never starts from the state the one before ended in
            # (TaskBatches.continues_state), so that state is no part of the run
            t_tensors = {k: v for k, v in t_tensors.items() if k not in _CARRIED}
        for k, v in t_tensors.items():
            tensors[TRAINER_PREFIX + k] = _cpu_copy(v)
        trainer_keys = sorted(t_tensors)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "config": config.to_json(),
        "vocab": vocab.to_json(),
        "trainer_meta": trainer_meta,
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model_keys": sorted(model.state_dict()),
        "trainer_keys": trainer_keys,
    }
    if corpus is not None:
        meta["corpus"] = {
            "name": corpus.name,
            "chars": len(corpus.text),
            "sha1": corpus_digest(corpus.text),
        }
    if task is not None:
        meta["task"] = {
            "name": task.name,
            "inputs": list(task.input_tokens),
            "outputs": list(task.output_tokens),
        }
    return encode_checkpoint(tensors, meta)


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    config: RunConfig,
    vocab: Vocab,
    model: CharModel,
    trainer: Trainer | None = None,
    corpus: Corpus | None = None,
    task: Task | None = None,
) -> None:
    """Write one ``.safetensors`` checkpoint atomically (see :func:`atomic_write_bytes`).

    A symlink is followed and its target replaced; a folder, device or FIFO at ``path`` is
    refused. Any failure is a :class:`CheckpointError`, and the file at ``path`` is as it was.
    """
    data = checkpoint_bytes(
        config=config, vocab=vocab, model=model, trainer=trainer, corpus=corpus, task=task
    )
    _write(path, data)


def _write(path: str | os.PathLike[str], data: bytes) -> None:
    try:
        atomic_write_bytes(path, data)
    except OutputPathError as exc:
        raise CheckpointError(f"cannot write checkpoint: {exc}") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc


def run_checkpoint_bytes(run: Run) -> bytes:
    """The checkpoint of a whole run (config, vocab, model, trainer, corpus digest)."""
    return checkpoint_bytes(
        config=run.config,
        vocab=run.vocab,
        model=run.model,
        trainer=run.trainer,
        corpus=run.corpus,
    )


def save_run(path: str | os.PathLike[str], run: Run) -> None:
    """:func:`save_checkpoint` of a whole run: :func:`run_checkpoint_bytes`, atomically."""
    _write(path, run_checkpoint_bytes(run))


# ---------------------------------------------------------------- reading, step by step


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:,} bytes"


def _open_regular(
    path: str | os.PathLike[str], name: str, max_bytes: int, what: str = "checkpoint"
) -> tuple[BinaryIO, int]:
    """The open file and its size, once it is known to be a regular file within the cap.

    ``what`` names the kind of file in the messages (the session file reads through this too).
    """

    def refuse_kind(mode: int) -> CheckpointError:
        if stat.S_ISDIR(mode):
            return CheckpointError(f"{name} is a folder, not a {what} file")
        return CheckpointError(
            f"{name} is {file_kind(mode)}, not a {what} file (a {what} is a regular file)"
        )

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CheckpointError(f"no such {what}: {name}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    # decided before opening: opening a device or FIFO can block or have side effects
    if not stat.S_ISREG(st.st_mode):
        raise refuse_kind(st.st_mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    fh = os.fdopen(fd, "rb")
    st = os.fstat(fd)  # the file opened, which may have been swapped since the stat
    if not stat.S_ISREG(st.st_mode):
        fh.close()
        raise refuse_kind(st.st_mode)
    if st.st_size > max_bytes:
        fh.close()
        raise CheckpointError(
            f"{name} is {_size(st.st_size)}; the largest {what} rnnviz writes is "
            f"{_size(max_bytes)}, so this is not one"
        )
    return fh, st.st_size


def _pickle_protocol(data: bytes) -> int | None:
    """The protocol of the pickle ``data`` starts with, by disassembly; None if it is none."""
    protocol = 0
    ops = 0
    try:
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
            ops += 1
            if opcode.name == "PROTO" and isinstance(arg, int):
                return arg
            protocol = max(protocol, opcode.proto)
            if opcode.name == "STOP":
                return protocol
    except Exception:  # pickletools raises ValueError and others on non-pickles
        # a long pickle cut off by the sniff window: thousands of clean opcodes first
        if len(data) >= _PICKLE_SNIFF_BYTES and ops >= 1000:
            return protocol
        return None
    return None


def _sniff(first: bytes, size: int, name: str) -> int:
    """Check the safetensors framing; returns the header length. Never unpickles anything.

    A safetensors file is an 8-byte little-endian header length, then a JSON header ``{...``.
    """
    n = int.from_bytes(first[:8], "little") if len(first) >= 8 else 0
    if len(first) >= 9 and first[8:9] == b"{" and n >= 2:
        if n > MAX_HEADER_BYTES:
            raise CheckpointError(
                f"{name} is corrupt (its header length field says {n:,} bytes; "
                f"rnnviz headers are at most {MAX_HEADER_BYTES:,})"
            )
        if 8 + n > size:
            raise CheckpointError(
                f"{name} is truncated or corrupt (the header says {n} bytes, "
                f"the file has {size - 8} after the length)"
            )
        return n
    kind = ""
    if first[:1] == b"\x80" and first[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        kind = f"a pickle; pickles are never loaded; this one is protocol {first[1]}"
    elif first[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        kind = "a zip archive, as torch.save writes; it holds a pickle; pickles are never loaded"
    else:
        protocol = _pickle_protocol(first[:_PICKLE_SNIFF_BYTES])
        if protocol is not None:
            kind = f"a pickle; pickles are never loaded; this one is protocol {protocol}"
    if kind:
        raise CheckpointError(f"{name} is not an rnnviz checkpoint (looks like {kind})")
    if size < 10:
        raise CheckpointError(
            f"{name} is not an rnnviz checkpoint (only {size} bytes: empty or truncated)"
        )
    raise CheckpointError(f"{name} is not an rnnviz checkpoint (not a safetensors file)")


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # two readers could disagree on which one counts
            raise _DuplicateKeyError(f"the key {key[:40]!r} appears twice")
        out[key] = value
    return out


def _json_depth(text: str) -> int:
    """How deep ``text``'s brackets nest, outside strings, without parsing it."""
    skeleton = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "replace"), np.uint8)
    step = (
        (skeleton == ord("{")).astype(np.int64)
        + (skeleton == ord("["))
        - (skeleton == ord("}"))
        - (skeleton == ord("]"))
    )
    return int(np.cumsum(step).max()) if step.size else 0


def _parse_json(text: str, what: str, name: str) -> Any:
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise CheckpointError(
            f"{name} is corrupt ({what} is nested {depth:,} deep; the limit is {MAX_JSON_DEPTH})"
        )
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, ...
        raise CheckpointError(f"{name} is corrupt (unreadable {what}: {_one_line(exc)})") from None


def _parse_header(raw: bytes, name: str) -> tuple[dict[str, Any], dict[str, Any], str, object]:
    """The tensor table (name -> entry), the rnnviz metadata, its JSON text and the checksum.

    All still unvalidated; the checksum is None when there is none.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{name} is corrupt (unreadable safetensors header: {_one_line(exc)})"
        ) from None
    header = _parse_json(text, "the safetensors header", name)
    if not isinstance(header, dict):
        raise CheckpointError(f"{name} is corrupt (the safetensors header is not an object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or META_KEY not in metadata:
        raise CheckpointError(
            f"{name} has no rnnviz metadata: it is a safetensors file, but not one rnnviz wrote"
        )
    if not isinstance(metadata[META_KEY], str):
        raise CheckpointError(f"{name} is corrupt (its rnnviz metadata is not a JSON string)")
    meta = _parse_json(metadata[META_KEY], "rnnviz metadata", name)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{name} is corrupt (the rnnviz metadata is not an object)")
    return header, meta, metadata[META_KEY], metadata.get(CHECKSUM_KEY)


# ---------------------------------------------------------------- the schema


class _Violation(Exception):
    """The first place the metadata breaks the schema, as ``<where> <what is wrong>``."""


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit integer"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Violation(f"{where} must be an object, not {_show(value)}")
    return value


def _int(value: Any, where: str, low: int = 0, high: int = _MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Violation(f"{where} must be an integer, not {_show(value)}")
    if not low <= value <= high:
        raise _Violation(f"{where} must be in {low}..{high}, not {_show(value)}")
    return value


def _num(value: Any, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Violation(f"{where} must be a number, not {_show(value)}")
    if not low <= value <= high:  # NaN fails too
        raise _Violation(f"{where} must be in [{low:g}, {high:g}], not {_show(value)}")
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Violation(f"{where} must be true or false, not {_show(value)}")
    return value


def _str(value: Any, where: str, max_len: int = 4096) -> str:
    if not isinstance(value, str):
        raise _Violation(f"{where} must be a string, not {_show(value)}")
    if len(value) > max_len:
        raise _Violation(f"{where} is longer than {max_len:,} characters")
    return value


def _list(value: Any, where: str, max_len: int) -> list[Any]:
    if not isinstance(value, list):
        raise _Violation(f"{where} must be a list, not {_show(value)}")
    if len(value) > max_len:
        raise _Violation(f"{where} has {len(value):,} entries; at most {max_len:,}")
    return value


def _names(value: Any, where: str) -> list[str]:
    names = [_str(v, f"{where}[{i}]", 200) for i, v in enumerate(_list(value, where, MAX_TENSORS))]
    if len(set(names)) != len(names):
        raise _Violation(f"{where} names a tensor twice")
    return names


def _require(obj: dict[str, Any], where: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key not in obj:
            raise _Violation(f"{where} is missing the required key '{key}'")


def _scalar(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int | float):
        return
    _str(value, where, 100)


# trainer_meta: key -> check (the keys Trainer.load_state_dict needs are required)
_TRAINER_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "step": _int,
    "epoch": _int,
    "batch_index": _int,
    "nonfinite_total": _int,
    "nonfinite_in_row": _int,
    "diverged": _bool,
    "lr": lambda v, w: _num(v, w, *LR_RANGE),
    "clip_theta": lambda v, w: _num(v, w, *THETA_RANGE),
    "clip_enabled": _bool,
    "optimizer": lambda v, w: _str(v, w, 16),
    "wall_s": lambda v, w: _num(v, w, 0.0, _MAX_WALL_S),
    # any float: only the spike test's median reads them
    "recent_losses": lambda v, w: [
        _num(x, f"{w}[{i}]") if not (isinstance(x, float) and not math.isfinite(x)) else x
        for i, x in enumerate(_list(v, w, 10**5))
    ],
}
_TRAINER_REQUIRED = ("step", "epoch", "batch_index", "lr", "clip_theta", "clip_enabled")


def _validate_meta(meta: dict[str, Any], checksum: object, name: str) -> int:
    """Check the rnnviz metadata against the schema; returns the format version.

    Unknown keys are allowed (and ignored) at the top level and in ``trainer_meta``; the
    configuration's own keys are checked by :meth:`RunConfig.from_json`.
    """
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"{name} has checkpoint format {_show(version)}; "
            f"this rnnviz reads 1 to {FORMAT_VERSION}"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{name} has checkpoint format {version}, from a newer rnnviz; "
            f"this one reads 1 to {FORMAT_VERSION}"
        )
    try:
        _require(meta, "the rnnviz metadata", ("config", "vocab"))
        config = _obj(meta["config"], "config")
        for section, value in config.items():
            if section not in ("corpus", "model", "train"):
                raise _Violation(f"config has an unknown section {_show(section)}")
            _obj(value, f"config.{section}")
        vocab = _list(meta["vocab"], "vocab", VOCAB_SIZE_RANGE[1])
        if len(vocab) < VOCAB_SIZE_RANGE[0]:
            raise _Violation("vocab is empty")
        for i, token in enumerate(vocab):
            _str(token, f"vocab[{i}]", 5)
        trainer_meta = _obj(meta.get("trainer_meta", {}), "trainer_meta")
        if trainer_meta:
            _require(trainer_meta, "trainer_meta", _TRAINER_REQUIRED)
        for key, check in _TRAINER_FIELDS.items():
            if key in trainer_meta:
                check(trainer_meta[key], f"trainer_meta.{key}")
        scalars = _obj(trainer_meta.get("optimizer_scalars", {}), "trainer_meta.optimizer_scalars")
        for index, entry in scalars.items():
            where = f"trainer_meta.optimizer_scalars.{index[:20]}"
            if not (index.isascii() and index.isdigit() and len(index) <= 6):
                raise _Violation(f"{where}: the key must be a parameter index")
            for key, value in _obj(entry, where).items():
                _scalar(value, f"{where}.{key[:20]}")
        if "created" in meta:
            _str(meta["created"], "created", 64)
        if "corpus" in meta:
            corpus = _obj(meta["corpus"], "corpus")
            _require(corpus, "corpus", ("name", "chars", "sha1"))
            _str(corpus["name"], "corpus.name")
            _int(corpus["chars"], "corpus.chars")
            if not _HEX40.fullmatch(_str(corpus["sha1"], "corpus.sha1", 40)):
                raise _Violation("corpus.sha1 must be 40 hexadecimal digits")
        for key in ("model_keys", "trainer_keys"):
            if key in meta:
                _names(meta[key], key)
        if "task" in meta:
            task = _obj(meta["task"], "task")
            _require(task, "task", ("name", "inputs", "outputs"))
            if _str(task["name"], "task.name", 64) not in TASKS:
                raise _Violation(f"task.name must be one of {', '.join(TASKS)}")
            for key in ("inputs", "outputs"):
                tokens = _list(task[key], f"task.{key}", VOCAB_SIZE_RANGE[1])
                if not tokens:
                    raise _Violation(f"task.{key} is empty")
                for i, token in enumerate(tokens):
                    _str(token, f"task.{key}[{i}]", 32)
        if version >= 2:
            if checksum is None:
                raise _Violation(f"a format {version} file must have {CHECKSUM_KEY}; it has none")
            text = _str(checksum, CHECKSUM_KEY, 100)
            if not (
                text.startswith(CHECKSUM_PREFIX) and _HEX64.fullmatch(text[len(CHECKSUM_PREFIX) :])
            ):
                raise _Violation(f"{CHECKSUM_KEY} must be 'sha256:' and 64 hexadecimal digits")
    except _Violation as exc:
        raise CheckpointError(f"{name}: bad rnnviz metadata: {exc}") from None
    return version


def _tensor_table(header: dict[str, Any], data_len: int, name: str) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, once dtypes, shapes and offsets agree and tile the data exactly."""
    if len(header) > MAX_TENSORS:
        raise CheckpointError(f"{name} is corrupt ({len(header):,} tensors; at most {MAX_TENSORS})")
    shapes: dict[str, tuple[int, ...]] = {}
    spans: list[tuple[int, int, str]] = []
    try:
        for key, entry in header.items():
            where = f"tensor {key[:60]!r}"
            _obj(entry, where)
            if set(entry) != {"dtype", "shape", "data_offsets"}:
                raise _Violation(f"{where} must have exactly dtype, shape and data_offsets")
            if entry["dtype"] != _DTYPE:
                raise _Violation(f"{where} has dtype {_show(entry['dtype'])}; rnnviz stores F32")
            dims = _list(entry["shape"], f"{where} shape", 4)
            shape = tuple(_int(d, f"{where} shape", 0, _MAX_INT) for d in dims)
            offsets = _list(entry["data_offsets"], f"{where} data_offsets", 2)
            if len(offsets) != 2:
                raise _Violation(f"{where} data_offsets must be [begin, end]")
            begin = _int(offsets[0], f"{where} data_offsets")
            end = _int(offsets[1], f"{where} data_offsets")
            if end - begin != math.prod(shape) * _ITEMSIZE:
                raise _Violation(f"{where}: data_offsets do not match its shape {shape}")
            shapes[key] = shape
            spans.append((begin, end, key))
    except _Violation as exc:
        raise CheckpointError(f"{name} is corrupt ({exc})") from None
    position = 0
    for begin, end, key in sorted(spans):
        if begin != position:
            raise CheckpointError(
                f"{name} is corrupt (tensor {key[:60]!r} overlaps or leaves a gap)"
            )
        position = end
    if position > data_len:
        raise CheckpointError(
            f"{name} is truncated (its tensors need {position:,} bytes after the header, "
            f"the file has {data_len:,})"
        )
    if position != data_len:
        raise CheckpointError(
            f"{name} is corrupt ({data_len - position:,} bytes after the last tensor)"
        )
    return shapes


def _model_shapes(
    config: RunConfig, vocab_size: int, task: Task | None = None
) -> list[tuple[str, tuple[int, ...]]]:
    """The model's parameters (names and shapes, in ``parameters()`` order), allocating nothing."""
    with torch.device("meta"):
        model = _build(config, vocab_size, task, 0)
    return [(k, tuple(p.shape)) for k, p in model.named_parameters()]


def _build(config: RunConfig, vocab_size: int, task: Task | None, seed: int) -> CharModel:
    if task is None:
        return build_model(vocab_size, config.model, seed)
    from rnnviz.core.tasks.run import build_task_model

    return build_task_model(task, config.model, seed)


def _check_shapes(
    shapes: dict[str, tuple[int, ...]],
    meta: dict[str, Any],
    config: RunConfig,
    vocab_size: int,
    name: str,
    task: Task | None = None,
) -> None:
    """Every declared tensor has the name and shape the configuration and vocabulary imply."""
    params = _model_shapes(config, vocab_size, task)
    expected = dict(params)
    model = {k[len(MODEL_PREFIX) :]: s for k, s in shapes.items() if k.startswith(MODEL_PREFIX)}
    trainer = {
        k[len(TRAINER_PREFIX) :]: s for k, s in shapes.items() if k.startswith(TRAINER_PREFIX)
    }
    other = sorted(k for k in shapes if not k.startswith((MODEL_PREFIX, TRAINER_PREFIX)))
    missing = [MODEL_PREFIX + k for k in expected if k not in model]
    missing += [TRAINER_PREFIX + k for k in meta.get("trainer_keys", []) if k not in trainer]
    if missing:
        raise CheckpointError(f"{name} is missing tensors: {', '.join(missing)}")
    hidden, batch = config.model.hidden_size, config.train.batch_size
    for key, shape in model.items():
        if key in expected and shape != expected[key]:
            raise CheckpointError(
                f"{name}: tensor {MODEL_PREFIX}{key} has shape {shape}; a {config.model.kind} "
                f"model of hidden size {hidden} over {vocab_size} characters has {expected[key]}"
            )
    optimizer = config.train.optimizer
    unexpected = other + [MODEL_PREFIX + k for k in model if k not in expected]
    for key, shape in trainer.items():
        if key in _CARRIED:
            if key == "carried.c" and (config.model.kind != "lstm" or "carried.h" not in trainer):
                unexpected.append(TRAINER_PREFIX + key)
                continue
            layers = config.model.num_layers * (2 if config.model.bidirectional else 1)
            # one layer, one direction carries (B, H); stacked layers or two directions
            # (L*D, B, H), as the model takes it
            lead = () if layers == 1 else (layers,)
            ok = (
                len(shape) == 2 + len(lead)
                and tuple(shape[: len(lead)]) == lead
                and shape[-1] == hidden
                and 1 <= shape[-2] <= batch
            )
            if key == "carried.c":
                ok = ok and shape == trainer["carried.h"]
            if not ok:
                implied = ", ".join([*(str(n) for n in lead), f"up to {batch}", str(hidden)])
                raise CheckpointError(
                    f"{name}: tensor {TRAINER_PREFIX}{key} has shape {shape}; the configuration "
                    f"implies ({implied})"
                )
            continue
        parts = key.split(".")
        index = int(parts[1]) if len(parts) == 3 and parts[1].isdecimal() else -1
        if (
            parts[0] != "optimizer"
            or not 0 <= index < len(params)
            or parts[2] not in _OPTIMIZER_KEYS[optimizer]
        ):
            unexpected.append(TRAINER_PREFIX + key)
            continue
        want = () if parts[2] == "step" else params[index][1]
        if shape != want:
            raise CheckpointError(
                f"{name}: tensor {TRAINER_PREFIX}{key} has shape {shape}; the model implies {want}"
            )
    if unexpected:
        raise CheckpointError(f"{name} has unexpected tensors: {', '.join(unexpected[:5])}")
    for key, declared in (("model_keys", model), ("trainer_keys", trainer)):
        if key in meta and set(meta[key]) != set(declared):
            raise CheckpointError(f"{name} is corrupt ({key} does not list the tensors it holds)")
    trainer_meta = meta.get("trainer_meta") or {}
    if trainer and not trainer_meta:
        raise CheckpointError(f"{name} is corrupt (trainer tensors without trainer_meta)")
    if trainer_meta.get("optimizer", optimizer) != optimizer:
        raise CheckpointError(
            f"{name}: the trainer state is for {_show(trainer_meta['optimizer'])}, "
            f"the configuration says {optimizer}"
        )


def _check_memory(size: int, name: str) -> None:
    import psutil

    need = 2 * size  # the bytes read, then the tensors made from them
    available = int(psutil.virtual_memory().available)
    if need > available:
        raise CheckpointError(
            f"{name} needs about {_size(need)} of memory to load; {_size(available)} is free"
        )


def load_checkpoint(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_CHECKPOINT_BYTES
) -> Checkpoint:
    """Read and check a checkpoint (see the module doc for the order); never unpickles."""
    name = str(path)
    fh, size = _open_regular(path, name, max_bytes)
    with fh:
        return read_checkpoint(fh, size, name)[0]


def load_checkpoint_bytes(data: bytes, name: str) -> Checkpoint:
    """:func:`load_checkpoint` of a checkpoint's bytes in memory (``name`` for the messages)."""
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{name} is {_size(len(data))}; the largest checkpoint rnnviz writes is "
            f"{_size(MAX_CHECKPOINT_BYTES)}, so this is not one"
        )
    return read_checkpoint(io.BytesIO(data), len(data), name)[0]


def _read_tensors(
    fh: IO[bytes], size: int, head: bytes, shapes: dict[str, tuple[int, ...]], name: str
) -> tuple[bytes, dict[str, Tensor]]:
    """The whole file read again from its start once its header is checked (``head``: the
    bytes of the length and the header as they were checked), and its tensors, which must be
    those ``shapes`` lists; a file changed since, or that safetensors cannot read, is refused."""
    fh.seek(0)
    data = fh.read(size)
    if len(data) != size or data[: len(head)] != head:
        raise CheckpointError(f"{name} changed while it was being read; try again")
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"{name} is corrupt (safetensors: {_one_line(exc)})") from None
    if {k: tuple(v.shape) for k, v in tensors.items()} != shapes:
        raise CheckpointError(f"{name} is corrupt (its tensors are not the ones its header lists)")
    return data, tensors


def _check_finite(tensors: dict[str, Tensor], name: str, refused: str) -> None:
    for key in sorted(tensors):
        bad = int((~torch.isfinite(tensors[key])).sum())
        if bad:
            raise CheckpointError(
                f"{name}: {bad:,} of the {tensors[key].numel():,} values of tensor {key} are "
                f"not finite (NaN or Inf); {refused}"
            )


def read_checkpoint(fh: IO[bytes], size: int, name: str) -> tuple[Checkpoint, bytes]:
    """Steps 2 to 6 of the module doc on an open, seekable stream of ``size`` bytes (a file, a
    zip member); the checkpoint and the bytes it was read from. Step 1's checks of a path
    are the caller's; ``size`` must be one it has bounded."""
    first = fh.read(min(size, _PICKLE_SNIFF_BYTES))
    n = _sniff(first, size, name)
    raw = first[8 : 8 + n] if 8 + n <= len(first) else first[8:] + fh.read(8 + n - len(first))
    header, meta, meta_text, checksum = _parse_header(raw, name)
    version = _validate_meta(meta, checksum, name)
    shapes = _tensor_table(header, size - 8 - n, name)
    try:
        config = RunConfig.from_json(meta["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{name}: bad configuration in checkpoint: {exc}") from None
    from rnnviz.core.vocab import Vocab

    try:
        vocab = Vocab.from_json(meta["vocab"])
    except ValueError as exc:
        raise CheckpointError(f"{name}: bad vocabulary in checkpoint: {exc}") from None
    task_meta = meta.get("task") or {}
    task_name = str(task_meta.get("name", LANGUAGE_MODEL))
    inputs = tuple(task_meta.get("inputs", ()))
    outputs = tuple(task_meta.get("outputs", ()))
    task = None if task_name == LANGUAGE_MODEL else _task_of(task_name, inputs, outputs, name)
    _check_shapes(shapes, meta, config, len(vocab), name, task)
    _check_memory(size, name)
    data, tensors = _read_tensors(fh, size, first[:8] + raw, shapes, name)
    if version >= 2 and CHECKSUM_PREFIX + content_digest(meta_text, tensors) != checksum:
        raise CheckpointError(
            f"{name} is corrupt (checksum mismatch: its bytes are not the ones rnnviz wrote)"
        )
    _check_finite(tensors, name, "a checkpoint with such values is not loaded")
    params = {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    trainer_tensors = {
        k[len(TRAINER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(TRAINER_PREFIX)
    }
    ckpt = Checkpoint(
        path=name,
        config=config,
        vocab=vocab,
        params=params,
        trainer_tensors=trainer_tensors,
        trainer_meta=dict(meta.get("trainer_meta") or {}),
        format_version=version,
        created=str(meta.get("created", "")),
        corpus=dict(meta.get("corpus") or {}),
        task=task_name,
        task_inputs=inputs,
        task_outputs=outputs,
    )
    return ckpt, data


def restore_model(ckpt: Checkpoint, device: str = "cpu") -> CharModel:
    """The model alone (for probe / sample): no corpus needed."""
    task = None if ckpt.task == LANGUAGE_MODEL else ckpt.task_object()
    model = _build(ckpt.config, len(ckpt.vocab), task, ckpt.config.train.seed)
    load_params(model, ckpt.params, ckpt.path)
    model.to(device)
    model.eval()
    return model


def load_params(model: CharModel, params: dict[str, Tensor], name: str = "checkpoint") -> None:
    """Copy ``params`` into ``model`` in place; shape or name mismatches are CheckpointErrors."""
    own = model.state_dict()
    missing = sorted(set(own) - set(params))
    unexpected = sorted(set(params) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{name} does not match the model: missing {missing or 'none'}, "
            f"unexpected {unexpected or 'none'}"
        )
    for k, v in params.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{name}: parameter {k} has shape {tuple(v.shape)}, "
                f"the model needs {tuple(own[k].shape)}"
            )
    with torch.no_grad():
        model.load_state_dict(params, strict=True)


def restore_run(ckpt: Checkpoint, device: str = "cpu") -> Run:
    """The whole run (corpus, batches, model, trainer) such that training resumes exactly.

    The corpus is loaded again from the configuration (the batches are a pure function of the
    seed and the position); if its text is not the one the checkpoint was trained on, the
    resume would not be exact, so that is an error. ``run.initial_params`` is the seeded
    initialisation of the configuration, as when the run was first built.
    """
    from rnnviz.core.runs import build_run

    if ckpt.task != LANGUAGE_MODEL:
        raise CheckpointError(
            f"{ckpt.path} is a model of the {ckpt.task} task; resuming a task's training is "
            "not built yet (probe it with rnnviz probe --checkpoint)"
        )
    config = ckpt.config.replace(train={"device": device})
    run = build_run(config, vocab=ckpt.vocab)
    expected = ckpt.corpus.get("sha1")
    if expected and expected != corpus_digest(run.corpus.text):
        raise CheckpointError(
            f"the corpus {run.corpus.name!r} is not the text {ckpt.path} was trained on "
            f"({ckpt.corpus.get('chars')} characters then, {len(run.corpus.text)} now), "
            "so training cannot resume exactly"
        )
    load_params(run.model, ckpt.params, ckpt.path)
    try:
        run.trainer.load_state_dict(ckpt.trainer_tensors, ckpt.trainer_meta)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt.path}: cannot restore the trainer state: {exc}") from exc
    return run


def restore(ckpt: Checkpoint, device: str = "cpu") -> tuple[CharModel, Trainer, Vocab]:
    """Model + trainer + vocab such that training continues exactly where it stopped."""
    run = restore_run(ckpt, device)
    return run.model, run.trainer, run.vocab

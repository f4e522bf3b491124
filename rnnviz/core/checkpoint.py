"""Checkpoints: one ``.safetensors`` file, never a pickle.

Tensors: the model's ``state_dict`` under ``model.<name>`` and the trainer's tensors (optimizer
state, carried hidden state, ...) under ``trainer.<name>``. Everything else is JSON in the
safetensors metadata, under the key ``rnnviz``::

    {"format_version": 1, "config": RunConfig.to_json(), "vocab": [...],
     "trainer_meta": {...}, "created": "2025-...Z", "corpus": {"name", "chars", "sha1"},
     "model_keys": [...], "trainer_keys": [...]}

Files are written atomically (:func:`rnnviz.core.history.atomic_write_bytes`). Loading checks
the safetensors magic first and refuses pickles, zip archives (``torch.save``) and anything
truncated or corrupt with a :class:`CheckpointError` whose message is shown to the user as is.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from rnnviz.core.config import ConfigError, RunConfig
from rnnviz.core.history import atomic_write_bytes
from rnnviz.core.model import CharModel, build_model

if TYPE_CHECKING:
    from rnnviz.core.corpus import Corpus
    from rnnviz.core.runs import Run
    from rnnviz.core.trainer import Trainer
    from rnnviz.core.vocab import Vocab

FORMAT_VERSION = 1
META_KEY = "rnnviz"
MODEL_PREFIX = "model."
TRAINER_PREFIX = "trainer."
# a safetensors header larger than this is not one we wrote (guards a corrupt length field)
_MAX_HEADER = 100_000_000


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

    @property
    def step(self) -> int:
        return int(self.trainer_meta.get("step", 0))


def corpus_digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _cpu_copy(t: Tensor) -> Tensor:
    # safetensors wants contiguous tensors that share no storage
    return t.detach().to("cpu").contiguous().clone()


def checkpoint_bytes(
    *,
    config: RunConfig,
    vocab: Vocab,
    model: CharModel,
    trainer: Trainer | None = None,
    corpus: Corpus | None = None,
) -> bytes:
    """The bytes :func:`save_checkpoint` writes (for tests and in-memory copies)."""
    tensors: dict[str, Tensor] = {
        MODEL_PREFIX + k: _cpu_copy(v) for k, v in model.state_dict().items()
    }
    trainer_meta: dict[str, Any] = {}
    trainer_keys: list[str] = []
    if trainer is not None:
        t_tensors, trainer_meta = trainer.state_dict()
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
    return st_save(tensors, metadata={META_KEY: json.dumps(meta)})


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    config: RunConfig,
    vocab: Vocab,
    model: CharModel,
    trainer: Trainer | None = None,
    corpus: Corpus | None = None,
) -> None:
    """Write one ``.safetensors`` checkpoint atomically (temp file, fsync, rename)."""
    data = checkpoint_bytes(config=config, vocab=vocab, model=model, trainer=trainer, corpus=corpus)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc


def save_run(path: str | os.PathLike[str], run: Run) -> None:
    """:func:`save_checkpoint` of a whole run (config, vocab, model, trainer, corpus digest)."""
    save_checkpoint(
        path,
        config=run.config,
        vocab=run.vocab,
        model=run.model,
        trainer=run.trainer,
        corpus=run.corpus,
    )


def _sniff(data: bytes, name: str) -> int:
    """Check the safetensors framing; returns the header length. Never unpickles anything.

    A safetensors file is an 8-byte little-endian header length, then a JSON header ``{...``.
    """
    n = int.from_bytes(data[:8], "little") if len(data) >= 8 else 0
    if len(data) >= 9 and data[8:9] == b"{" and 2 <= n <= _MAX_HEADER:
        if 8 + n > len(data):
            raise CheckpointError(
                f"{name} is truncated or corrupt (the header says {n} bytes, "
                f"the file has {len(data) - 8} after the length)"
            )
        return n
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        kind = "a pickle"
    elif data[:4] == b"PK\x03\x04":
        kind = "a zip archive, as torch.save writes; it holds a pickle"
    else:
        kind = ""
    if kind:
        raise CheckpointError(
            f"{name} is not an rnnviz checkpoint (looks like {kind}; pickles are never loaded)"
        )
    if len(data) < 10:
        raise CheckpointError(
            f"{name} is not an rnnviz checkpoint (only {len(data)} bytes: empty or truncated)"
        )
    raise CheckpointError(f"{name} is not an rnnviz checkpoint (not a safetensors file)")


def _parse_header(data: bytes, n: int, name: str) -> dict[str, Any]:
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{name} is corrupt (unreadable safetensors header: {exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{name} is corrupt (the safetensors header is not an object)")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or META_KEY not in metadata:
        raise CheckpointError(
            f"{name} has no rnnviz metadata: it is a safetensors file, but not one rnnviz wrote"
        )
    try:
        meta = json.loads(metadata[META_KEY])
    except (TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{name} is corrupt (unreadable rnnviz metadata: {exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{name} is corrupt (the rnnviz metadata is not an object)")
    # the expected data length: the largest end offset of any tensor
    ends = [
        int(v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    if ends and 8 + n + max(ends) > len(data):
        raise CheckpointError(
            f"{name} is truncated ({len(data)} bytes, the tensors need {8 + n + max(ends)})"
        )
    return meta


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and check a checkpoint; never unpickles (no ``torch.load``, no ``pickle``)."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"no such checkpoint: {name}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{name} is a folder, not a checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {name}: {exc.strerror or exc}") from exc
    n = _sniff(data, name)
    meta = _parse_header(data, n, name)
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CheckpointError(
            f"{name} has checkpoint format {version!r}; this rnnviz reads up to {FORMAT_VERSION}"
        )
    for key in ("config", "vocab"):
        if key not in meta:
            raise CheckpointError(f"{name} is missing '{key}' in its rnnviz metadata")
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"{name} is corrupt (safetensors: {exc})") from exc
    try:
        config = RunConfig.from_json(meta["config"])
    except (ConfigError, AttributeError) as exc:
        raise CheckpointError(f"{name}: bad configuration in checkpoint: {exc}") from exc
    from rnnviz.core.vocab import Vocab

    try:
        vocab = Vocab.from_json(meta["vocab"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: bad vocabulary in checkpoint: {exc}") from exc
    params = {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    trainer_tensors = {
        k[len(TRAINER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(TRAINER_PREFIX)
    }
    model_keys = meta.get("model_keys") or []
    trainer_keys = meta.get("trainer_keys") or []
    missing = [MODEL_PREFIX + k for k in model_keys if k not in params]
    missing += [TRAINER_PREFIX + k for k in trainer_keys if k not in trainer_tensors]
    if not params and not model_keys:
        missing.append("model.* (no model parameters at all)")
    if missing:
        raise CheckpointError(f"{name} is missing tensors: {', '.join(missing)}")
    trainer_meta = meta.get("trainer_meta") or {}
    if not isinstance(trainer_meta, dict):
        raise CheckpointError(f"{name}: bad trainer state in checkpoint")
    return Checkpoint(
        path=name,
        config=config,
        vocab=vocab,
        params=params,
        trainer_tensors=trainer_tensors,
        trainer_meta=trainer_meta,
        format_version=version,
        created=str(meta.get("created", "")),
        corpus=dict(meta.get("corpus") or {}),
    )


def restore_model(ckpt: Checkpoint, device: str = "cpu") -> CharModel:
    """The model alone (for probe / sample): no corpus needed."""
    model = build_model(len(ckpt.vocab), ckpt.config.model, ckpt.config.train.seed)
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

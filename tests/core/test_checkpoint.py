from __future__ import annotations

import json
import math
import os
import pickle
import stat
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save as st_save

from rnnviz.core.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    CheckpointError,
    encode_checkpoint,
    load_checkpoint,
    restore,
    restore_model,
    save_checkpoint,
    save_run,
)
from rnnviz.core.config import RunConfig
from rnnviz.core.runs import build_run

torch.set_num_threads(1)


def tiny_config(**train: object) -> RunConfig:
    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"hidden_size": 8},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )
    return cfg.replace(train=dict(train)) if train else cfg


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    run = build_run(tiny_config())
    run.trainer.train_step()
    path = tmp_path / "ck.safetensors"
    save_run(path, run)
    return path


def test_round_trip_model_config_vocab(saved: Path) -> None:
    ckpt = load_checkpoint(saved)
    run = build_run(tiny_config())
    assert ckpt.config == tiny_config()
    assert ckpt.vocab == run.vocab
    assert ckpt.step == 1
    assert set(ckpt.params) == set(run.model.state_dict())
    model = restore_model(ckpt)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt.params[k])
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp file left


@pytest.mark.parametrize("kind", ["scratch", "fast", "gru", "lstm"])
def test_every_model_kind_round_trips(tmp_path: Path, kind: str) -> None:
    cfg = tiny_config().replace(model={"kind": kind})
    run = build_run(cfg)
    run.trainer.train_step()
    path = tmp_path / f"{kind}.safetensors"
    save_checkpoint(path, config=cfg, vocab=run.vocab, model=run.model, trainer=run.trainer)
    model, trainer, vocab = restore(load_checkpoint(path))
    assert vocab == run.vocab and trainer.step == run.trainer.step
    for (k, a), (_, b) in zip(
        run.model.state_dict().items(), model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("partition", ["random", "sequential"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_is_exact(tmp_path: Path, partition: str, optimizer: str) -> None:
    lr = 1.0 if optimizer == "sgd" else 0.01
    cfg = tiny_config(partition=partition, optimizer=optimizer, lr=lr)
    straight = build_run(cfg)
    losses = [straight.trainer.train_step().loss for _ in range(6)]

    first = build_run(cfg)
    resumed_losses = [first.trainer.train_step().loss for _ in range(3)]
    path = tmp_path / "mid.safetensors"
    save_checkpoint(path, config=cfg, vocab=first.vocab, model=first.model, trainer=first.trainer)
    del first
    model, trainer, _vocab = restore(load_checkpoint(path))
    assert trainer.step == 3
    resumed_losses += [trainer.train_step().loss for _ in range(3)]
    assert resumed_losses == losses  # bit for bit
    for a, b in zip(straight.model.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_refuses_pickles_and_torch_save(tmp_path: Path) -> None:
    p = tmp_path / "evil.safetensors"
    p.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="looks like a pickle; pickles are never loaded"):
        load_checkpoint(p)
    z = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, z)
    assert zipfile.is_zipfile(z)
    with pytest.raises(CheckpointError, match="zip archive.*pickles are never loaded"):
        load_checkpoint(z)


def test_refuses_garbage_truncated_and_missing(saved: Path, tmp_path: Path) -> None:
    data = saved.read_bytes()
    cases = {
        "empty": (b"", "only 0 bytes"),
        "text": (b"hello, this is not a checkpoint at all", "not a safetensors file"),
        "header-cut": (data[:40], "truncated"),
        "tensor-cut": (data[:-3], "truncated"),
    }
    for name, (content, message) in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(content)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(p)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


def test_refuses_foreign_safetensors_and_missing_tensors(saved: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(st_save({"w": torch.zeros(3)}))
    with pytest.raises(CheckpointError, match="no rnnviz metadata"):
        load_checkpoint(foreign)

    n = int.from_bytes(saved.read_bytes()[:8], "little")
    header = json.loads(saved.read_bytes()[8 : 8 + n])
    meta = header["__metadata__"]
    ckpt = load_checkpoint(saved)
    tensors = {"model." + k: v for k, v in ckpt.params.items() if k != "W_hh"}
    tensors.update({"trainer." + k: v.contiguous() for k, v in ckpt.trainer_tensors.items()})
    partial = tmp_path / "partial.safetensors"
    partial.write_bytes(st_save(tensors, metadata=meta))
    with pytest.raises(CheckpointError, match=r"missing tensors: model\.W_hh"):
        load_checkpoint(partial)

    bad_meta = dict(meta)
    bad = json.loads(meta["rnnviz"])
    bad["format_version"] = 99
    bad_meta["rnnviz"] = json.dumps(bad)
    future = tmp_path / "future.safetensors"
    future.write_bytes(st_save({"model." + k: v for k, v in ckpt.params.items()}, bad_meta))
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(future)


def test_corpus_change_is_refused_on_restore(tmp_path: Path) -> None:
    text_file = tmp_path / "c.txt"
    text_file.write_text("the quick brown fox jumps over the lazy dog " * 40)
    cfg = tiny_config().replace(corpus={"source": str(text_file)})
    run = build_run(cfg)
    path = tmp_path / "ck.safetensors"
    save_run(path, run)
    text_file.write_text("the quick brown fox jumps over the lazy cat " * 40)
    with pytest.raises(CheckpointError, match="cannot resume exactly"):
        restore(load_checkpoint(path))
    # the model alone still loads (probe / sample need no corpus)
    restore_model(load_checkpoint(path))


# ---------------------------------------------------------------- hostile files (issue 12)


def _parts(path: Path) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """The tensor data, the safetensors header (tensor table + __metadata__), the rnnviz meta."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return data[8 + n :], header, json.loads(header["__metadata__"]["rnnviz"])


def _file(body: bytes, header: dict[str, Any]) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def _with_meta(saved: Path, change: Callable[[dict[str, Any]], Any]) -> bytes:
    body, header, meta = _parts(saved)
    changed = change(meta)
    header["__metadata__"]["rnnviz"] = changed if isinstance(changed, str) else json.dumps(meta)
    return _file(body, header)


def _with_table(saved: Path, change: Callable[[dict[str, Any]], None]) -> bytes:
    body, header, _meta = _parts(saved)
    change(header)
    return _file(body, header)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = meta
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _first_tensor(table: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = table["model.W_hh"]
    return entry


DEEP = "[" * 100_000 + "]" * 100_000
# the 18 malformed-metadata files of issue 12, and what the refusal names
MALFORMED: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "data_offsets string": (
        lambda s: _with_table(s, lambda t: _first_tensor(t).update(data_offsets="0,256")),
        "data_offsets must be a list",
    ),
    "data_offsets null": (
        lambda s: _with_table(s, lambda t: _first_tensor(t).update(data_offsets=None)),
        "data_offsets must be a list",
    ),
    "data_offsets int": (
        lambda s: _with_table(s, lambda t: _first_tensor(t).update(data_offsets=12)),
        "data_offsets must be a list",
    ),
    "shape strings": (
        lambda s: _with_table(s, lambda t: _first_tensor(t).update(shape=["8", "8"])),
        "shape must be an integer",
    ),
    "dtype F16": (
        lambda s: _with_table(s, lambda t: _first_tensor(t).update(dtype="F16")),
        "rnnviz stores F32",
    ),
    "model_keys 5": (lambda s: _with_meta(s, _set("model_keys", 5)), "model_keys must be a list"),
    "model_keys [null]": (
        lambda s: _with_meta(s, _set("model_keys", [None])),
        r"model_keys\[0\] must be a string",
    ),
    "corpus abc": (lambda s: _with_meta(s, _set("corpus", "abc")), "corpus must be an object"),
    "hidden_size 32.5": (
        lambda s: _with_meta(s, _set("config.model.hidden_size", 32.5)),
        "hidden size must be an integer",
    ),
    "hidden_size true": (
        lambda s: _with_meta(s, _set("config.model.hidden_size", True)),
        "hidden size must be an integer",
    ),
    "seed 2**70": (lambda s: _with_meta(s, _set("config.train.seed", 2**70)), "seed must be in"),
    "metadata nested 100,000 deep": (
        lambda s: _with_meta(s, lambda m: DEEP),
        "nested 100,000 deep",
    ),
    "vocab 5": (lambda s: _with_meta(s, _set("vocab", 5)), "vocab must be a list"),
    "trainer_meta lr NaN": (
        lambda s: _with_meta(s, _set("trainer_meta.lr", math.nan)),
        r"trainer_meta\.lr must be in",
    ),
    "trainer_meta step -1": (
        lambda s: _with_meta(s, _set("trainer_meta.step", -1)),
        r"trainer_meta\.step must be in",
    ),
    "config lr NaN": (lambda s: _with_meta(s, _set("config.train.lr", math.nan)), "lr must be in"),
    "format_version '2'": (
        lambda s: _with_meta(s, _set("format_version", "2")),
        "checkpoint format '2'",
    ),
}


def _rebuilt_deep_header(saved: Path) -> bytes:
    body, header, _meta = _parts(saved)
    raw = json.dumps(header).encode()
    raw = raw[:-1] + b', "deep": ' + DEEP.encode() + b"}"
    return len(raw).to_bytes(8, "little") + raw + body


MALFORMED["header nested 100,000 deep"] = (_rebuilt_deep_header, "nested 100,001 deep")


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_metadata_is_one_line_checkpoint_error(
    saved: Path, tmp_path: Path, case: str
) -> None:
    make, message = MALFORMED[case]
    p = tmp_path / "bad.safetensors"
    p.write_bytes(make(saved))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(p)
    text = str(info.value)
    assert "\n" not in text and len(text) < 300
    assert "checksum" not in text  # the schema caught it, before any tensor was read


def test_special_files_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    sparse = tmp_path / "sparse.safetensors"
    with sparse.open("wb") as fh:
        fh.truncate(4 * 2**30)
    link = tmp_path / "zero.safetensors"
    link.symlink_to("/dev/zero")
    cases = {
        fifo: "FIFO",
        Path("/dev/zero"): "device",
        Path("/dev/urandom"): "device",
        link: "device",
        sparse: "not a safetensors file",
        tmp_path: "folder",
    }
    for path, message in cases.items():
        start = time.perf_counter()
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
        assert time.perf_counter() - start < 1.0, path


def test_size_cap_is_the_largest_model_the_app_allows(saved: Path) -> None:
    from rnnviz.core.config import BATCH_RANGE, HIDDEN_RANGE, VOCAB_SIZE_RANGE, ModelConfig
    from rnnviz.core.model import build_model

    V, H = VOCAB_SIZE_RANGE[1], HIDDEN_RANGE[1]
    sizes = {}
    for kind in ("scratch", "fast", "gru", "lstm"):
        with torch.device("meta"):
            model = build_model(V, ModelConfig(kind=kind, hidden_size=H), 0)
        sizes[kind] = sum(p.numel() for p in model.parameters())
    params = max(sizes.values())
    assert params == sizes["lstm"]
    adam = 2 * params + len(list(model.parameters()))
    largest = 4 * (params + adam + 2 * BATCH_RANGE[1] * H) + 8 + (16 << 20)
    assert largest == MAX_CHECKPOINT_BYTES
    size = saved.stat().st_size
    with pytest.raises(CheckpointError, match="the largest checkpoint rnnviz writes"):
        load_checkpoint(saved, max_bytes=size - 1)
    load_checkpoint(saved, max_bytes=size)


def test_declared_shapes_are_checked_before_anything_is_allocated(
    saved: Path, tmp_path: Path
) -> None:
    import psutil

    body, header, meta = _parts(saved)
    # a consistent header for a 65,536-character, hidden-8192 model: 4.3 GB of tensors
    meta["config"]["model"]["hidden_size"] = 8192
    meta["vocab"] = ["<unk>"] + [chr(0x4E00 + i) for i in range(65535)]
    header["__metadata__"]["rnnviz"] = json.dumps(meta)
    shapes = {"W_xh": [65536, 8192], "W_hh": [8192, 8192], "b_h": [8192]}
    shapes |= {"W_hq": [8192, 65536], "b_q": [65536]}
    offset = 0
    for k in list(header):
        if k.startswith("trainer."):
            del header[k]
    for name, shape in shapes.items():
        size = math.prod(shape) * 4
        header["model." + name] = {
            "dtype": "F32",
            "shape": shape,
            "data_offsets": [offset, offset + size],
        }
        offset += size
    meta["trainer_keys"] = []
    meta["trainer_meta"] = {}
    header["__metadata__"]["rnnviz"] = json.dumps(meta)
    p = tmp_path / "huge.safetensors"
    p.write_bytes(_file(body, header))
    before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(p)
    assert time.perf_counter() - start < 2.0
    assert psutil.Process().memory_info().rss - before < 100 * 2**20

    # vocabulary 100,001 and hidden 8192: the limit, before any model is built
    meta["vocab"] = ["<unk>"] + [chr(0x4E00 + i) for i in range(100_000)]
    header["__metadata__"]["rnnviz"] = json.dumps(meta)
    p.write_bytes(_file(body, header))
    with pytest.raises(CheckpointError, match="vocab has 100,001 entries; at most 65,536"):
        load_checkpoint(p)

    # the real (small) tensors under a configuration that implies other shapes
    p.write_bytes(_with_meta(saved, _set("config.model.hidden_size", 8192)))
    with pytest.raises(CheckpointError, match=r"model\.W_hh has shape \(8, 8\).*\(8192, 8192\)"):
        load_checkpoint(p)


def test_checksum_detects_changed_bytes_and_format_1_still_loads(
    saved: Path, tmp_path: Path
) -> None:
    data = saved.read_bytes()
    p = tmp_path / "flipped.safetensors"
    p.write_bytes(data[:-5] + bytes([data[-5] ^ 0x01]) + data[-4:])
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(p)
    # the 17th significant digit of a float: the same value, but not the bytes written
    body, header, meta = _parts(saved)
    meta_text = header["__metadata__"]["rnnviz"]
    loss = repr(meta["trainer_meta"]["recent_losses"][0])
    assert loss in meta_text
    header["__metadata__"]["rnnviz"] = meta_text.replace(loss, loss + "0")
    p.write_bytes(_file(body, header))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(p)

    body, header, meta = _parts(saved)
    del header["__metadata__"]["rnnviz_checksum"]
    p.write_bytes(_file(body, header))
    with pytest.raises(CheckpointError, match="must have rnnviz_checksum"):
        load_checkpoint(p)
    meta["format_version"] = 1  # written before checksums: loads, unverified
    header["__metadata__"]["rnnviz"] = json.dumps(meta)
    p.write_bytes(_file(body, header))
    old = load_checkpoint(p)
    assert old.format_version == 1
    restore(old)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_tensors_are_refused_by_name(saved: Path, tmp_path: Path, bad: float) -> None:
    ckpt = load_checkpoint(saved)
    _body, _header, meta = _parts(saved)
    tensors = {"model." + k: v.clone() for k, v in ckpt.params.items()}
    tensors |= {"trainer." + k: v.clone() for k, v in ckpt.trainer_tensors.items()}
    tensors["model.W_hq"][1, 2] = bad
    p = tmp_path / "nan.safetensors"
    p.write_bytes(encode_checkpoint(tensors, meta))  # a valid checksum over the bad values
    with pytest.raises(CheckpointError, match=r"1 of the 72 values of tensor model\.W_hq"):
        load_checkpoint(p)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_is_named(tmp_path: Path, protocol: int) -> None:
    p = tmp_path / "model.safetensors"
    p.write_bytes(pickle.dumps({"W_hh": [[0.5] * 8] * 8, "step": 3}, protocol=protocol))
    with pytest.raises(
        CheckpointError,
        match=f"looks like a pickle; pickles are never loaded; this one is protocol {protocol}",
    ):
        load_checkpoint(p)


def test_saving_refuses_special_targets_and_follows_symlinks(saved: Path, tmp_path: Path) -> None:
    run = build_run(tiny_config())
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target, message in ((Path("/dev/full"), "device"), (fifo, "FIFO"), (tmp_path, "folder")):
        with pytest.raises(CheckpointError, match=message):
            save_run(target, run)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    real = tmp_path / "real.safetensors"
    real.write_bytes(b"old")
    link = tmp_path / "link.safetensors"
    link.symlink_to(real.name)
    save_run(link, run)
    assert link.is_symlink() and load_checkpoint(real).step == 0

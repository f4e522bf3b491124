from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from rnnviz.core.checkpoint import (
    CheckpointError,
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

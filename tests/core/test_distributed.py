"""Data-parallel training (core.distributed): 2 gloo processes on CPU train as one process
does on the combined batch, loss, clipping telemetry and parameters alike."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnviz
from rnnviz.cli import main
from rnnviz.core.batches import BatchSource
from rnnviz.core.checkpoint import load_checkpoint, restore_run
from rnnviz.core.config import ConfigError, CorpusConfig, ModelConfig, RunConfig, TrainConfig
from rnnviz.core.distributed import (
    Launch,
    ShardedBatches,
    check_batch_size,
    device_for,
    launch_from_env,
    shard_bounds,
)
from rnnviz.core.session_file import load_session

torch.set_num_threads(1)

ROOT = Path(rnnviz.__file__).resolve().parent.parent
TINY = ["--corpus", "synthetic:repeat", "--hidden", "16", "--num-steps", "8", "--quiet"]
TOL = 1e-5

# ---------------------------------------------------------------------- pieces


def test_shards_cover_every_row_once() -> None:
    for rows in range(1, 12):
        for world in range(1, 5):
            bounds = [shard_bounds(rows, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == rows
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("partition", ["random", "sequential"])
def test_sharded_batches_make_up_the_batch(partition: str) -> None:
    ids = np.random.default_rng(0).integers(0, 9, 5_000)
    cfg = TrainConfig(batch_size=6, num_steps=8, partition=partition, windows_per_epoch=45)
    source = BatchSource(ids, cfg, 0.2)
    shards = [ShardedBatches(source, r, 2) for r in range(2)]
    assert shards[0].steps_per_epoch == source.steps_per_epoch
    for index in range(source.steps_per_epoch):
        X, Y = source.batch(1, index)
        parts = [s.batch(1, index) for s in shards]
        assert torch.equal(torch.cat([p[0] for p in parts]), X)
        assert torch.equal(torch.cat([p[1] for p in parts]), Y)
        assert shards[1].continues_state(index) == source.continues_state(index)
    val = source.val_batches()
    got = [s.val_batches() for s in shards]
    rows = sum(X.shape[0] for X, _ in val)
    assert sum(X.shape[0] for part in got for X, _ in part) == rows
    assert torch.equal(got[0][0][0], val[0][0][:3])


def test_launch_from_env() -> None:
    assert launch_from_env({}) is None
    assert launch_from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    launch = launch_from_env(env)
    assert launch == Launch(rank=3, world_size=4, local_rank=1, local_world_size=2)
    assert not launch.is_main
    with pytest.raises(ConfigError, match="RANK"):
        launch_from_env({"WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="not an integer"):
        launch_from_env({"WORLD_SIZE": "2", "RANK": "x"})
    with pytest.raises(ConfigError, match="do not fit"):
        launch_from_env({"WORLD_SIZE": "2", "RANK": "2"})


def test_device_and_batch_checks() -> None:
    two_here = Launch(rank=1, world_size=2, local_rank=1, local_world_size=2)
    assert device_for(two_here, "cpu") == "cpu"
    assert device_for(two_here, "cuda") == "cuda:1"
    with pytest.raises(ConfigError, match="give the device as cuda"):
        device_for(two_here, "cuda:0")
    with pytest.raises(ConfigError, match="cpu .gloo. or cuda .nccl."):
        device_for(two_here, "mps")
    check_batch_size(two_here, 8)
    with pytest.raises(ConfigError, match="does not divide among the 2 processes"):
        check_batch_size(two_here, 7)


@pytest.mark.parametrize("rank", ["0", "1"])
def test_indivisible_batch_is_one_line_from_rank_0(
    rank: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # refused before any process group is made: nothing waits for a peer here
    env = {"WORLD_SIZE": "2", "RANK": rank, "LOCAL_RANK": rank, "LOCAL_WORLD_SIZE": "2"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["train", *TINY, "--batch-size", "7", "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    if rank == "0":
        assert err.count("\n") == 1 and err.startswith("error: batch size 7 does not divide")
    else:
        assert err == ""


# ---------------------------------------------------------------------- 2 processes vs 1


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`torchrun --nproc-per-node 2 -m rnnviz train ARGS` in ``cwd``."""
    return _torchrun_script(["-m", "rnnviz", "train", *args], cwd)


def _torchrun_script(tail: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # --standalone: a rendezvous on a free localhost port, so parallel runs cannot collide
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR"):
        env.pop(key, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", *tail]
    # a session of its own, so that a hung run's workers die with it
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    ) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"torchrun did not finish in 90 s:\n{err}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


COMPARED = ("loss", "grad_norm_before_clip", "grad_norm_after_clip", "val_ppl")
EXACT = ("step", "epoch", "clipped", "nonfinite", "nonfinite_total", "clip_enabled")

CASES = {
    # the hand-written BPTT; sequential: the carried state crosses batches; clipping engages
    # on some steps, not all; validations in between
    "fast": ["--model", "fast", "--batch-size", "8", "--partition", "sequential",
             "--lr", "5", "--clip", "0.36", "--max-steps", "6", "--val-every", "3"],
    # autograd, fused kernels (grad flow from retain_grad), Adam's state, random windows.
    # Adam moves every weight by about lr whatever the size of its gradient, so a rounding
    # difference in a gradient near 0 moves it by up to ~lr; at lr 0.05 that reached 1e-5
    "lstm": ["--model", "lstm", "--batch-size", "8", "--partition", "random",
             "--optimizer", "adam", "--lr", "0.005", "--clip", "0.135", "--max-steps", "5"],
    # autograd, stacked steps (the total grad flow); the update overflows: non-finite steps,
    # divergence, the last good parameters kept (exit 3)
    "scratch-diverges": ["--model", "scratch", "--activation", "relu", "--batch-size", "4",
                         "--partition", "sequential", "--lr", "9999", "--clip", "0",
                         "--max-steps", "10"],
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_train_as_one_on_the_combined_batch(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*TINY, *CASES[case]]
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    outputs = ["--metrics-out", "m.csv", "--checkpoint-out", "ck.safetensors"]
    outputs += ["--session-out", "s.rnnviz"]
    cwd = os.getcwd()
    os.chdir(one)
    try:
        status = main(["train", *args, *outputs])
    finally:
        os.chdir(cwd)
    capsys.readouterr()
    done = _torchrun([*args, *outputs], two)
    assert status == (3 if case.endswith("diverges") else 0)
    if status == 0:
        assert done.returncode == 0, done.stderr
    else:
        # torchrun exits 1 when a process fails, and reports each one's status
        assert done.returncode == 1, done.stderr
        assert re.search(rf"exitcode\s*:\s*{status}\b", done.stderr), done.stderr
    # rank 0 alone wrote, and said so once
    assert sorted(p.name for p in two.iterdir()) == ["ck.safetensors", "m.csv", "s.rnnviz"]
    assert done.stderr.count("data parallel: 2 processes (gloo)") == 1
    assert done.stderr.count("checkpoint: ck.safetensors") == 1

    rows_one, rows_two = _rows(one / "m.csv"), _rows(two / "m.csv")
    assert len(rows_two) == len(rows_one)
    assert rows_one[0].keys() == rows_two[0].keys()
    params = [k for k in rows_one[0] if k.startswith("grad_norm:")]
    for a, b in zip(rows_one, rows_two, strict=True):
        for key in EXACT:
            assert a[key] == b[key], (key, a["step"])
        for key in (*COMPARED, *params):
            if a[key] in ("", "nan", "inf") or b[key] in ("", "nan", "inf"):
                assert a[key] == b[key], (key, a["step"])
            else:
                assert float(b[key]) == pytest.approx(float(a[key]), rel=TOL, abs=TOL), key
    clipped = [r["clipped"] for r in rows_one]
    if case == "fast":
        assert "1" in clipped and "0" in clipped  # both sides of theta are compared
        assert sum(r["val_ppl"] != "" for r in rows_one) == 2
    if case == "lstm":
        assert "1" in clipped and "0" in clipped
    if case.endswith("diverges"):
        assert any(r["nonfinite"] == "1" for r in rows_one)

    ck_one, ck_two = (
        load_checkpoint(one / "ck.safetensors"),
        load_checkpoint(two / "ck.safetensors"),
    )
    assert ck_two.step == ck_one.step and ck_two.config == ck_one.config
    assert ck_two.params.keys() == ck_one.params.keys()
    for name, value in ck_one.params.items():
        torch.testing.assert_close(ck_two.params[name], value, rtol=TOL, atol=TOL)
    # the carried state of every row (gathered), the optimizer's state
    assert ck_two.trainer_tensors.keys() == ck_one.trainer_tensors.keys()
    for name, value in ck_one.trainer_tensors.items():
        torch.testing.assert_close(ck_two.trainer_tensors[name], value, rtol=TOL, atol=TOL)
    session = load_session(two / "s.rnnviz")  # the session's checkpoint is the same one
    for name, value in ck_one.params.items():
        torch.testing.assert_close(
            session.load_checkpoint().params[name], value, rtol=TOL, atol=TOL
        )
    if status == 0:  # an ordinary checkpoint: one process resumes it (as the window does)
        run = restore_run(ck_two)
        record = run.trainer.train_step()
        assert record.step == ck_one.step + 1 and not record.nonfinite


# ---------------------------------------------------------------------- the core, uneven shares


def _core_configs() -> list[RunConfig]:
    corpus = CorpusConfig(source="synthetic:repeat")
    # random: 15 windows an epoch in batches of 6, 6, 3; the short one splits 2 + 1, and the
    # 9 validation windows 6 + 3 (3 + 3, then 2 + 1); 4 steps cross into the second epoch
    uneven = TrainConfig(
        batch_size=6, num_steps=8, windows_per_epoch=15, val_windows=9, lr=5.0,
        clip_theta=0.36, val_every=2,
    )  # fmt: skip
    streams = dataclasses.replace(uneven, partition="sequential", batch_size=4)
    return [
        RunConfig(corpus, ModelConfig(kind="fast", hidden_size=16), uneven),
        RunConfig(corpus, ModelConfig(kind="gru", hidden_size=16), uneven),
        RunConfig(corpus, ModelConfig(kind="scratch", hidden_size=16), streams),
        # stacked: the carried state is (L, B, H), its rows along dim 1; an epoch longer than
        # the steps, so that a carried state is gathered at the end
        RunConfig(
            corpus,
            ModelConfig(kind="scratch", hidden_size=16, num_layers=2),
            dataclasses.replace(streams, windows_per_epoch=60),
        ),
    ]


def _close(a: object, b: object, what: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), what
        for key in a:
            _close(a[key], b[key], f"{what}.{key}")
    elif isinstance(a, list) and a and not isinstance(a[0], (int, float, list)):
        assert isinstance(b, list) and len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{what}[{i}]")
    elif isinstance(a, list):
        assert isinstance(b, list), what
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=TOL, atol=TOL, err_msg=what)
    elif isinstance(a, float):
        assert isinstance(b, float) and b == pytest.approx(a, rel=TOL, abs=TOL, nan_ok=True), what
    else:
        assert a == b, what


def test_core_data_parallel_matches_one_process_with_uneven_shares(tmp_path: Path) -> None:
    """Grad flow, per-parameter norms, validation and the carried state, with an epoch's
    short last batch split unevenly; the fast, the GRU's and the scratch RNN's paths, one and
    two layers."""
    configs = _core_configs()
    steps = 4
    (tmp_path / "configs.json").write_text(json.dumps([c.to_json() for c in configs]))
    worker = Path(__file__).with_name("dp_worker.py")
    done = _torchrun_script([str(worker), "configs.json", str(steps), "out.json"], tmp_path)
    assert done.returncode == 0, done.stderr
    got = json.loads((tmp_path / "out.json").read_text())
    sys.path.insert(0, str(worker.parent))
    try:
        import dp_worker
    finally:
        sys.path.pop(0)
    for config, result in zip(configs, got, strict=True):
        expected = dp_worker.train(config, steps, None)
        kind = config.model.kind
        clipped = [r["clipped"] for r in expected["records"]]
        assert True in clipped or kind == "gru", kind
        _close(expected, result, kind)


def test_a_setup_failure_on_rank_0_is_said_once_and_stops_both(tmp_path: Path) -> None:
    # only rank 0 checks the output paths: rank 1 must learn of the failure, not wait for it
    done = _torchrun(
        [*TINY, "--batch-size", "8", "--max-steps", "2", "--metrics-out", "no/such/m.csv"],
        tmp_path,
    )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--metrics-out" in errors[0], done.stderr
    # torchrun ends the other process when one exits non-zero: it may not get to say its 2
    assert re.search(r"exitcode\s*:\s*2 \(pid", done.stderr), done.stderr
    assert "rnnviz/cli.py" not in done.stderr  # no traceback of ours (torchrun prints its own)


def test_all_reduce_skips_the_gradients_alike_when_any_process_has_none(tmp_path: Path) -> None:
    """A process whose loss is non-finite skips its backward pass (the autograd models): the
    gradient reduction is then skipped on every process, and the step with it. One process
    in a group of one stands for all of them here: the decision is taken on the reduced
    numbers, the same on every process."""
    import torch.distributed as dist

    from rnnviz.core.distributed import AllReduce

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        reducer = AllReduce(1, torch.device("cpu"))
        params = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2, 2))]
        flow = np.array([0.5, 0.25])
        for p in params:
            p.grad = torch.full_like(p, 2.0)
        loss, tokens, got = reducer.reduce_step(1.5, 8, flow, params)
        assert (loss, tokens) == (1.5, 8)
        np.testing.assert_allclose(got, flow)
        grads = [p.grad for p in params]
        assert all(g is not None and torch.equal(g, torch.full_like(g, 2.0)) for g in grads)
        params[1].grad = None  # this process skipped its backward pass
        reducer.reduce_step(1.5, 8, flow, params)
        assert all(p.grad is None for p in params)
        for p in params:
            p.grad = torch.ones_like(p)
        loss, _, _ = reducer.reduce_step(float("inf"), 8, flow, params)
        assert loss == float("inf") and all(p.grad is None for p in params)
        assert reducer.reduce_sums(12.5, 40) == (12.5, 40)
    finally:
        dist.destroy_process_group()

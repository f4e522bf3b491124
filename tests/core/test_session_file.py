from __future__ import annotations

import errno
import io
import json
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load as st_load_numpy
from safetensors.numpy import save as st_save_numpy

from rnnviz.core import atomic
from rnnviz.core.checkpoint import run_checkpoint_bytes
from rnnviz.core.config import RunConfig
from rnnviz.core.history import MetricHistory
from rnnviz.core.probe import params_to_numpy
from rnnviz.core.runs import Run, build_run
from rnnviz.core.session_file import (
    CHECKPOINT_MEMBER,
    MAX_MANIFEST_BYTES,
    SESSION_MEMBER,
    SNAPSHOTS_MEMBER,
    SessionData,
    SessionError,
    load_session,
    metrics_member,
    save_session,
    session_bytes,
)
from rnnviz.core.snapshots import SnapshotStore

torch.set_num_threads(1)


def tiny_config() -> RunConfig:
    return RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"hidden_size": 8},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )


def trained(
    steps: int, config: RunConfig | None = None
) -> tuple[Run, MetricHistory, SnapshotStore]:
    run = build_run(config or tiny_config())
    history = MetricHistory()
    store = SnapshotStore()
    store.add(0, params_to_numpy(run.model))
    for _ in range(steps):
        history.append([run.trainer.train_step()])
        store.add(run.trainer.step, params_to_numpy(run.model))
    return run, history, store


@pytest.fixture(scope="module")
def data() -> SessionData:
    run, history, store = trained(6)
    fork, fork_history, _ = trained(3, tiny_config().replace(train={"lr": 0.5}))
    del fork
    return SessionData(
        checkpoint=run_checkpoint_bytes(run),
        config=run.config,
        probe_text="the time machine ✓",
        cursor=4,
        view={"timeline_step": 3, "selected_unit": 2, "live": False, "panels": ["a", None]},
        runs=(("main", history), ("lr 0.5", fork_history)),
        snapshots=store,
    )


@pytest.fixture
def saved(tmp_path: Path, data: SessionData) -> Path:
    path = tmp_path / "s.rnnviz"
    save_session(path, data)
    return path


def assert_same_columns(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for c in a:
        assert a[c].dtype == b[c].dtype, c
        np.testing.assert_array_equal(a[c], b[c], err_msg=c)  # NaN == NaN here


def test_round_trip(saved: Path, data: SessionData) -> None:
    again = load_session(saved)
    assert again.checkpoint == data.checkpoint
    assert again.config == data.config
    assert again.probe_text == data.probe_text and again.cursor == 4
    assert again.view == data.view
    assert [label for label, _ in again.runs] == ["main", "lr 0.5"]
    for (_, h0), (_, h1) in zip(data.runs, again.runs, strict=True):
        assert_same_columns(h0.columns(), h1.columns())
    assert len(again.runs[0][1]) == 6 and len(again.runs[1][1]) == 3
    assert np.all(np.isfinite(again.runs[0][1].columns()["wall_s"]))
    assert data.snapshots is not None and again.snapshots is not None
    assert again.snapshots.steps() == data.snapshots.steps() == list(range(7))
    assert again.snapshots.to_arrays()[1] == data.snapshots.to_arrays()[1]
    for s0, s1 in zip(data.snapshots.snapshots(), again.snapshots.snapshots(), strict=True):
        assert set(s0.params) == set(s1.params)
        for name in s0.params:
            assert s1.params[name].dtype == np.float32
            np.testing.assert_array_equal(s0.params[name], s1.params[name])
    ckpt = again.load_checkpoint()
    assert ckpt.step == 6
    # the newest snapshot is the checkpoint's model
    for name, tensor in ckpt.params.items():
        np.testing.assert_array_equal(again.snapshots.snapshots()[-1].params[name], tensor.numpy())


def test_same_session_same_bytes(data: SessionData) -> None:
    assert session_bytes(data) == session_bytes(data)


def test_members_are_the_documented_ones(saved: Path) -> None:
    with zipfile.ZipFile(saved) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read(SESSION_MEMBER))
    assert names == [SESSION_MEMBER, CHECKPOINT_MEMBER, "metrics/0.csv", "metrics/1.csv",
                     SNAPSHOTS_MEMBER]  # fmt: skip
    assert manifest["format"] == "rnnviz-session" and manifest["format_version"] == 1
    assert manifest["runs"] == [{"label": "main"}, {"label": "lr 0.5"}]


def test_without_a_snapshot_store(tmp_path: Path, data: SessionData) -> None:
    path = tmp_path / "n.rnnviz"
    save_session(path, SessionData(**{**_fields(data), "snapshots": None}))
    assert load_session(path).snapshots is None
    with zipfile.ZipFile(path) as zf:
        assert SNAPSHOTS_MEMBER not in zf.namelist()


def _fields(data: SessionData) -> dict[str, Any]:
    return {
        "checkpoint": data.checkpoint,
        "config": data.config,
        "probe_text": data.probe_text,
        "cursor": data.cursor,
        "view": data.view,
        "runs": data.runs,
        "snapshots": data.snapshots,
    }


# ---------------------------------------------------------------- refusals


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rezip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)


def refused(path: Path, pattern: str) -> str:
    with pytest.raises(SessionError, match=pattern) as info:
        load_session(path)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_not_a_zip(tmp_path: Path, saved: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a session\n" * 20)
    refused(text, "not an rnnviz session .*not a zip archive")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    refused(empty, "is empty")
    # a checkpoint is named as one
    ck = tmp_path / "ck.safetensors"
    ck.write_bytes(members_of(saved)[CHECKPOINT_MEMBER])
    refused(ck, "safetensors file, such as a checkpoint")


def test_an_extra_member(tmp_path: Path, saved: Path) -> None:
    members = members_of(saved)
    rezip(saved, {**members, "notes.txt": b"hi"})
    refused(saved, "unexpected member 'notes.txt'")
    # a name a session may have, but not this one (no third run in session.json)
    rezip(saved, {**members, metrics_member(2): members[metrics_member(0)]})
    refused(saved, "unexpected member 'metrics/2.csv'")


def test_a_missing_member(saved: Path) -> None:
    members = members_of(saved)
    del members[metrics_member(1)]
    rezip(saved, members)
    refused(saved, "member metrics/1.csv is missing")


def test_a_pickle_member(tmp_path: Path, saved: Path) -> None:
    rezip(saved, {**members_of(saved), "archive/data.pkl": b"\x80\x04K\x01."})
    refused(saved, "pickle.*never loaded")
    # torch.save's own zip
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, path)
    refused(path, "pickle.*never loaded")


def test_a_truncated_file(saved: Path) -> None:
    whole = saved.read_bytes()
    for cut in (len(whole) // 2, len(whole) - 10, 100):
        saved.write_bytes(whole[:cut])
        refused(saved, "a zip archive without its directory at the end: truncated")
    # the end record kept, a middle cut out: the directory points at the wrong bytes
    saved.write_bytes(whole[:1000] + whole[-400:])
    refused(saved, r"is truncated or corrupt \(its zip directory points outside the file\)")


def test_a_zip_bomb_member_is_not_inflated(saved: Path) -> None:
    members = members_of(saved)
    # 8 MiB of spaces deflate to a few KB; the manifest's cap is 4 MiB
    bomb = members[SESSION_MEMBER][:-1] + b" " * (2 * MAX_MANIFEST_BYTES) + b"}"
    rezip(saved, {**members, SESSION_MEMBER: bomb})
    assert saved.stat().st_size < 100_000
    refused(saved, "session.json would unpack to 8.4 MB; at most 4.2 MB is read")


def test_a_member_longer_than_its_entry_says(saved: Path) -> None:
    members = members_of(saved)
    big = members[metrics_member(1)] + b"\n" * 50_000
    rezip(saved, {**members, metrics_member(1): big})
    raw = bytearray(saved.read_bytes())
    # the member's uncompressed size, in its local header (8 bytes before its name) and its
    # directory entry (22 before): claim the original length, as a bomb that lies would
    name = metrics_member(1).encode()
    real, claimed = len(big).to_bytes(4, "little"), len(members[metrics_member(1)])
    patched = 0
    at = raw.find(name)
    while at > 0:
        for offset in (-8, -22):
            if raw[at + offset : at + offset + 4] == real:
                raw[at + offset : at + offset + 4] = claimed.to_bytes(4, "little")
                patched += 1
        at = raw.find(name, at + 1)
    assert patched == 2
    saved.write_bytes(bytes(raw))
    refused(saved, r"is truncated or corrupt \(Bad CRC-32 for file .metrics/1.csv.\)")


def test_a_folder_and_a_fifo(tmp_path: Path) -> None:
    refused(tmp_path, "is a folder, not a session file")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    refused(fifo, "FIFO")  # and it does not block
    refused(tmp_path / "missing.rnnviz", "no such session")


def _with_snapshots(saved: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    members = members_of(saved)
    arrays = dict(st_load_numpy(members[SNAPSHOTS_MEMBER]))
    change(arrays)
    rezip(saved, {**members, SNAPSHOTS_MEMBER: st_save_numpy(arrays)})


def test_a_snapshot_of_the_wrong_shape(saved: Path) -> None:
    def grow(arrays: dict[str, np.ndarray]) -> None:
        arrays["3/W_hh"] = np.zeros((9, 9), np.float32)

    _with_snapshots(saved, grow)
    refused(saved, r"array '3/W_hh' has shape \[9, 9\]; the model's is \(8, 8\)")


def test_a_snapshot_of_another_dtype_or_name(saved: Path) -> None:
    whole = saved.read_bytes()

    def as_float64(arrays: dict[str, np.ndarray]) -> None:
        arrays["3/W_hh"] = arrays["3/W_hh"].astype(np.float64)

    _with_snapshots(saved, as_float64)
    refused(saved, "'3/W_hh' is not float32")
    saved.write_bytes(whole)

    def rename(arrays: dict[str, np.ndarray]) -> None:
        arrays["3/W_extra"] = arrays.pop("3/W_hh")

    _with_snapshots(saved, rename)
    refused(saved, "array '3/W_extra'")


def test_nan_in_a_snapshot(saved: Path) -> None:
    def poison(arrays: dict[str, np.ndarray]) -> None:
        a = arrays["5/W_hh"].copy()
        a[1, 2] = math.nan
        arrays["5/W_hh"] = a

    _with_snapshots(saved, poison)
    refused(saved, r"1 of the 64 values of array '5/W_hh' are not finite")


def test_bad_manifests(saved: Path) -> None:
    members = members_of(saved)
    manifest = json.loads(members[SESSION_MEMBER])

    def write(text: str) -> None:
        rezip(saved, {**members, SESSION_MEMBER: text.encode()})

    write(json.dumps({**manifest, "cursor": -1}))
    refused(saved, "cursor must be in 0..")
    write(json.dumps({**manifest, "format_version": 7}))
    refused(saved, "session format 7, from a newer rnnviz")
    write(json.dumps({**manifest, "view": [1, 2]}))
    refused(saved, "view must be an object")
    write(json.dumps(manifest)[:-1] + ', "cursor": 3}')
    refused(saved, "appears twice")
    deep: Any = 1
    for _ in range(19):
        deep = [deep]
    write(json.dumps({**manifest, "view": {"a": deep}}))
    refused(saved, "view is nested more than 16 deep")
    manifest["config"]["model"]["hidden_size"] = 9
    write(json.dumps(manifest))
    refused(saved, r"the configuration's model \(fast, hidden 9\) is not the checkpoint's")


def test_a_damaged_checkpoint_is_refused_by_the_checkpoint_checks(saved: Path) -> None:
    members = members_of(saved)
    ck = bytearray(members[CHECKPOINT_MEMBER])
    ck[-3] ^= 0x01  # a bit of a tensor
    rezip(saved, {**members, CHECKPOINT_MEMBER: bytes(ck)})
    refused(saved, r"\[checkpoint.safetensors\] is corrupt \(checksum mismatch")


def test_a_metrics_member_that_is_not_a_history(saved: Path) -> None:
    members = members_of(saved)
    rezip(saved, {**members, metrics_member(0): b"step,loss\n1,2.0\n"})
    refused(saved, r"metrics/0.csv\] has no column 'epoch'")
    text = members[metrics_member(0)].decode().replace("\n2,", "\nx,", 1)
    rezip(saved, {**members, metrics_member(0): text.encode()})
    refused(saved, r"metrics/0.csv\]:3: column step: 'x' is not a value")


# ---------------------------------------------------------------- writing


def test_saving_refuses_what_could_not_be_read(tmp_path: Path, data: SessionData) -> None:
    path = tmp_path / "s.rnnviz"
    fields = _fields(data)
    with pytest.raises(SessionError, match="view state is not plain JSON"):
        save_session(path, SessionData(**{**fields, "view": {"unit": (1, 2)}}))
    with pytest.raises(SessionError, match="view state is not plain JSON"):
        save_session(path, SessionData(**{**fields, "view": {"x": math.nan}}))
    store = SnapshotStore()
    assert data.snapshots is not None
    params = dict(data.snapshots.snapshots()[0].params)
    params["W_hh"] = np.full((8, 8), np.inf, np.float32)
    store.add(0, params)
    with pytest.raises(SessionError, match="not finite"):
        save_session(path, SessionData(**{**fields, "snapshots": store}))
    wrong = SnapshotStore()
    wrong.add(0, {**params, "W_hh": np.zeros((3, 3), np.float32)})
    with pytest.raises(SessionError, match=r"shape \(3, 3\)"):
        save_session(path, SessionData(**{**fields, "snapshots": wrong}))
    with pytest.raises(SessionError, match="lone surrogate"):
        save_session(path, SessionData(**{**fields, "probe_text": "a\ud800b"}))
    assert not path.exists()


def test_output_path_checked_before_any_work(tmp_path: Path, data: SessionData) -> None:
    calls: list[int] = []

    class Spy(SessionData):
        def load_checkpoint(self) -> Any:
            calls.append(1)
            return super().load_checkpoint()

    spy = Spy(**_fields(data))
    for bad in (tmp_path, tmp_path / "missing" / "s.rnnviz", Path("/dev/full")):
        with pytest.raises(SessionError, match="cannot write the session"):
            save_session(bad, spy)
    assert calls == []


def test_a_failed_write_leaves_no_temp_file(
    tmp_path: Path, data: SessionData, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.rnnviz"
    path.write_bytes(b"the old file")
    real = atomic._write_all

    def fail_halfway(fd: int, payload: bytes | memoryview) -> None:
        real(fd, payload[: len(payload) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_all", fail_halfway)
    with pytest.raises(SessionError, match="No space left on device"):
        save_session(path, data)
    assert path.read_bytes() == b"the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.rnnviz"]


def test_stored_members_read_as_well(saved: Path, data: SessionData) -> None:
    rezip(saved, members_of(saved), zipfile.ZIP_STORED)
    again = load_session(saved)
    assert again.checkpoint == data.checkpoint


def test_a_zip_directory_of_many_members_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(200):
            zf.writestr(f"m{i}", b"")
    path.write_bytes(buf.getvalue())
    refused(path, "lists 200 members")


def test_a_replaced_checkpoint_is_parsed_again(saved: Path) -> None:
    import dataclasses

    loaded = load_session(saved)
    assert loaded.load_checkpoint().step == 6
    run, _, _ = trained(2)
    other = dataclasses.replace(loaded, checkpoint=run_checkpoint_bytes(run))
    assert other.load_checkpoint().step == 2
    with pytest.raises(SessionError, match="not an rnnviz checkpoint"):
        dataclasses.replace(loaded, checkpoint=b"junk" * 10).load_checkpoint()

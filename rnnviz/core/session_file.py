"""A session file: the model, every run's metrics, the timeline and the view, in one file.

One zip archive (each member stored or deflated) of JSON, CSV and safetensors; never a pickle::

    session.json            {"format": "rnnviz-session", "format_version": 1,
                             "config": RunConfig.to_json(), "probe_text": "...", "cursor": 0,
                             "view": {...}, "runs": [{"label": "main"}, ...],
                             "snapshots": null | the SnapshotStore's meta}
    checkpoint.safetensors  the main run's checkpoint, byte for byte as core.checkpoint writes it
    metrics/<i>.csv         run i's MetricHistory as MetricHistory.csv_bytes (exact floats);
                            run 0 is the main run, the others its compare runs
    snapshots.safetensors   the SnapshotStore's arrays ("<step>/<name>"), when there is a store

``view`` is the window's own state (the timeline's step or None for live, the selected unit,
...): a JSON object kept as it is, checked only for its size and depth. The bytes of a session
are a pure function of its contents (fixed member dates): saving the same session twice writes
the same file.

Reading is written for hostile files. Before anything is decompressed: a regular file (no
folder, FIFO or device; :func:`rnnviz.core.checkpoint._open_regular`) of at most
``max_bytes``; a zip directory of a few members and a small size (read from the end record
before :mod:`zipfile` parses it); only the member names above, each once, stored or deflated,
not encrypted, each declaring a size within its own cap. Then every member is read with its
real size counted against that cap (a zip bomb stops at the cap), the JSON checked for depth
and duplicate keys, the checkpoint through every check of :mod:`rnnviz.core.checkpoint` (it
reads the member as a stream: its header is judged before its tensors are inflated), the
metrics against the CSV's columns, and the snapshots as float32 arrays of exactly the
checkpoint's parameter shapes, all finite. Every refusal is a :class:`SessionError` whose
one-line message is shown to the user as it is.
"""

from __future__ import annotations

import errno
import io
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from safetensors.numpy import load as st_load_numpy
from safetensors.numpy import save as st_save_numpy

from rnnviz.core.atomic import OutputPathError, atomic_write_bytes, check_output_path
from rnnviz.core.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    Checkpoint,
    CheckpointError,
    load_checkpoint_bytes,
    read_checkpoint,
)

# The checkpoint's readers, shared so that a session is held to the same rules: a regular file
# within a cap, JSON without duplicate keys or deep nesting, the memory check, the schema's
# type checks and their messages.
from rnnviz.core.checkpoint import _check_memory as check_memory
from rnnviz.core.checkpoint import _int as schema_int
from rnnviz.core.checkpoint import _json_depth as json_depth
from rnnviz.core.checkpoint import _list as schema_list
from rnnviz.core.checkpoint import _obj as schema_obj
from rnnviz.core.checkpoint import _open_regular as open_regular
from rnnviz.core.checkpoint import _parse_json as parse_json
from rnnviz.core.checkpoint import _size as show_size
from rnnviz.core.checkpoint import _str as schema_str
from rnnviz.core.checkpoint import _Violation as Violation
from rnnviz.core.config import ConfigError, RunConfig
from rnnviz.core.history import (
    FIXED_COLUMNS,
    OPTIONAL_COLUMNS,
    PARAM_PREFIX,
    MetricHistory,
    parse_metrics_csv,
)
from rnnviz.core.snapshots import MAX_COUNT, MIN_COUNT, SnapshotStore

FORMAT = "rnnviz-session"
FORMAT_VERSION = 1
SUFFIX = ".rnnviz"  # what the window's file dialogs offer; the reader does not insist on it

SESSION_MEMBER = "session.json"
CHECKPOINT_MEMBER = "checkpoint.safetensors"
SNAPSHOTS_MEMBER = "snapshots.safetensors"
MAIN_LABEL = "main"

# Caps. A session holds one model, so the checkpoint's cap is the checkpoint's. The rest are
# far above what the window makes (a history keeps about 10,000 rows of ~400 bytes; the probe
# panel takes 500 characters; the snapshot store's default cap is 64 MiB).
MAX_RUNS = 64
MAX_LABEL_CHARS = 200
MAX_PROBE_TEXT_CHARS = 100_000
MAX_VIEW_BYTES = 64 * 1024
MAX_VIEW_DEPTH = 16
MAX_MANIFEST_BYTES = 4 * 2**20  # session.json: the probe text escaped, the view, the steps
MAX_HISTORY_ROWS = 50_000
MAX_HISTORY_COLUMNS = 1024
MAX_METRICS_BYTES = 32 * 2**20  # one run's CSV
MAX_SNAPSHOT_BYTES = 4 * 2**30  # the store's arrays; also the largest cap a store may declare
MAX_SNAPSHOT_HEADER_BYTES = 4 * 2**20  # "<step>/<name>" entries: 512 snapshots x a few names
MAX_MEMBERS = 3 + MAX_RUNS
MAX_DIRECTORY_BYTES = 2**20  # the zip's central directory: MAX_MEMBERS entries are ~10 KB
MAX_SESSION_BYTES = (
    MAX_CHECKPOINT_BYTES
    + MAX_SNAPSHOT_BYTES
    + MAX_SNAPSHOT_HEADER_BYTES
    + MAX_RUNS * MAX_METRICS_BYTES
    + MAX_MANIFEST_BYTES
    + MAX_DIRECTORY_BYTES
)
_MAX_STEP = 2**63 - 1

# every member's date: a fixed one, so the same session always has the same bytes
_DATE = (1980, 1, 1, 0, 0, 0)
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
# what a zip read can raise on a damaged file, besides BadZipFile (ValueError: a bad seek or
# a member name that is not UTF-8, among others)
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    struct.error,
    ValueError,
)


class SessionError(ValueError):
    """A session file cannot be read or written; the one-line message says why."""


def metrics_member(index: int) -> str:
    """The member of run ``index``'s metrics (0 is the main run)."""
    return f"metrics/{index}.csv"


@dataclass(frozen=True, eq=False)
class SessionData:
    """Everything a session file holds (``eq=False``: histories and stores compare by what
    they hold, which the tests do column by column)."""

    checkpoint: bytes  # the main run's checkpoint file, as core.checkpoint writes it
    config: RunConfig  # the window's configuration (its model is the checkpoint's)
    probe_text: str
    cursor: int  # the time cursor: a position in probe_text
    view: Mapping[str, Any]  # the window's view state, a JSON object kept as it is
    runs: tuple[tuple[str, MetricHistory], ...]  # (label, history), the main run first
    snapshots: SnapshotStore | None = None  # the main run's timeline
    # (the bytes, the checkpoint load_session parsed from them), so nobody parses them twice;
    # kept with the bytes so that a dataclasses.replace of the checkpoint does not reuse it
    _parsed: tuple[bytes, Checkpoint] | None = field(default=None, repr=False, compare=False)

    def load_checkpoint(self) -> Checkpoint:
        """The checkpoint, checked as :func:`rnnviz.core.checkpoint.load_checkpoint` checks a
        file (restore_model / restore_run take it)."""
        if self._parsed is not None and self._parsed[0] is self.checkpoint:
            return self._parsed[1]
        try:
            return load_checkpoint_bytes(self.checkpoint, "the session's checkpoint")
        except CheckpointError as exc:
            raise SessionError(str(exc)) from None


# ---------------------------------------------------------------- writing


def session_bytes(data: SessionData) -> bytes:
    """The session file's bytes. Checked as a reader would check them, so that every file
    written can be opened: a :class:`SessionError` says what does not fit."""
    ckpt = data.load_checkpoint()
    _check_same_model(data.config, ckpt, "the session")
    manifest = _manifest(data)
    try:
        # ASCII: a lone surrogate in the text is escaped, and then refused by the reader's check
        text = json.dumps(manifest, allow_nan=False)
    except (TypeError, ValueError) as exc:  # a cursor that is a NumPy integer, say
        raise SessionError(f"the session is not plain JSON: {exc}") from None
    _read_manifest(text.encode("utf-8"), "the session")  # the reader's checks, on what we wrote
    members: list[tuple[str, bytes, int]] = [
        (SESSION_MEMBER, text.encode("utf-8"), zipfile.ZIP_DEFLATED),
        # float32 barely compresses, and stored members are read without inflating
        (CHECKPOINT_MEMBER, data.checkpoint, zipfile.ZIP_STORED),
    ]
    for i, (label, history) in enumerate(data.runs):
        columns = history.columns()
        _check_history(list(columns), len(columns["step"]), f"the history of run {label!r}")
        members.append((metrics_member(i), history.csv_bytes(), zipfile.ZIP_DEFLATED))
    if data.snapshots is not None:
        members.append(
            (SNAPSHOTS_MEMBER, _snapshot_bytes(data.snapshots, ckpt), zipfile.ZIP_STORED)
        )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload, compression in members:
            info = zipfile.ZipInfo(name, date_time=_DATE)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            zf.writestr(info, payload)
    return buf.getvalue()


def save_session(path: str | os.PathLike[str], data: SessionData) -> None:
    """Write ``data`` to ``path`` atomically (:func:`rnnviz.core.atomic.atomic_write_bytes`).

    The path is checked before anything is serialised, so a bad one costs nothing; any failure
    is a :class:`SessionError` and leaves the file at ``path`` as it was (and no temp file).
    """
    try:
        check_output_path(path)
    except OutputPathError as exc:
        raise SessionError(f"cannot write the session: {exc}") from None
    payload = session_bytes(data)
    try:
        atomic_write_bytes(path, payload)
    except OutputPathError as exc:
        raise SessionError(f"cannot write the session: {exc}") from None
    except OSError as exc:
        raise SessionError(f"cannot write the session {path}: {exc.strerror or exc}") from None


def _manifest(data: SessionData) -> dict[str, Any]:
    store = data.snapshots
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": data.config.to_json(),
        "probe_text": data.probe_text,
        "cursor": data.cursor,
        "view": _plain_view(data.view),
        "runs": [{"label": label} for label, _ in data.runs],
        "snapshots": None if store is None else store.to_arrays()[1],
    }


def _plain_view(view: Mapping[str, Any]) -> dict[str, Any]:
    """``view`` as the JSON object it will be read back as; refused unless it is one already
    (a tuple would come back a list, a NaN would not be JSON)."""
    try:
        text = json.dumps(view, allow_nan=False)
        again = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SessionError(f"the view state is not plain JSON: {exc}") from None
    if again != view or not isinstance(again, dict):
        raise SessionError(
            "the view state is not plain JSON (an object of str keys, lists, strings, numbers, "
            "true/false and null): it would not read back as it is"
        )
    return again


def _snapshot_bytes(store: SnapshotStore, ckpt: Checkpoint) -> bytes:
    arrays, _meta = store.to_arrays()
    expected = _snapshot_shapes(store.steps(), ckpt)
    problem = _arrays_problem(arrays, expected)
    if problem:
        raise SessionError(f"the snapshot store cannot be saved: {problem}")
    if store.nbytes > MAX_SNAPSHOT_BYTES:
        raise SessionError(
            f"the snapshots take {show_size(store.nbytes)}; a session holds at most "
            f"{show_size(MAX_SNAPSHOT_BYTES)}"
        )
    return st_save_numpy({k: np.ascontiguousarray(a) for k, a in arrays.items()})


# ---------------------------------------------------------------- reading


def load_session(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_SESSION_BYTES
) -> SessionData:
    """Read and check a session file (see the module doc for the order); never unpickles."""
    name = str(path)
    try:
        fh, size = open_regular(path, name, max_bytes, what="session")
    except CheckpointError as exc:
        raise SessionError(str(exc)) from None
    with fh:
        try:
            return _load(fh, size, name)
        except SessionError:
            raise
        except CheckpointError as exc:  # the checkpoint member's, or the memory check's
            raise SessionError(str(exc)) from None
        except _ZIP_ERRORS as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EINVAL:  # a seek before byte 0
                reason = "its zip directory points outside the file"
            else:
                reason = _one_line(exc)
            raise SessionError(f"{name} is truncated or corrupt ({reason})") from None


def _load(fh: BinaryIO, size: int, name: str) -> SessionData:
    _check_directory(fh, size, name)
    fh.seek(0)
    with zipfile.ZipFile(fh) as zf:
        infos = _members(zf, name)
        manifest = _read_manifest(_read(zf, infos[SESSION_MEMBER], MAX_MANIFEST_BYTES, name), name)
        runs_meta: list[dict[str, Any]] = manifest["runs"]
        expected = {SESSION_MEMBER, CHECKPOINT_MEMBER}
        expected |= {metrics_member(i) for i in range(len(runs_meta))}
        if manifest["snapshots"] is not None:
            expected.add(SNAPSHOTS_MEMBER)
        missing = sorted(expected - set(infos))
        if missing:
            raise SessionError(f"{name} is corrupt (the member {missing[0]} is missing)")
        extra = sorted(set(infos) - expected)
        if extra:
            raise SessionError(f"{name} is corrupt (an unexpected member {extra[0]!r})")

        info = infos[CHECKPOINT_MEMBER]
        _declared(info, MAX_CHECKPOINT_BYTES, name)
        with zf.open(info) as member:
            ckpt, checkpoint = read_checkpoint(
                member, info.file_size, f"{name} [{CHECKPOINT_MEMBER}]"
            )
        config = _config(manifest["config"], name)
        _check_same_model(config, ckpt, name)

        runs = []
        for i, meta in enumerate(runs_meta):
            where = f"{name} [{metrics_member(i)}]"
            raw = _read(zf, infos[metrics_member(i)], MAX_METRICS_BYTES, name)
            runs.append((str(meta["label"]), _read_history(raw, where)))

        store = None
        if manifest["snapshots"] is not None:
            store = _read_snapshots(zf, infos[SNAPSHOTS_MEMBER], manifest["snapshots"], ckpt, name)
    return SessionData(
        checkpoint=checkpoint,
        config=config,
        probe_text=manifest["probe_text"],
        cursor=manifest["cursor"],
        view=manifest["view"],
        runs=tuple(runs),
        snapshots=store,
        _parsed=(checkpoint, ckpt),
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_directory(fh: BinaryIO, size: int, name: str) -> None:
    """The zip's end record says how many members and how large a directory there are:
    refuse many or large before :mod:`zipfile` parses (and allocates for) every entry."""
    tail_len = min(size, _EOCD_SIZE + 0xFFFF)  # the record, and a comment of at most 64 KiB
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        raise SessionError(f"{name} is not an rnnviz session ({_what_instead(fh, size)})")
    entries = int.from_bytes(tail[at + 10 : at + 12], "little")
    directory = int.from_bytes(tail[at + 12 : at + 16], "little")
    if entries == 0xFFFF or directory == 0xFFFFFFFF:  # zip64: the real ones are elsewhere
        locator = tail[max(at - 20, 0) : at]
        if len(locator) == 20 and locator[:4] == _ZIP64_LOCATOR:
            fh.seek(int.from_bytes(locator[8:16], "little"))
            record = fh.read(56)
            if len(record) == 56 and record[:4] == _ZIP64_EOCD:
                entries = int.from_bytes(record[32:40], "little")
                directory = int.from_bytes(record[40:48], "little")
    if entries > MAX_MEMBERS or directory > MAX_DIRECTORY_BYTES:
        raise SessionError(
            f"{name} is not an rnnviz session (its zip directory lists {entries:,} members in "
            f"{show_size(directory)}; a session has at most {MAX_MEMBERS})"
        )


def _what_instead(fh: BinaryIO, size: int) -> str:
    """What a file without a zip directory is, for the message."""
    fh.seek(0)
    first = fh.read(16)
    n = int.from_bytes(first[:8], "little") if len(first) >= 8 else 0
    if len(first) >= 9 and first[8:9] == b"{" and 8 + n <= size:
        return "it is a safetensors file, such as a checkpoint: open it as a checkpoint"
    if first[:1] == b"\x80" and first[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "it looks like a pickle; pickles are never loaded"
    if first[:4] == b"PK\x03\x04":
        return "a zip archive without its directory at the end: truncated?"
    return "not a zip archive" + ("; it is empty" if size == 0 else "")


def _members(zf: zipfile.ZipFile, name: str) -> dict[str, zipfile.ZipInfo]:
    """The members by name, once each is known to be one a session can have."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise SessionError(f"{name} is not an rnnviz session ({len(infos):,} members)")
    possible = {SESSION_MEMBER, CHECKPOINT_MEMBER, SNAPSHOTS_MEMBER}
    possible |= {metrics_member(i) for i in range(MAX_RUNS)}
    for info in infos:  # named first, wherever it is: a torch.save zip says what it is
        if info.filename.endswith((".pkl", ".pickle")):
            raise SessionError(
                f"{name} is not an rnnviz session: its member {_shown(info.filename)} is a "
                "pickle (torch.save writes such zips); pickles are never loaded"
            )
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        member = info.filename
        shown = _shown(member)
        if member not in possible:
            raise SessionError(f"{name} is not an rnnviz session (an unexpected member {shown})")
        if member in by_name:
            # two readers could take different ones
            raise SessionError(f"{name} is corrupt (the member {shown} appears twice)")
        if info.flag_bits & 0x1:
            raise SessionError(f"{name}: the member {shown} is encrypted; sessions never are")
        if info.compress_type not in _COMPRESSIONS:
            raise SessionError(
                f"{name}: the member {shown} uses compression method {info.compress_type}; "
                "a session's members are stored or deflated"
            )
        by_name[member] = info
    if SESSION_MEMBER not in by_name:
        raise SessionError(f"{name} is not an rnnviz session (it has no {SESSION_MEMBER})")
    return by_name


def _shown(member: str) -> str:
    return repr(member if len(member) <= 60 else member[:57] + "...")


def _declared(info: zipfile.ZipInfo, cap: int, name: str) -> None:
    if info.file_size > cap:
        raise SessionError(
            f"{name}: the member {info.filename} would unpack to {show_size(info.file_size)}; "
            f"at most {show_size(cap)} is read (a zip bomb, or not a session rnnviz wrote)"
        )


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, name: str) -> bytes:
    """A member whole, its declared and its real size both held to ``cap``."""
    _declared(info, cap, name)
    with zf.open(info) as member:
        data = member.read(cap + 1)  # never more than the cap and one byte, whatever it holds
    if len(data) > cap:  # zipfile stops at the declared size; this holds if it did not
        raise SessionError(
            f"{name}: the member {info.filename} unpacks to more than {show_size(cap)}"
        )
    if len(data) != info.file_size:
        raise SessionError(
            f"{name} is corrupt (the member {info.filename} holds {len(data):,} bytes, "
            f"its entry says {info.file_size:,})"
        )
    return data


def _read_manifest(raw: bytes, name: str) -> dict[str, Any]:
    """session.json, checked against the schema; the first violation is the message."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SessionError(f"{name}: {SESSION_MEMBER} is not UTF-8 ({exc.reason})") from None
    try:
        manifest = parse_json(text, SESSION_MEMBER, name)
    except CheckpointError as exc:
        raise SessionError(str(exc)) from None
    try:
        obj = schema_obj(manifest, SESSION_MEMBER)
        for key in ("format", "format_version"):
            if key not in obj:
                raise Violation(f"{SESSION_MEMBER} has no {key!r}: it is not a session file")
        if obj["format"] != FORMAT:
            raise Violation(f"{SESSION_MEMBER}: format is {str(obj['format'])[:40]!r}")
        version = schema_int(obj["format_version"], "format_version")
        if version != FORMAT_VERSION:
            newer = ", from a newer rnnviz" if version > FORMAT_VERSION else ""
            raise Violation(
                f"session format {version}{newer}; this rnnviz reads format {FORMAT_VERSION}"
            )
        for key in ("config", "probe_text", "cursor", "view", "runs", "snapshots"):
            if key not in obj:
                raise Violation(f"{SESSION_MEMBER} is missing the required key {key!r}")
        schema_obj(obj["config"], "config")
        text_ = schema_str(obj["probe_text"], "probe_text", MAX_PROBE_TEXT_CHARS)
        try:
            text_.encode("utf-8")
        except UnicodeEncodeError:
            raise Violation("probe_text holds a lone surrogate, not text") from None
        schema_int(obj["cursor"], "cursor", 0, MAX_PROBE_TEXT_CHARS)
        view = schema_obj(obj["view"], "view")
        view_text = json.dumps(view)
        if len(view_text) > MAX_VIEW_BYTES:
            raise Violation(f"view is {len(view_text):,} bytes of JSON; at most {MAX_VIEW_BYTES:,}")
        if json_depth(view_text) > MAX_VIEW_DEPTH:
            raise Violation(f"view is nested more than {MAX_VIEW_DEPTH} deep")
        runs = schema_list(obj["runs"], "runs", MAX_RUNS)
        if not runs:
            raise Violation("runs is empty: a session has its main run at least")
        for i, run in enumerate(runs):
            schema_str(
                schema_obj(run, f"runs[{i}]").get("label"), f"runs[{i}].label", MAX_LABEL_CHARS
            )
        if obj["snapshots"] is not None:
            _check_store_meta(schema_obj(obj["snapshots"], "snapshots"))
    except Violation as exc:
        raise SessionError(f"{name}: bad session: {exc}") from None
    return obj


def _check_store_meta(meta: dict[str, Any]) -> None:
    for key in ("cap_bytes", "gap", "old_steps", "recent_steps"):
        if key not in meta:
            raise Violation(f"snapshots is missing the required key {key!r}")
    schema_int(meta["cap_bytes"], "snapshots.cap_bytes", 1, MAX_SNAPSHOT_BYTES)
    schema_int(meta["gap"], "snapshots.gap", 1, _MAX_STEP)
    for key in ("old_steps", "recent_steps"):
        for i, step in enumerate(schema_list(meta[key], f"snapshots.{key}", MAX_COUNT)):
            schema_int(step, f"snapshots.{key}[{i}]", 0, _MAX_STEP)


def _config(raw: dict[str, Any], name: str) -> RunConfig:
    try:
        return RunConfig.from_json(raw)
    except ConfigError as exc:
        raise SessionError(f"{name}: bad configuration in the session: {exc}") from None


def _check_same_model(config: RunConfig, ckpt: Checkpoint, name: str) -> None:
    # the timeline's snapshots and every probe are of the checkpoint's model
    if config.model != ckpt.config.model:
        raise SessionError(
            f"{name}: the configuration's model ({config.model.kind}, hidden "
            f"{config.model.hidden_size}) is not the checkpoint's ({ckpt.config.model.kind}, "
            f"hidden {ckpt.config.model.hidden_size})"
        )


def _check_history(names: Sequence[str], rows: int, where: str) -> None:
    """The columns a metrics CSV of StepRecords has (the panels read them by name)."""
    missing = [c for c in FIXED_COLUMNS if c not in names]
    if missing:
        raise SessionError(f"{where} has no column {missing[0]!r}")
    # val_metric: a task's held-out metric (core.tasks), in its rows only
    known = {*FIXED_COLUMNS, *OPTIONAL_COLUMNS}
    other = [c for c in names if c not in known and not c.startswith(PARAM_PREFIX)]
    if other:
        raise SessionError(f"{where} has an unknown column {other[0][:60]!r}")
    if len(names) > MAX_HISTORY_COLUMNS:
        raise SessionError(f"{where} has {len(names):,} columns; at most {MAX_HISTORY_COLUMNS:,}")
    _check_rows(rows, where)


def _check_rows(rows: int, where: str) -> None:
    if rows > MAX_HISTORY_ROWS:
        raise SessionError(f"{where} has {rows:,} rows; at most {MAX_HISTORY_ROWS:,}")


def _read_history(raw: bytes, where: str) -> MetricHistory:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SessionError(f"{where} is not UTF-8 ({exc.reason})") from None
    # lines bound the rows before any is parsed (a quoted newline only makes fewer rows)
    _check_rows(text.count("\n") - 1, where)
    try:
        columns = parse_metrics_csv(io.StringIO(text, newline=""), where)
    except ValueError as exc:
        raise SessionError(_one_line(exc)) from None
    _check_history(list(columns), len(columns["step"]), where)
    steps = columns["step"]
    if len(steps) and (steps[0] < 0 or np.any(np.diff(steps) <= 0)):
        raise SessionError(f"{where}: the steps are not increasing from 0 or more")
    return MetricHistory.from_columns(columns)


# ---------------------------------------------------------------- the timeline


def _snapshot_shapes(steps: Sequence[int], ckpt: Checkpoint) -> dict[str, tuple[int, ...]]:
    """Every array a store of ``steps`` holds (``"<step>/<name>"``) and its shape: the
    checkpoint model's state_dict, once per step."""
    params = {k: tuple(v.shape) for k, v in ckpt.params.items()}
    return {f"{step}/{k}": shape for step in steps for k, shape in params.items()}


def _arrays_problem(
    arrays: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]]
) -> str:
    """What is wrong with a store's arrays ("" if nothing): names, float32, shapes, finite."""
    missing = sorted(set(expected) - set(arrays))
    if missing:
        return f"no array {missing[0]!r}"
    extra = sorted(set(arrays) - set(expected))
    if extra:
        return f"an unexpected array {extra[0][:60]!r} (not a parameter of the checkpoint's model)"
    for key in sorted(arrays):
        a = arrays[key]
        if a.dtype != np.float32:
            return f"array {key!r} is {a.dtype}, not float32"
        if tuple(a.shape) != expected[key]:
            return f"array {key!r} has shape {tuple(a.shape)}; the model's is {expected[key]}"
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            return f"{bad:,} of the {a.size:,} values of array {key!r} are not finite (NaN or Inf)"
    return ""


def _snapshot_cap(meta: Mapping[str, Any], ckpt: Checkpoint) -> int:
    """The most bytes a store of this model and cap can hold (SnapshotStore's own rule)."""
    per = max(sum(int(v.numel()) * 4 for v in ckpt.params.values()), 1)
    count = max(MIN_COUNT, min(MAX_COUNT, int(meta["cap_bytes"]) // per))
    return min(count * per, MAX_SNAPSHOT_BYTES) + 8 + MAX_SNAPSHOT_HEADER_BYTES


def _read_snapshots(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    meta: dict[str, Any],
    ckpt: Checkpoint,
    name: str,
) -> SnapshotStore:
    where = f"{name} [{SNAPSHOTS_MEMBER}]"
    steps = [*meta["old_steps"], *meta["recent_steps"]]
    if steps != sorted(set(steps)):
        raise SessionError(f"{where}: the snapshot steps are not increasing")
    cap = _snapshot_cap(meta, ckpt)
    _declared(info, cap, name)
    check_memory(info.file_size, where)
    raw = _read(zf, info, cap, name)
    expected = _snapshot_shapes(steps, ckpt)
    _check_snapshot_header(raw, expected, where)  # before safetensors allocates anything
    try:
        arrays = st_load_numpy(raw)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise SessionError(f"{where} is corrupt (safetensors: {_one_line(exc)})") from None
    del raw
    problem = _arrays_problem(arrays, expected)
    if problem:
        raise SessionError(f"{where}: {problem}")
    try:
        return SnapshotStore.from_arrays(arrays, meta)
    except ValueError as exc:
        raise SessionError(f"{where}: {_one_line(exc)}") from None


def _check_snapshot_header(raw: bytes, expected: Mapping[str, tuple[int, ...]], where: str) -> None:
    n = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else -1
    if not 2 <= n <= MAX_SNAPSHOT_HEADER_BYTES or 8 + n > len(raw):
        raise SessionError(f"{where} is corrupt (not a safetensors file, or truncated)")
    try:
        header = parse_json(raw[8 : 8 + n].decode("utf-8"), "the safetensors header", where)
    except UnicodeDecodeError:
        raise SessionError(f"{where} is corrupt (its header is not UTF-8)") from None
    except CheckpointError as exc:
        raise SessionError(str(exc)) from None
    if not isinstance(header, dict):
        raise SessionError(f"{where} is corrupt (its header is not an object)")
    header.pop("__metadata__", None)
    names = set(header)
    if names != set(expected):
        wrong = sorted(names ^ set(expected))[0]
        verb = "an unexpected" if wrong in names else "no"
        raise SessionError(
            f"{where}: {verb} array {wrong[:60]!r} (the model's parameters, per step)"
        )
    for key, entry in header.items():
        if not isinstance(entry, dict) or entry.get("dtype") != "F32":
            raise SessionError(f"{where}: array {key[:60]!r} is not float32")
        shape = entry.get("shape")
        if not isinstance(shape, list) or tuple(shape) != expected[key]:
            raise SessionError(
                f"{where}: array {key[:60]!r} has shape {shape!r:.40}; the model's is "
                f"{expected[key]}"
            )

"""Bounded metric buffers for the panels, and CSV export / import of every number they show.

A run of 100,000 steps must not grow memory without bound, yet the curves should still show
the whole run. :class:`MetricHistory` keeps three bounded stores:

* a ring of the most recent ``capacity`` steps, every step;
* a whole-run tier: every ``stride``-th step, ``stride`` a power of two that doubles (and
  thins the tier to every other kept row) whenever the tier is full;
* a validation tier: the rows that carry a validation perplexity (sparse), thinned the same
  way, so the validation curve keeps its whole history too.

:meth:`MetricHistory.columns` merges the three, sorted by step, one row per step (the newest
record of a step wins, which matters after a rollback re-trains steps).

CSV: one row per step, floats written with ``repr`` so they re-import bit for bit; optional
values that are absent (no validation on that step, no ``W_hh``, no wall time in a file from
before it was measured) are empty cells. The *wide* CSV (:func:`write_runs_csv`) holds several
runs in one file, a ``run`` column first, and re-imports to each run's columns
(:func:`read_runs_csv`). This module imports NumPy only (no torch): the GUI uses it before
torch is loaded.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

# re-exported: callers import it from here too
from rnnviz.core.atomic import atomic_write_bytes as atomic_write_bytes
from rnnviz.core.messages import StepRecord

# per-parameter gradient norms are the columns "grad_norm:<name>", e.g. "grad_norm:W_hh"
PARAM_PREFIX = "grad_norm:"
# the time-step gradient flow ||dL/dH_t|| of a step, one column per window position t:
# "grad_flow:0", "grad_flow:1", ... (rnnviz.telemetry writes them; the window draws them in
# the gradient-flow panel's training heatmap when it opens the file)
FLOW_PREFIX = "grad_flow:"

FIXED_COLUMNS: tuple[str, ...] = (
    "step",
    "epoch",
    "wall_s",
    "loss",
    "ppl",
    "val_ppl",
    "grad_norm_before_clip",
    "grad_norm_after_clip",
    "clipped",
    "lr",
    "clip_theta",
    "clip_enabled",
    "tokens_per_s",
    "nonfinite",
    "nonfinite_total",
    "w_hh_sigma_max",
)
INT_COLUMNS = frozenset({"step", "epoch", "nonfinite_total"})
BOOL_COLUMNS = frozenset({"clipped", "clip_enabled", "nonfinite"})
# NaN in these means "no value" and is written as an empty cell; elsewhere NaN is "nan"
OPTIONAL_COLUMNS = frozenset({"val_ppl", "w_hh_sigma_max", "wall_s", "val_metric"})

# the wide CSV of several runs: the run's label, then the columns a reader of a training log
# looks for first (the list), then the per-parameter norms, then the rest
RUN_COLUMN = "run"
WIDE_FIRST: tuple[str, ...] = (
    "step",
    "wall_s",
    "loss",
    "ppl",
    "val_ppl",
    "grad_norm_before_clip",
    "grad_norm_after_clip",
    "clipped",
    "lr",
    "clip_theta",
    "nonfinite",
)

_SEQ = "_seq"  # insertion order (internal): the newest record of a step wins
_KEY = "_key"  # the key a tier thins on (internal)

Row = dict[str, float | int | bool]


def _dtype(column: str) -> type[np.generic]:
    if column in INT_COLUMNS or column in (_SEQ, _KEY):
        return np.int64
    if column in BOOL_COLUMNS:
        return np.bool_
    return np.float64


def _fill(column: str) -> Any:
    if column in INT_COLUMNS or column in (_SEQ, _KEY):
        return 0
    if column in BOOL_COLUMNS:
        return False
    return math.nan


def is_optional(column: str) -> bool:
    return column in OPTIONAL_COLUMNS or column.startswith((PARAM_PREFIX, FLOW_PREFIX))


def flow_row(flow: np.ndarray) -> Row:
    """The ``grad_flow:<t>`` cells of one step's flow (T,)."""
    return {f"{FLOW_PREFIX}{t}": float(v) for t, v in enumerate(np.asarray(flow).ravel())}


def flow_columns(columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps (n,), flow (T, n)) from a history's ``grad_flow:<t>`` columns, positions in
    order; None when it has none (a file written without a flow)."""
    positions = sorted(
        int(name[len(FLOW_PREFIX) :])
        for name in columns
        if name.startswith(FLOW_PREFIX) and name[len(FLOW_PREFIX) :].isdigit()
    )
    if not positions or positions != list(range(len(positions))) or "step" not in columns:
        return None
    flow = np.stack([np.asarray(columns[f"{FLOW_PREFIX}{t}"], dtype=np.float64) for t in positions])
    return np.asarray(columns["step"], dtype=np.int64), flow


def record_to_row(record: StepRecord) -> Row:
    """The CSV/plot columns of one step (None becomes NaN)."""
    row: Row = {
        "step": int(record.step),
        "epoch": int(record.epoch),
        "wall_s": math.nan if record.wall_s is None else float(record.wall_s),
        "loss": float(record.loss),
        "ppl": float(record.ppl),
        "val_ppl": math.nan if record.val_ppl is None else float(record.val_ppl),
        "grad_norm_before_clip": float(record.grad_norm_before_clip),
        "grad_norm_after_clip": float(record.grad_norm_after_clip),
        "clipped": bool(record.clipped),
        "lr": float(record.lr),
        "clip_theta": float(record.clip_theta),
        "clip_enabled": bool(record.clip_enabled),
        "tokens_per_s": float(record.tokens_per_s),
        "nonfinite": bool(record.nonfinite),
        "nonfinite_total": int(record.nonfinite_total),
        "w_hh_sigma_max": (
            math.nan if record.w_hh_sigma_max is None else float(record.w_hh_sigma_max)
        ),
    }
    # a task's column only (core.tasks): a language model's CSV keeps its columns
    if record.val_metric is not None:
        row["val_metric"] = float(record.val_metric)
    for name, value in record.param_grad_norms.items():
        row[PARAM_PREFIX + name] = float(value)
    return row


def format_value(column: str, value: Any) -> str:
    """One CSV cell: repr floats (exact round trip), 1/0 bools, empty for an absent value."""
    if column in BOOL_COLUMNS:
        return "1" if bool(value) else "0"
    if column in INT_COLUMNS:
        return str(int(value))
    x = float(value)
    if math.isnan(x):
        return "" if is_optional(column) else "nan"
    return repr(x)


def parse_value(column: str, cell: str) -> float | int | bool:
    cell = cell.strip()
    if column in BOOL_COLUMNS:
        if cell.lower() in ("1", "true"):
            return True
        if cell.lower() in ("0", "false", ""):
            return False
        raise ValueError(f"column {column}: {cell!r} is not a boolean")
    if column in INT_COLUMNS:
        return int(cell)
    return math.nan if cell == "" else float(cell)


def ordered_columns(names: Iterable[str]) -> list[str]:
    """The fixed columns first (in their order), then the others in the order given."""
    names = list(names)
    fixed = [c for c in FIXED_COLUMNS if c in names]
    return fixed + [c for c in names if c not in FIXED_COLUMNS and not c.startswith("_")]


# ---------------------------------------------------------------- column stores


class _Store:
    """Columns as NumPy arrays of a fixed capacity; columns can appear later (NaN before)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data: dict[str, np.ndarray] = {}
        self.n = 0

    def _ensure(self, column: str) -> np.ndarray:
        arr = self.data.get(column)
        if arr is None:
            arr = np.full(self.capacity, _fill(column), dtype=_dtype(column))
            self.data[column] = arr
        return arr

    def put(self, index: int, row: Mapping[str, Any]) -> None:
        for column, arr in self.data.items():
            if column not in row:
                arr[index] = _fill(column)
        for column, value in row.items():
            self._ensure(column)[index] = value

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        return {c: a[index] for c, a in self.data.items()}

    def clear(self) -> None:
        self.data.clear()
        self.n = 0


class _Ring(_Store):
    """The most recent ``capacity`` rows."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.head = 0  # where the next row goes

    def append(self, row: Mapping[str, Any]) -> None:
        self.put(self.head, row)
        self.head = (self.head + 1) % self.capacity
        self.n = min(self.n + 1, self.capacity)

    def order(self) -> np.ndarray:
        """Indices of the stored rows, oldest first."""
        if self.n < self.capacity:
            return np.arange(self.n)
        return (np.arange(self.capacity) + self.head) % self.capacity

    def keep(self, mask_fn: Any) -> None:
        rows = self.take(self.order())
        mask = mask_fn(rows)
        kept = {c: a[mask] for c, a in rows.items()}
        count = int(mask.sum())
        for c, a in self.data.items():
            a[:count] = kept[c]
        self.n = count
        self.head = count % self.capacity

    def clear(self) -> None:
        super().clear()
        self.head = 0


class _Tier(_Store):
    """Rows whose key is a multiple of ``stride``; when full, the stride doubles."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.stride = 1

    def offer(self, key: int, row: Mapping[str, Any]) -> None:
        if key % self.stride:
            return
        if self.n == self.capacity:
            self._thin()
            if key % self.stride:
                return
        self.put(self.n, {**row, _KEY: key})
        self.n += 1

    def _thin(self) -> None:
        self.stride *= 2
        keys = self.data[_KEY][: self.n]
        mask = keys % self.stride == 0
        if mask.sum() > self.capacity // 2:  # keys that do not spread (repeats): drop the oldest
            mask = np.zeros(self.n, dtype=bool)
            mask[self.n - self.capacity // 2 :] = True
        self.filter(mask)

    def filter(self, mask: np.ndarray) -> None:
        count = int(mask.sum())
        for arr in self.data.values():
            arr[:count] = arr[: self.n][mask]
        self.n = count

    def rows(self) -> dict[str, np.ndarray]:
        return {c: a[: self.n] for c, a in self.data.items() if c != _KEY}

    def clear(self) -> None:
        super().clear()
        self.stride = 1


class MetricHistory:
    """Bounded per-step metrics: a recent ring, a thinned whole-run tier, a validation tier.

    Memory is ``O(capacity + tier_capacity + val_capacity)`` rows whatever the run length.
    """

    def __init__(
        self, capacity: int = 4096, tier_capacity: int = 4096, val_capacity: int = 2048
    ) -> None:
        if min(capacity, tier_capacity, val_capacity) < 2:
            raise ValueError("history capacities must be >= 2")
        self._ring = _Ring(capacity)
        self._tier = _Tier(tier_capacity)
        self._val = _Tier(val_capacity)
        self._seq = 0
        self._val_count = 0
        self._cache: dict[str, np.ndarray] | None = None

    # -------------------------------------------------------------- filling

    def append(self, records: Iterable[StepRecord]) -> None:
        for record in records:
            self.append_row(record_to_row(record))

    def append_row(self, row: Mapping[str, Any]) -> None:
        full = {**row, _SEQ: self._seq}
        self._seq += 1
        self._ring.append(full)
        self._tier.offer(int(row["step"]), full)
        val = row.get("val_ppl", math.nan)
        if not math.isnan(float(val)):
            self._val.offer(self._val_count, full)
            self._val_count += 1
        self._cache = None

    def truncate_after(self, step: int) -> None:
        """Forget the rows after ``step`` (after a rollback, before re-training them)."""
        if self._ring.n:
            self._ring.keep(lambda rows: rows["step"] <= step)
        for tier in (self._tier, self._val):
            if tier.n:
                tier.filter(tier.data["step"][: tier.n] <= step)
        self._cache = None

    def clear(self) -> None:
        for store in (self._ring, self._tier, self._val):
            store.clear()
        self._tier.stride = self._val.stride = 1
        self._seq = self._val_count = 0
        self._cache = None

    # -------------------------------------------------------------- reading

    @property
    def tier_stride(self) -> int:
        return self._tier.stride

    def __len__(self) -> int:
        return len(self.columns()["step"])

    def column_names(self) -> list[str]:
        return ordered_columns(self.columns())

    def columns(self) -> dict[str, np.ndarray]:
        """Whole-run tier + validation tier + recent ring, one row per step, sorted by step.

        Arrays are read-only (cached until the next append).
        """
        if self._cache is not None:
            return self._cache
        parts = [self._tier.rows(), self._val.rows(), self._ring.take(self._ring.order())]
        names: list[str] = []
        for part in parts:
            names += [c for c in part if c not in names]
        if not names:
            names = [c for c in FIXED_COLUMNS]
        merged: dict[str, np.ndarray] = {}
        for c in names:
            chunks = []
            for part in parts:
                length = len(next(iter(part.values()))) if part else 0
                chunks.append(part[c] if c in part else np.full(length, _fill(c), dtype=_dtype(c)))
            merged[c] = np.concatenate(chunks) if chunks else np.empty(0, dtype=_dtype(c))
        if _SEQ in merged and len(merged[_SEQ]):
            # newest record of each step wins: sort by (step, seq), keep each step's last row
            order = np.lexsort((merged[_SEQ], merged["step"]))
            steps = merged["step"][order]
            last = np.ones(len(steps), dtype=bool)
            last[:-1] = steps[1:] != steps[:-1]
            order = order[last]
            merged = {c: a[order] for c, a in merged.items()}
        out = {c: merged[c] for c in ordered_columns(merged)}
        for arr in out.values():
            arr.setflags(write=False)
        self._cache = out
        return out

    def recent(self, n: int | None = None) -> dict[str, np.ndarray]:
        """The last ``n`` appended rows (from the ring), oldest first, in insertion order."""
        order = self._ring.order()
        if n is not None:
            order = order[max(0, len(order) - n) :]
        rows = self._ring.take(order)
        return {c: rows[c] for c in ordered_columns(rows)}

    # -------------------------------------------------------------- CSV

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Every row of :meth:`columns`, written atomically."""
        atomic_write_bytes(path, self.csv_bytes())

    def csv_bytes(self) -> bytes:
        """The bytes :meth:`to_csv` writes (the session file stores them as they are)."""
        cols = self.columns()
        return _csv_bytes(ordered_columns(cols), iter_rows(cols))

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], capacity: int = 4096) -> MetricHistory:
        """Read a CSV written by :meth:`to_csv` or :class:`MetricsCsvWriter`.

        The ring is made large enough for every row, so ``columns()`` equals the file.
        """
        return cls.from_columns(read_metrics_csv(path), capacity)

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray], capacity: int = 4096) -> MetricHistory:
        """A history whose :meth:`columns` are ``columns`` (rows in step order, as read)."""
        n = len(columns["step"])
        hist = cls(capacity=max(capacity, n, 2))
        names = list(columns)
        for i in range(n):
            hist.append_row({c: columns[c][i].item() for c in names})
        return hist


def read_metrics_csv(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A metrics CSV as columns (step int64, flags bool, the rest float64; empty cells NaN)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return parse_metrics_csv(fh, str(path))


def parse_metrics_csv(lines: Iterable[str], name: str) -> dict[str, np.ndarray]:
    """:func:`read_metrics_csv` of CSV text already open (``lines``: a file or a StringIO
    made with ``newline=""``); ``name`` starts every error message."""
    header, rows = _read_table(lines, name)
    if "step" not in header:
        raise ValueError(f"{name}: not a metrics CSV (no 'step' column)")
    values: dict[str, list[Any]] = {c: [] for c in header}
    for lineno, cells in rows:
        for c, cell in zip(header, cells, strict=True):
            values[c].append(_parse_cell(c, cell, name, lineno))
    return {c: np.array(v, dtype=_dtype(c)) for c, v in values.items()}


def _read_table(
    lines: Iterable[str], name: str
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header, and the non-empty rows (line number, cells), each as long as the header.

    The rows are read as they are asked for: a long CSV is never held as text.
    """
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{name}: empty metrics file") from None
    except csv.Error as exc:
        raise ValueError(f"{name}: unreadable CSV ({exc})") from None
    if len(set(header)) != len(header):
        raise ValueError(f"{name}: a column appears twice in the header")

    def rows() -> Iterator[tuple[int, list[str]]]:
        lineno = 1
        try:
            for lineno, cells in enumerate(reader, start=2):
                if not cells:
                    continue
                if len(cells) != len(header):
                    raise ValueError(
                        f"{name}:{lineno}: {len(cells)} cells, header has {len(header)}"
                    )
                yield lineno, cells
        except csv.Error as exc:  # a field over csv's size limit, a NUL byte, ...
            raise ValueError(f"{name}:{lineno + 1}: unreadable CSV ({exc})") from None

    return header, rows()


def _parse_cell(column: str, cell: str, name: str, lineno: int) -> float | int | bool:
    try:
        return parse_value(column, cell)
    except ValueError:
        shown = cell if len(cell) <= 40 else cell[:37] + "..."
        raise ValueError(f"{name}:{lineno}: column {column}: {shown!r} is not a value") from None


# ---------------------------------------------------------------- the wide CSV of several runs


def unique_labels(labels: Iterable[str]) -> list[str]:
    """``labels`` with repeats made distinct (" (2)", " (3)", ...): the wide CSV tells runs
    apart by their label alone."""
    out: list[str] = []
    for label in labels:
        candidate, n = label, 1
        while candidate in out:
            n += 1
            candidate = f"{label} ({n})"
        out.append(candidate)
    return out


def wide_column_names(runs: Sequence[Mapping[str, np.ndarray]]) -> list[str]:
    """Every column of any run: ``run``, :data:`WIDE_FIRST`, the per-parameter norms, the rest."""
    seen: list[str] = []
    for columns in runs:
        seen += [c for c in ordered_columns(columns) if c not in seen]
    first = [c for c in WIDE_FIRST if c in seen]
    params = [c for c in seen if c.startswith(PARAM_PREFIX)]
    rest = [c for c in seen if c not in first and c not in params]
    return [RUN_COLUMN, *first, *params, *rest]


def runs_csv_bytes(runs: Sequence[tuple[str, MetricHistory]]) -> bytes:
    """One CSV of several runs' histories (main run first), one row per run and step.

    Cells as in every metrics CSV (:func:`format_value`: exact floats, empty when absent);
    a column a run does not have is empty (or the column's fill, for one that is never
    optional) in its rows. Repeated labels are made distinct (:func:`unique_labels`).
    """
    labels = unique_labels(label for label, _ in runs)
    columns = [history.columns() for _, history in runs]
    names = wide_column_names(columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for label, cols in zip(labels, columns, strict=True):
        for row in iter_rows(cols):
            writer.writerow([label, *(format_value(c, row.get(c, _fill(c))) for c in names[1:])])
    return buf.getvalue().encode("utf-8")


def write_runs_csv(path: str | os.PathLike[str], runs: Sequence[tuple[str, MetricHistory]]) -> None:
    """:func:`runs_csv_bytes`, written atomically."""
    atomic_write_bytes(path, runs_csv_bytes(runs))


def read_runs_csv(path: str | os.PathLike[str]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The runs of a wide CSV (:func:`write_runs_csv`): (label, columns) in the file's order."""
    with open(path, newline="", encoding="utf-8") as fh:
        return parse_runs_csv(fh, str(path))


def parse_runs_csv(lines: Iterable[str], name: str) -> list[tuple[str, dict[str, np.ndarray]]]:
    """:func:`read_runs_csv` of CSV text already open; ``name`` starts every error message.

    Each run gets the fixed columns and every other column with a value in one of its rows,
    in :func:`ordered_columns` order: that is what the history of a run of StepRecords had.
    (An optional column a run held but never filled cannot be told from one it never had.)
    """
    header, rows = _read_table(lines, name)
    if not header or header[0] != RUN_COLUMN or "step" not in header:
        raise ValueError(f"{name}: not a CSV of runs (it must start with the columns run, step)")
    data = header[1:]
    by_run: dict[str, dict[str, list[Any]]] = {}
    filled: dict[str, set[str]] = {}
    for lineno, cells in rows:
        label = cells[0]
        values = by_run.setdefault(label, {c: [] for c in data})
        seen = filled.setdefault(label, set())
        for c, cell in zip(data, cells[1:], strict=True):
            values[c].append(_parse_cell(c, cell, name, lineno))
            if cell.strip():
                seen.add(c)
    out: list[tuple[str, dict[str, np.ndarray]]] = []
    for label, values in by_run.items():
        keep = [c for c in data if c in FIXED_COLUMNS or c in filled[label]]
        columns = {c: np.array(values[c], dtype=_dtype(c)) for c in keep}
        out.append((label, {c: columns[c] for c in ordered_columns(columns)}))
    return out


class MetricsCsvWriter:
    """Streams one CSV row per step (``rnnviz train --metrics-out``).

    The header is fixed by the first record: the fixed columns, then ``grad_norm:<param>``.
    Rows are flushed at least every ``flush_every`` rows, so a crash loses little.
    """

    def __init__(self, path: str | os.PathLike[str], flush_every: int = 100) -> None:
        self.path = Path(path)
        self._fh: IO[str] | None = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._fh, lineterminator="\n")
        self._names: list[str] | None = None
        self._flush_every = max(1, flush_every)
        self.rows_written = 0

    def write(self, record: StepRecord) -> None:
        self.write_row(record_to_row(record))

    def write_row(self, row: Mapping[str, Any]) -> None:
        if self._fh is None:
            raise ValueError("metrics writer is closed")
        if self._names is None:
            self._names = ordered_columns(row)
            self._writer.writerow(self._names)
        self._writer.writerow([format_value(c, row.get(c, _fill(c))) for c in self._names])
        self.rows_written += 1
        if self.rows_written % self._flush_every == 0:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            if self._names is None:  # no step at all: still a valid CSV with the fixed header
                self._writer.writerow(list(FIXED_COLUMNS))
            self._fh.close()
            self._fh = None

    def __enter__(self) -> MetricsCsvWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_metrics_rows(path: str | os.PathLike[str], records: Iterable[StepRecord]) -> None:
    """All ``records`` to a CSV at once (atomic), one row per step."""
    rows = [record_to_row(r) for r in records]
    names: list[str] = ordered_columns(rows[0]) if rows else list(FIXED_COLUMNS)
    atomic_write_bytes(path, _csv_bytes(names, rows))


def _csv_bytes(names: list[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([format_value(c, row.get(c, _fill(c))) for c in names])
    return buf.getvalue().encode("utf-8")


def iter_rows(columns: Mapping[str, np.ndarray]) -> Iterator[Row]:
    """Rows of a column dict (tests, exports)."""
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    for i in range(n):
        yield {c: columns[c][i].item() for c in names}

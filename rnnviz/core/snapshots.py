"""The timeline's parameter snapshots: the whole run covered at a fixed memory cap.

A run of 100,000 steps cannot keep every parameter set, yet the timeline must reach back to
its first steps. :class:`SnapshotStore` keeps two bounded tiers of whole parameter sets:

* a ring of the ``recent`` newest snapshots, every one kept (scrubbing back a few seconds
  shows each snapshot the window received);
* an older tier, fed by snapshots leaving the ring, that keeps one snapshot at least ``gap``
  steps after the previous one it kept. When it is full it keeps every other snapshot (the
  first, step 0's, always stays) and doubles ``gap``, so it stays spread evenly over the run.

The capacity in snapshots is ``cap_bytes`` over one snapshot's size, clamped to
[``MIN_COUNT``, ``MAX_COUNT``]; a quarter of it (at least 2) is the ring. At the default cap
of 64 MiB a hidden-256 model (about 0.4 MB per snapshot) keeps 160 snapshots. The arrays are
kept as given (read-only float32 copies from the engine), never converted, so a probe of a
stored snapshot is the probe of those exact parameters.

NumPy only (no torch, no Qt): the GUI state and the headless trainer share it, and the
session file stores it (:meth:`SnapshotStore.to_arrays` / :meth:`SnapshotStore.from_arrays`).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_CAP_BYTES = 64 * 1024 * 1024
MIN_COUNT = 8
MAX_COUNT = 512


@dataclass(frozen=True)
class StoredSnapshot:
    """One stored parameter set: the step it was taken after, and the state_dict arrays."""

    step: int
    params: Mapping[str, np.ndarray]

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.params.values())


def _frozen(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, value in params.items():
        a = np.asarray(value)
        if a.flags.writeable:  # a caller's own array: copy it, or a later change would show
            a = a.copy()
            a.setflags(write=False)
        out[name] = a
    return out


class SnapshotStore:
    """Parameter snapshots of one run by step: a recent ring plus an evenly thinned tier."""

    def __init__(self, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        if cap_bytes <= 0:
            raise ValueError(f"the snapshot cap must be positive, not {cap_bytes}")
        self.cap_bytes = int(cap_bytes)
        self.clear()

    # ---------------------------------------------------------------- filling

    def clear(self) -> None:
        self._old: list[StoredSnapshot] = []
        self._recent: list[StoredSnapshot] = []
        self.gap = 1  # the older tier's least distance in steps between kept snapshots
        self._shapes: dict[str, tuple[tuple[int, ...], str]] | None = None
        self.count_cap = MAX_COUNT
        self._version = 0

    def _fit(self, snap: StoredSnapshot) -> None:
        """The first snapshot fixes the shapes, and with them the capacity in snapshots;
        a later one must have the same (a new model is a new store: :meth:`clear` first)."""
        shapes = {n: (a.shape, a.dtype.str) for n, a in snap.params.items()}
        if self._shapes is None:
            self._shapes = shapes
            self.count_cap = max(MIN_COUNT, min(MAX_COUNT, self.cap_bytes // max(snap.nbytes, 1)))
        elif shapes != self._shapes:
            raise ValueError(f"the parameters at step {snap.step} differ from the store's model")

    @property
    def recent_cap(self) -> int:
        return max(2, self.count_cap // 4)

    @property
    def old_cap(self) -> int:
        return self.count_cap - self.recent_cap

    def add(self, step: int, params: Mapping[str, Any]) -> StoredSnapshot:
        """Keep the parameters after ``step``. A step at or before the newest one replaces
        everything from it on (a rollback re-trains those steps)."""
        snap = StoredSnapshot(int(step), _frozen(params))
        self._fit(snap)
        newest = self.newest()
        if newest is not None and snap.step <= newest.step:
            self.truncate_after(snap.step - 1)
        self._recent.append(snap)
        while len(self._recent) > self.recent_cap:
            self._offer_old(self._recent.pop(0))
        self._version += 1
        return snap

    def _offer_old(self, snap: StoredSnapshot) -> None:
        if self._old and snap.step - self._old[-1].step < self.gap:
            return
        self._old.append(snap)
        if len(self._old) > self.old_cap:
            # every other one from the first: step 0's stays, the spacing doubles
            self._old = self._old[::2]
            self.gap *= 2

    def truncate_after(self, step: int) -> None:
        """Forget the snapshots after ``step`` (a rollback to it)."""
        self._recent = [s for s in self._recent if s.step <= step]
        self._old = [s for s in self._old if s.step <= step]
        self._version += 1

    # ---------------------------------------------------------------- reading

    def __len__(self) -> int:
        return len(self._old) + len(self._recent)

    def version(self) -> int:
        """Changes whenever a snapshot is added or dropped (views cache on it)."""
        return self._version

    def snapshots(self) -> list[StoredSnapshot]:
        """Every stored snapshot, oldest first."""
        return self._old + self._recent

    def steps(self) -> list[int]:
        return [s.step for s in self.snapshots()]

    def newest(self) -> StoredSnapshot | None:
        if self._recent:
            return self._recent[-1]
        return self._old[-1] if self._old else None

    def nearest(self, step: int) -> StoredSnapshot | None:
        """The stored snapshot nearest to ``step`` (the earlier one on a tie)."""
        snaps = self.snapshots()
        if not snaps:
            return None
        steps = [s.step for s in snaps]
        i = bisect.bisect_left(steps, step)
        if i == 0:
            return snaps[0]
        if i == len(snaps):
            return snaps[-1]
        before, after = snaps[i - 1], snaps[i]
        return after if after.step - step < step - before.step else before

    def neighbour(self, step: int, direction: int) -> StoredSnapshot | None:
        """The stored snapshot just before (direction < 0) or after (> 0) ``step``."""
        snaps = self.snapshots()
        steps = [s.step for s in snaps]
        if direction < 0:
            i = bisect.bisect_left(steps, step) - 1
            return snaps[i] if i >= 0 else None
        i = bisect.bisect_right(steps, step)
        return snaps[i] if i < len(snaps) else None

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.snapshots())

    # ---------------------------------------------------------------- saving

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Every array as ``"<step>/<name>"``, and the store's state as plain JSON types."""
        arrays = {f"{s.step}/{n}": a for s in self.snapshots() for n, a in s.params.items()}
        meta = {
            "cap_bytes": self.cap_bytes,
            "gap": self.gap,
            "old_steps": [s.step for s in self._old],
            "recent_steps": [s.step for s in self._recent],
        }
        return arrays, meta

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
    ) -> SnapshotStore:
        """The inverse of :meth:`to_arrays`; a ``ValueError`` names what does not fit."""
        store = cls(int(meta["cap_bytes"]))
        old = [int(s) for s in meta["old_steps"]]
        recent = [int(s) for s in meta["recent_steps"]]
        every = old + recent
        if every != sorted(set(every)):
            raise ValueError("the stored snapshot steps are not increasing")
        by_step: dict[int, dict[str, np.ndarray]] = {s: {} for s in every}
        for key, a in arrays.items():
            head, _, name = key.partition("/")
            if not head.isdigit() or not name or int(head) not in by_step:
                raise ValueError(f"an unexpected snapshot array {key!r}")
            by_step[int(head)][name] = a
        snaps = {s: StoredSnapshot(s, _frozen(by_step[s])) for s in every}
        for snap in snaps.values():
            store._fit(snap)
        store._old = [snaps[s] for s in old]
        store._recent = [snaps[s] for s in recent]
        store.gap = max(1, int(meta["gap"]))
        if len(store._old) > store.old_cap or len(store._recent) > store.recent_cap:
            raise ValueError("more snapshots than the store's cap allows")
        return store

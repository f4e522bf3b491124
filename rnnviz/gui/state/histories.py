"""One history per run: every metric record the engine sent, and the per-position gradient
flow of the training window, kept once and read by every panel that plots them.

A rollback or a step that goes back truncates each run's history once, here; panels see a
new ``version`` and redraw from what is left. Pure Python and NumPy: no Qt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rnnviz.core.history import MetricHistory, flow_columns
from rnnviz.core.messages import StepRecord

METRIC_CAPACITY = 4096  # recent steps kept exactly per run (older ones thinned, see core.history)
FLOW_CAPACITY = 2000  # optimizer steps of ‖∂L/∂H_t‖ kept for the training heatmap (a ring)


class FlowRing:
    """The last ``capacity`` steps of one run's grad_flow: a fixed (num_steps, capacity) array."""

    def __init__(self, num_steps: int, capacity: int) -> None:
        self.values = np.full((num_steps, capacity), np.nan)
        self.steps = np.zeros(capacity, dtype=np.int64)
        self.next = 0  # the column the next step goes into
        self.count = 0

    @property
    def num_steps(self) -> int:
        return int(self.values.shape[0])

    @property
    def last_step(self) -> int | None:
        if self.count == 0:
            return None
        return int(self.steps[(self.next - 1) % self.values.shape[1]])

    def put(self, step: int, flow: np.ndarray) -> None:
        capacity = self.values.shape[1]
        self.values[:, self.next] = flow
        self.steps[self.next] = step
        self.next = (self.next + 1) % capacity
        self.count = min(self.count + 1, capacity)

    def ordered(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps (n,), values (num_steps, n)), oldest step first."""
        capacity = self.values.shape[1]
        if self.count < capacity:
            return self.steps[: self.count].copy(), self.values[:, : self.count].copy()
        order = np.r_[self.next : capacity, 0 : self.next]
        return self.steps[order], self.values[:, order]

    def truncated_after(self, step: int) -> FlowRing:
        """A ring with the steps up to ``step`` only."""
        kept_steps, kept = self.ordered()
        fresh = FlowRing(self.num_steps, self.values.shape[1])
        for column in np.flatnonzero(kept_steps <= step):
            fresh.put(int(kept_steps[column]), kept[:, column])
        return fresh


@dataclass
class RunHistory:
    """What one run has recorded. ``version`` grows with every change (panels redraw on it)."""

    metrics: MetricHistory
    flow: FlowRing | None = None
    version: int = 0
    flow_capacity: int = FLOW_CAPACITY
    _last_step: int | None = field(default=None, repr=False)

    @property
    def last_step(self) -> int | None:
        return self._last_step

    def append(self, records: Sequence[StepRecord]) -> None:
        if not records:
            return
        # a step that goes back (after a rollback): the abandoned continuation goes
        self.truncate_after(int(records[0].step) - 1)
        self.metrics.append(records)
        for record in records:
            flow = np.asarray(record.grad_flow, dtype=np.float64).ravel()
            if not flow.size:
                continue
            ring = self.flow
            if ring is None or ring.num_steps != flow.size:  # a new window size: a new picture
                ring = self.flow = FlowRing(flow.size, self.flow_capacity)
            ring.put(int(record.step), flow)
        self._last_step = int(records[-1].step)
        self.version += 1

    def truncate_after(self, step: int) -> None:
        """Forget the steps after ``step`` (a rollback abandoned them)."""
        if self._last_step is None or self._last_step <= step:
            return
        self.metrics.truncate_after(step)
        if self.flow is not None:
            self.flow = self.flow.truncated_after(step)
        steps = self.metrics.recent(1).get("step")
        self._last_step = int(steps[-1]) if steps is not None and len(steps) else None
        self.version += 1


class RunHistories:
    """Every run's history by run id (0 is the main run)."""

    def __init__(self, capacity: int = METRIC_CAPACITY, flow_capacity: int = FLOW_CAPACITY) -> None:
        self._capacity = capacity
        self._flow_capacity = flow_capacity
        self._runs: dict[int, RunHistory] = {}
        # grows whenever a run is added or removed, so a panel knows to rebuild its items
        self.layout_version = 0

    def run(self, run_id: int = 0) -> RunHistory:
        """The run's history (an empty one for a run with nothing recorded yet)."""
        history = self._runs.get(run_id)
        if history is None:
            history = RunHistory(
                MetricHistory(capacity=self._capacity), flow_capacity=self._flow_capacity
            )
            self._runs[run_id] = history
            self.layout_version += 1
        return history

    def metrics(self, run_id: int = 0) -> MetricHistory:
        return self.run(run_id).metrics

    def run_ids(self) -> list[int]:
        return sorted(self._runs)

    def has(self, run_id: int) -> bool:
        return run_id in self._runs

    def restore(self, run_id: int, metrics: MetricHistory) -> None:
        """``metrics`` (a saved session's, a metrics CSV's) as the history of ``run_id``; its
        flow picture from the ``grad_flow:<t>`` columns where it has them."""
        old = self._runs.get(run_id)
        columns = metrics.columns()
        steps = columns.get("step")
        history = RunHistory(metrics, flow_capacity=self._flow_capacity)
        flows = flow_columns(columns)
        if flows is not None:
            flow_steps, values = flows
            ring = history.flow = FlowRing(values.shape[0], self._flow_capacity)
            for column in range(max(0, len(flow_steps) - self._flow_capacity), len(flow_steps)):
                if np.isfinite(values[:, column]).any():  # a row logged without its flow
                    ring.put(int(flow_steps[column]), values[:, column])
        history.version = (old.version + 1) if old is not None else 1
        history._last_step = int(steps[-1]) if steps is not None and len(steps) else None
        self._runs[run_id] = history
        self.layout_version += 1

    def append(self, run_id: int, records: Sequence[StepRecord]) -> None:
        self.run(run_id).append(records)

    def truncate_after(self, run_id: int, step: int) -> None:
        history = self._runs.get(run_id)
        if history is not None:
            history.truncate_after(step)

    def last_step(self, run_id: int = 0) -> int | None:
        history = self._runs.get(run_id)
        return None if history is None else history.last_step

    def clear(self, run_id: int | None = None) -> None:
        """Forget every run (``run_id`` None: a new main run) or one run (closed)."""
        ids = list(self._runs) if run_id is None else [run_id]
        for rid in ids:
            if self._runs.pop(rid, None) is not None:
                self.layout_version += 1

    def version(self) -> tuple[int, tuple[tuple[int, int], ...]]:
        """A value that changes whenever anything recorded changes (for a panel's dirty check)."""
        return self.layout_version, tuple((r, h.version) for r, h in sorted(self._runs.items()))

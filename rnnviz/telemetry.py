"""rnnviz's measurements for your own PyTorch training loop, logged to a CSV rnnviz can plot.

Three pieces, each usable alone:

* :func:`clip_grad_norm` clips like ``torch.nn.utils.clip_grad_norm_`` (the same numbers, bit
  for bit) and returns a :class:`ClipReport`: the global gradient norm *before* and *after*
  clipping (two separate fields, never one ambiguous "grad norm"), whether clipping engaged,
  every parameter's own norm under the module's parameter names (before clipping: which
  layer exploded), and whether anything was not finite.
* :class:`FlowProbe` measures the time-step gradient flow ``‖∂L/∂H_t‖`` of a ``torch.nn.RNN``,
  ``GRU`` or ``LSTM`` inside your model, the quantity rnnviz's gradient-flow heatmap shows.
* :class:`TelemetryLog` writes one row per step in the metrics CSV format of rnnviz's own
  trainer (``rnnviz train --metrics-out``, File ▸ Export metrics CSV). Open it in the window
  with File ▸ Open metrics CSV…, or read it with ``MetricHistory.from_csv``.

A plain PyTorch loop::

    from rnnviz import telemetry

    model = MyLSTMModel()                     # any nn.Module; model.lstm is its nn.LSTM
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with telemetry.TelemetryLog("run.csv") as log:
        for step, (x, y) in enumerate(batches, start=1):
            opt.zero_grad()
            with telemetry.FlowProbe(model.lstm) as flow:   # optional: ‖∂L/∂H_t‖
                logits = model(x)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            loss.backward()
            report = telemetry.clip_grad_norm(model, max_norm=1.0)
            if not report.nonfinite:          # a NaN/inf gradient: skip the update
                opt.step()
            log.log(step, loss=loss.item(), report=report, lr=opt.param_groups[0]["lr"],
                    flow=flow)                # the flow as columns grad_flow:<t>
            print(report.norm_before, report.norm_after, report.largest(), flow.values)

Clipping rule (torch's): ``g ← min(1, θ / (‖g‖ + 1e-6)) g`` with ``‖g‖`` the L2 norm of all
gradients together. ``clipped`` is ``‖g‖ > θ``, as rnnviz's trainer counts its clip rate; in
the sliver ``θ − 1e-6 < ‖g‖ ≤ θ`` torch's ``1e-6`` still shrinks the gradient a little while
``clipped`` is False; ``norm_after`` is measured, so it shows that. Parameters without a
gradient (``p.grad is None``) are left out, as torch leaves them out.

A non-finite global norm (a NaN or inf anywhere) leaves the gradients untouched (torch would
multiply every one by NaN), sets ``nonfinite`` and ``norm_after = norm_before``; the
per-parameter norms are still measured, so the bad parameter shows. rnnviz's trainer skips
such a step, and so should your loop. :meth:`TelemetryLog.log` counts such steps
(``nonfinite_total``), and a non-finite loss too.

This module imports torch and rnnviz.core only, never Qt: it runs where the training runs.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from rnnviz.core.health import perplexity
from rnnviz.core.history import (
    FIXED_COLUMNS,
    PARAM_PREFIX,
    MetricsCsvWriter,
    flow_row,
    record_to_row,
)
from rnnviz.core.messages import StepRecord

__all__ = [
    "ClipReport",
    "FlowProbe",
    "TelemetryLog",
    "clip_grad_norm",
    "grad_norms",
    "layer_of",
]

Parameters = nn.Module | Mapping[str, Tensor] | Iterable[Tensor] | Iterable[tuple[str, Tensor]]

# torch.nn.RNN/GRU/LSTM name their weights weight_ih_l0, bias_hh_l1_reverse, ...
_RNN_PARAM = re.compile(r"^(?:weight|bias)_(?:ih|hh|hr)_(l\d+(?:_reverse)?)$")


# ---------------------------------------------------------------- clipping


@dataclass(frozen=True)
class ClipReport:
    """One step's gradient norms, before and after clipping (all norms are L2)."""

    norm_before: float  # ‖g‖ of all gradients before clipping: what clip_grad_norm_ returns
    norm_after: float  # ‖g‖ after clipping (== norm_before when nothing was scaled)
    clipped: bool  # norm_before > max_norm: clipping engaged
    max_norm: float  # θ (NaN when clipping was off)
    enabled: bool  # clipping was asked for (max_norm given and finite)
    nonfinite: bool  # norm_before is NaN or inf: the gradients were left as they were
    # each parameter's ‖∂L/∂p‖ before clipping, by the module's parameter names
    param_norms: dict[str, float] = field(default_factory=dict)

    def largest(self) -> tuple[str, float] | None:
        """The parameter with the largest gradient norm (a NaN or inf counts as largest)."""
        if not self.param_norms:
            return None

        def key(item: tuple[str, float]) -> float:
            return math.inf if math.isnan(item[1]) else item[1]

        return max(self.param_norms.items(), key=key)

    def layer_norms(self) -> dict[str, float]:
        """The per-parameter norms combined per layer (see :func:`layer_of`): the L2 norm of
        the layer's gradients together, ``sqrt(Σ ‖∂L/∂p‖²)``."""
        squares: dict[str, float] = {}
        for name, norm in self.param_norms.items():
            layer = layer_of(name)
            squares[layer] = squares.get(layer, 0.0) + norm * norm
        return {layer: math.sqrt(total) for layer, total in squares.items()}


def layer_of(name: str) -> str:
    """The layer a parameter name belongs to: its module (``fc.weight`` → ``fc``), and for a
    stacked torch RNN its layer too (``lstm.weight_hh_l1`` → ``lstm.l1``)."""
    module, _, leaf = name.rpartition(".")
    match = _RNN_PARAM.match(leaf)
    if match:
        return f"{module}.{match.group(1)}" if module else match.group(1)
    return module or name


def _named(parameters: Parameters) -> list[tuple[str, Tensor]]:
    if isinstance(parameters, nn.Module):
        return list(parameters.named_parameters())
    if isinstance(parameters, Tensor):
        return [("param0", parameters)]
    if isinstance(parameters, Mapping):
        return [(str(n), p) for n, p in parameters.items()]
    out: list[tuple[str, Tensor]] = []
    for i, item in enumerate(parameters):
        if isinstance(item, tuple):
            name, p = item
            out.append((str(name), cast(Tensor, p)))
        else:
            out.append((f"param{i}", cast(Tensor, item)))
    return out


def _per_param_norms(named: list[tuple[str, Tensor]]) -> dict[str, float]:
    """‖p.grad‖ per name, one transfer per device (not one per parameter)."""
    by_device: dict[torch.device, list[tuple[str, Tensor]]] = {}
    for name, g in named:
        by_device.setdefault(g.device, []).append((name, g))
    norms: dict[str, float] = {}
    for group in by_device.values():
        values = torch.stack(
            [torch.linalg.vector_norm(g.detach()).to(torch.float64) for _, g in group]
        ).tolist()
        norms.update(zip((name for name, _ in group), values, strict=True))
    return {name: norms[name] for name, _ in named}


def clip_grad_norm(parameters: Parameters, max_norm: float | None) -> ClipReport:
    """Clip the gradients to global L2 norm ``max_norm`` in place, as
    ``torch.nn.utils.clip_grad_norm_(params, max_norm)`` does, and report before and after.

    ``parameters``: a module (its ``named_parameters()`` name the per-parameter norms), a
    mapping name → tensor, (name, tensor) pairs, or tensors (named ``param0``, ``param1``…).
    ``max_norm`` None or inf: measure only, clip nothing.
    """
    named = [(n, p) for n, p in _named(parameters) if p.grad is not None]
    enabled = max_norm is not None and math.isfinite(max_norm)
    theta = float(max_norm) if enabled and max_norm is not None else math.nan
    if enabled and not theta >= 0:
        raise ValueError(f"max_norm must be >= 0, not {max_norm}")
    if not named:
        return ClipReport(0.0, 0.0, False, theta, enabled, False, {})
    grads = [p.grad for _, p in named if p.grad is not None]
    per_param = _per_param_norms([(n, g) for (n, _), g in zip(named, grads, strict=True)])
    # clip_grad_norm_ is these two public halves; split, the norm can be checked in between
    total = torch.nn.utils.get_total_norm(grads)
    before = float(total)
    if not math.isfinite(before):
        return ClipReport(before, before, False, theta, enabled, True, per_param)
    after = before
    if enabled:
        torch.nn.utils.clip_grads_with_norm_([p for _, p in named], theta, total)
        after = float(torch.nn.utils.get_total_norm(grads))
    return ClipReport(before, after, enabled and before > theta, theta, enabled, False, per_param)


def grad_norms(parameters: Parameters) -> ClipReport:
    """The gradient norms without clipping (``clip_grad_norm(parameters, None)``)."""
    return clip_grad_norm(parameters, None)


# ---------------------------------------------------------------- gradient flow


class FlowProbe:
    """``‖∂L/∂H_t‖`` per time step t of a ``torch.nn.RNN``, ``GRU`` or ``LSTM``, batch-averaged.

    ``H_t`` is the RNN's output at step t (its top layer's hidden state, what a head on
    ``output`` reads), and the derivative is the total one: through the output at t and
    through every later step's recurrence. A fused RNN keeps its steps inside one autograd
    node, so inside the ``with`` block the module runs one step at a time instead (the same
    weights and math; the outputs equal the fused ones to rounding), each step's ``H_t``
    feeding the next step, and each ``H_t`` keeps its gradient. After ``loss.backward()``,
    :attr:`values` holds the flow as a NumPy array of length T (NaN before the backward).
    This is what rnnviz's trainer records per step for its own scratch RNN (``grad_flow``).

    Several calls of the module in one block: the last call is measured. Batched input only
    (3-D, ``batch_first`` either way); bidirectional RNNs and packed sequences are refused.
    The step-by-step forward is slower than the fused one: probe the steps you look at.
    """

    def __init__(self, rnn: nn.RNNBase) -> None:
        if not isinstance(rnn, nn.RNN | nn.GRU | nn.LSTM):
            raise TypeError(f"FlowProbe needs a torch.nn.RNN, GRU or LSTM, not {type(rnn)}")
        if rnn.bidirectional:
            raise ValueError("FlowProbe measures a unidirectional RNN only")
        self.rnn = rnn
        self._steps: list[Tensor] = []
        self._patched = False

    def __enter__(self) -> FlowProbe:
        self._steps = []
        # an instance attribute shadows the class's forward for this module only
        self.rnn.forward = self._forward  # type: ignore[method-assign, assignment]
        self._patched = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._patched:
            del self.rnn.forward
            self._patched = False

    @property
    def values(self) -> np.ndarray:
        """(T,) ``‖∂L/∂H_t‖`` averaged over the batch; NaN where no gradient reached H_t."""
        out = np.full(len(self._steps), np.nan)
        for t, h in enumerate(self._steps):
            if h.grad is not None:
                out[t] = float(torch.linalg.vector_norm(h.grad, dim=-1).mean())
        return out

    def _forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        rnn = self.rnn
        if not isinstance(input, Tensor) or input.dim() != 3:
            raise ValueError("FlowProbe: the RNN's input must be a batched 3-D tensor")
        lstm = isinstance(rnn, nn.LSTM)
        step_forward: Any = type(rnn).forward  # the fused forward, on one step at a time
        xs = input.unbind(1 if rnn.batch_first else 0)
        steps: list[Tensor] = []
        state = hx
        for x_t in xs:
            x_t = x_t.unsqueeze(1 if rnn.batch_first else 0)
            out_t, state_t = step_forward(rnn, x_t, state)
            h_t = out_t.squeeze(1 if rnn.batch_first else 0)  # (B, H_out)
            if h_t.requires_grad:
                h_t.retain_grad()
            steps.append(h_t)
            # the top layer's state is h_t itself, so that the recurrence runs through it;
            # h_n's top slice holds the same values but is another autograd output
            h_n = state_t[0] if lstm else state_t
            h_n = torch.cat([h_n[:-1], h_t.unsqueeze(0)])
            state = (h_n, state_t[1]) if lstm else h_n
        self._steps = steps
        output = torch.stack(steps, dim=1 if rnn.batch_first else 0)
        return output, state


# ---------------------------------------------------------------- the CSV


class TelemetryLog:
    """One CSV row per logged step, in the metrics CSV format of rnnviz's own trainer.

    Rows are written as they are logged (flushed every ``flush_every`` rows and at
    :meth:`close`), so the file of a running or crashed training is readable up to its last
    flushed row. The columns are fixed by the first logged step: the fixed ones of every
    rnnviz metrics CSV, then ``grad_norm:<name>`` for each parameter of that step's report,
    then ``grad_flow:<t>`` for a step logged with its flow.
    A parameter name first seen later is not written (a warning says so, once).

    ``wall_s`` is seconds since the log was opened unless :meth:`log` is given one;
    ``tokens_per_s`` is NaN unless given. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | Path, flush_every: int = 20) -> None:
        self.path = Path(path)
        self._writer = MetricsCsvWriter(self.path, flush_every=flush_every)
        self._start = time.perf_counter()
        self._columns: list[str] | None = None
        self._warned = False
        self.nonfinite_total = 0
        self.rows_written = 0

    def log(
        self,
        step: int,
        *,
        loss: float,
        report: ClipReport | None = None,
        lr: float = math.nan,
        val_ppl: float | None = None,
        epoch: int = 0,
        tokens_per_s: float = math.nan,
        wall_s: float | None = None,
        w_hh_sigma_max: float | None = None,
        flow: np.ndarray | FlowProbe | None = None,
    ) -> StepRecord:
        """Write one step's row; returns it as the StepRecord rnnviz's trainer would send.

        ``loss``: the step's mean cross-entropy (nats; perplexity is ``exp(loss)``).
        ``report``: that step's :func:`clip_grad_norm` (None: gradient columns empty).
        ``val_ppl``: a validation perplexity on the steps that have one.
        ``w_hh_sigma_max``: the largest singular value of the recurrent matrix, if measured.
        ``flow``: that step's :class:`FlowProbe` (or its ``values``), written as the columns
        ``grad_flow:0`` ... ``grad_flow:<T-1>``, which the window draws in the gradient-flow
        panel's training heatmap (the first step's T fixes the columns).
        """
        values = flow.values if isinstance(flow, FlowProbe) else flow
        flow_values = np.empty(0) if values is None else np.asarray(values, dtype=np.float64)
        loss = float(loss)
        nan = math.nan
        nonfinite = not math.isfinite(loss) or (report is not None and report.nonfinite)
        if nonfinite:
            self.nonfinite_total += 1
        record = StepRecord(
            step=int(step),
            epoch=int(epoch),
            loss=loss,
            ppl=perplexity(loss),
            grad_norm_before_clip=nan if report is None else report.norm_before,
            grad_norm_after_clip=nan if report is None else report.norm_after,
            clipped=False if report is None else report.clipped,
            lr=float(lr),
            clip_theta=nan if report is None else report.max_norm,
            clip_enabled=False if report is None else report.enabled,
            tokens_per_s=float(tokens_per_s),
            nonfinite=nonfinite,
            nonfinite_total=self.nonfinite_total,
            param_grad_norms={} if report is None else dict(report.param_norms),
            grad_flow=flow_values,
            w_hh_sigma_max=None if w_hh_sigma_max is None else float(w_hh_sigma_max),
            val_ppl=None if val_ppl is None else float(val_ppl),
            wall_s=time.perf_counter() - self._start if wall_s is None else float(wall_s),
        )
        row = record_to_row(record)
        row.update(flow_row(flow_values))
        if self._columns is None:
            self._columns = list(row)
        else:
            extra = [c for c in row if c not in self._columns]
            if extra and not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.path}: columns first seen at step {step} are not written "
                    f"(the header was fixed by the first step): {', '.join(extra)}",
                    stacklevel=2,
                )
        self._writer.write_row(row)
        self.rows_written += 1
        return record

    @property
    def param_names(self) -> list[str]:
        """The parameters the file has a column for (fixed by the first step)."""
        columns = self._columns or list(FIXED_COLUMNS)
        return [c[len(PARAM_PREFIX) :] for c in columns if c.startswith(PARAM_PREFIX)]

    def close(self) -> None:
        """Flush and close the file (a log with no step is a CSV with the header only)."""
        self._writer.close()

    def __enter__(self) -> TelemetryLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""TensorBoard event files of training: ``rnnviz train --tensorboard DIR`` and the window's
File ▸ Log to TensorBoard… (written in the engine process, never in the GUI's).

The summaries are built by PyTorch's own ``torch.utils.tensorboard.summary`` (hparams,
histograms) and TensorBoard's protos, and framed by TensorBoard's own ``RecordWriter``; they
need the ``tensorboard`` package (the ``rnnviz[tensorboard]`` extra), which is also what shows
the files (``tensorboard --logdir DIR``): the extra adds that one package.

Every number comes from the step's :class:`~rnnviz.core.messages.StepRecord`, the same record
the metrics CSV is written from, so a tag and its CSV column agree step by step (TensorBoard
keeps float32). The clip rate is :func:`rnnviz.core.analysis.clip_stats` over the newest
``CLIP_RATE_WINDOW`` records, as the gradient-norm panel shows it. Nothing is recomputed; the
histograms are the only new numbers, and they are only counted, not derived:

* ``histogram/hidden_state``: the final hidden state H_T of every sequence of the newest
  training batch (the state the trainer carries; for an LSTM its h), at step 1, every
  ``HISTOGRAM_EVERY`` steps and at the end;
* ``histogram/<W_hh's panel name>``: the recurrent matrix at the same steps.

Cost: all the scalars of a step go out as one event (one Summary); one ``add_scalar`` per
tag cost ~0.4 ms a step, 7 % of a default step. Events are written in the training thread
(:class:`EventFile` says why not on a writer thread), flushed every ``FLUSH_S`` seconds, at
every pause and when the log is closed (end of training, Ctrl+C, Stop).

Nothing here is imported by the core unless logging is asked for: the package is optional.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import itertools
import math
import os
import re
import secrets
import socket
import stat
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnviz.core.analysis import CLIP_RATE_WINDOW, clip_stats
from rnnviz.core.atomic import OutputPathError

if TYPE_CHECKING:
    from rnnviz.core.config import RunConfig
    from rnnviz.core.messages import StepRecord
    from rnnviz.core.runs import Run

EXTRA = "tensorboard"
INSTALL = f"pip install 'rnnviz[{EXTRA}]'"
MISSING_MESSAGE = f"TensorBoard logging needs the tensorboard package: {INSTALL}"
# every Failure the engine sends about its logs starts so (the window unticks its action)
FAILURE_PREFIX = "TensorBoard"

HISTOGRAM_EVERY = 100  # steps between two histograms (and step 1, and the last step)
HISTOGRAM_BINS = 64  # linear bins: TensorBoard's own ~1,500 exponential ones cost 8 ms each
FLUSH_S = 5.0  # the event file is flushed this often (and at every pause): a kill loses less

# the recurrent matrix under the name the panels give it
RECURRENT_NAMES = ("W_hh", "W_h(gates)")

TAG_LOSS = "train/loss"
TAG_PPL = "train/perplexity"
TAG_VAL_PPL = "val/perplexity"
TAG_LR = "train/lr"
TAG_BEFORE = "grad_norm/before_clip"
TAG_AFTER = "grad_norm/after_clip"
TAG_PARAM = "grad_norm/"  # + the parameter's panel name, e.g. grad_norm/W_hh
TAG_CLIPPED = "clip/engaged"
TAG_CLIP_RATE = "clip/rate"
TAG_THETA = "clip/theta"
TAG_SIGMA = "sigma_max/W_hh"
TAG_NONFINITE = "nonfinite/count"
TAG_HIDDEN = "histogram/hidden_state"
TAG_WEIGHT = "histogram/"  # + the recurrent matrix's panel name


class TensorBoardUnavailable(ImportError):
    """The writer cannot be imported; the message says which extra to install."""


def missing_message() -> str | None:
    """:data:`MISSING_MESSAGE` when the package is not installed, else None. Imports nothing
    (the window asks before any torch is loaded)."""
    try:
        found = importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else MISSING_MESSAGE


def require_tensorboard() -> Any:
    """``torch.utils.tensorboard.summary`` (the summary builders), or
    :class:`TensorBoardUnavailable`."""
    try:
        import tensorboard  # noqa: F401  # torch's wrapper may be imported already without it
        from tensorboard.compat.proto import event_pb2  # noqa: F401
        from tensorboard.summary.writer import record_writer  # noqa: F401
    except ImportError as exc:
        raise TensorBoardUnavailable(MISSING_MESSAGE) from exc
    # torch's summary builders carry no annotations
    return importlib.import_module("torch.utils.tensorboard.summary")


def check_log_dir(path: str | os.PathLike[str]) -> None:
    """Raise :class:`OutputPathError` (one line) unless event files can be written in ``path``.

    ``path`` may not exist yet (the writer creates it, and its parents): then the nearest
    folder that exists must take a new file. A probe file finds what ``os.access`` cannot
    (a read-only mount as root, a full disk).
    """
    raw = os.fspath(path)
    if not raw.strip():
        raise OutputPathError("the folder name is empty; give a folder")
    folder = Path(os.path.realpath(raw))
    while True:
        try:
            st = os.stat(folder)
        except (FileNotFoundError, NotADirectoryError):  # a file on the way: found above
            if folder.parent == folder:
                raise OutputPathError(f"cannot write in {raw}: nothing of it exists") from None
            folder = folder.parent
            continue
        except OSError as exc:
            raise OutputPathError(f"cannot write in {raw}: {_reason(exc)}") from None
        break
    if not stat.S_ISDIR(st.st_mode):
        what = raw if str(folder) == os.path.realpath(raw) else str(folder)
        raise OutputPathError(f"{what} exists and is not a folder: give a folder for the logs")
    probe = folder / f".rnnviz-probe-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise OutputPathError(f"cannot write in {folder}: {_reason(exc)}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOSPC:
        return "no space left on the disk"
    return exc.strerror or str(exc)


def flat_hparams(config: RunConfig) -> dict[str, Any]:
    """The run's configuration as ``section.field`` -> value (hparams take flat scalars)."""
    return {
        f"{section}.{name}": value
        for section, fields in config.to_json().items()
        for name, value in fields.items()
    }


def scalars(record: StepRecord, clip_rate: float) -> list[tuple[str, float]]:
    """The (tag, value) pairs of one step, each from its StepRecord field (None: no value)."""
    out = [
        (TAG_LOSS, record.loss),
        (TAG_PPL, record.ppl),
        (TAG_LR, record.lr),
        (TAG_BEFORE, record.grad_norm_before_clip),
        (TAG_AFTER, record.grad_norm_after_clip),
        (TAG_CLIPPED, float(record.clipped)),
        (TAG_CLIP_RATE, clip_rate),
        (TAG_THETA, record.clip_theta),
        (TAG_NONFINITE, float(record.nonfinite_total)),
    ]
    if record.val_ppl is not None:
        out.append((TAG_VAL_PPL, record.val_ppl))
    if record.w_hh_sigma_max is not None:
        out.append((TAG_SIGMA, record.w_hh_sigma_max))
    out += [(TAG_PARAM + name, value) for name, value in record.param_grad_norms.items()]
    return out


_file_numbers = itertools.count()  # two files of one process and second get distinct names


class EventFile:
    """One event file, written in the caller's thread: TensorBoard's own record framing
    (``RecordWriter``: length, data, masked CRC-32C) and ``Event`` protos, under the name
    TensorBoard's writer gives its files.

    Not TensorBoard's ``EventFileWriter`` (under torch's ``SummaryWriter``): its writer thread
    computes the CRCs in pure Python, and while it holds the GIL the training thread waits
    for it at every return from a torch op: on 2 busy cores a step took 13-19 % longer, the
    write itself 0.7-3 ms. Here a step's event costs the training thread ~0.1 ms, once.
    """

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event, SourceMetadata
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event = Event
        os.makedirs(log_dir, exist_ok=True)
        name = "events.out.tfevents.%010d.%s.%s.%s" % (  # noqa: UP031 - TensorBoard's own form
            time.time(),
            socket.gethostname(),
            os.getpid(),
            next(_file_numbers),
        )
        self.path = os.path.join(log_dir, name)
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._records = RecordWriter(self._fh)
        self._flush_at = time.monotonic() + FLUSH_S
        self.add_event(
            Event(file_version="brain.Event:2", source_metadata=SourceMetadata(writer="rnnviz"))
        )
        self.flush()

    def add_event(self, event: Any, step: int | None = None) -> None:
        event.wall_time = time.time()
        if step is not None:
            event.step = int(step)
        self._records.write(event.SerializeToString())
        if time.monotonic() >= self._flush_at:
            self.flush()

    def add_summary(self, summary: Any, step: int) -> None:
        self.add_event(self._event(summary=summary), step)

    def flush(self) -> None:
        self._fh.flush()
        self._flush_at = time.monotonic() + FLUSH_S

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class TensorBoardLog:
    """One run's event files in ``log_dir`` (see the module doc for what is written)."""

    def __init__(
        self, log_dir: str | os.PathLike[str], run: Run, *, histogram_every: int = HISTOGRAM_EVERY
    ) -> None:
        self._summaries = summaries = require_tensorboard()
        from tensorboard.compat.proto.summary_pb2 import Summary

        self.run = run
        self.log_dir = os.fspath(log_dir)
        self._summary = Summary
        self._value = Summary.Value
        self._file = EventFile(self.log_dir)
        self._every = max(1, histogram_every)
        self._next_histogram = 1
        self._histogram_step = -1
        self._hidden: Any = None  # the newest carried state (the trainer drops it at epoch ends)
        self._weight = next(
            ((n, p) for n, p in run.model.named_grad_params() if n in RECURRENT_NAMES), None
        )
        # the steps and flags of the newest CLIP_RATE_WINDOW steps, for clip_stats
        self._steps: deque[int] = deque(maxlen=CLIP_RATE_WINDOW)
        self._clipped: deque[bool] = deque(maxlen=CLIP_RATE_WINDOW)
        metrics = {TAG_LOSS: math.nan, TAG_VAL_PPL: math.nan}  # only their names are written
        experiment, start, self._end = summaries.hparams(flat_hparams(run.config), metrics)
        step = run.trainer.step
        self._file.add_summary(experiment, step)
        self._file.add_summary(start, step)
        self.closed = False

    def write(self, record: StepRecord) -> None:
        """One step's scalars (one event), and the histograms when they are due."""
        self._steps.append(record.step)
        self._clipped.append(record.clipped)
        # of θ, the switch and the norm clip_stats reads the newest only
        stats = clip_stats(
            {
                "step": self._steps,
                "clipped": self._clipped,
                "clip_theta": (record.clip_theta,),
                "clip_enabled": (record.clip_enabled,),
                "grad_norm_before_clip": (record.grad_norm_before_clip,),
            }
        )
        rate = math.nan if stats is None else stats.rate
        value = self._value
        summary = self._summary(
            value=[value(tag=tag, simple_value=v) for tag, v in scalars(record, rate)]
        )
        self._file.add_summary(summary, record.step)
        carried = self.run.trainer.carried
        if carried is not None:
            self._hidden = carried
        if record.step >= self._next_histogram:
            self._histograms(record.step)

    def rolled_back(self, step: int) -> None:
        """The run went back to ``step``: TensorBoard hides what was written after it."""
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog

        self._file.add_event(Event(session_log=SessionLog(status=SessionLog.START)), step + 1)
        self._steps.clear()
        self._clipped.clear()
        self._hidden = None
        self._next_histogram = step + 1

    def _histograms(self, step: int) -> None:
        self._histogram_step = step
        self._next_histogram = (step // self._every + 1) * self._every
        hidden = self._hidden
        if isinstance(hidden, tuple):  # an LSTM's (h, c)
            hidden = hidden[0]
        if hidden is not None:
            self._histogram(TAG_HIDDEN, hidden, step)
        if self._weight is not None:
            name, weight = self._weight
            self._histogram(TAG_WEIGHT + name, weight, step)

    def _histogram(self, tag: str, tensor: Any, step: int) -> None:
        values = tensor.detach().to("cpu", copy=True).numpy()
        if values.size and np.isfinite(values).all():  # a histogram of NaN has no range
            self._file.add_summary(self._summaries.histogram(tag, values, HISTOGRAM_BINS), step)

    def flush(self) -> None:
        if not self.closed:
            self._file.flush()

    def close(self) -> None:
        """The last step's histograms (if not written yet), the session's end, flushed."""
        if self.closed:
            return
        self.closed = True
        try:
            step = self.run.trainer.step
            if step > 0 and step != self._histogram_step:
                self._histograms(step)
            self._file.add_summary(self._end, step)
            self._file.flush()
        finally:
            self._file.close()


def _folder_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_.") or "run"


class TensorBoardRuns:
    """The engine's logs: every run it trains in a folder of its own under ``root``.

    A run rebuilt (reset, load, a compare run started again) starts a new folder, named by the
    time and the run's label, so its steps from 1 do not overwrite the old curve.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        require_tensorboard()
        check_log_dir(root)
        self.root = Path(root)
        self._logs: dict[int, TensorBoardLog] = {}

    def folders(self) -> list[str]:
        return [log.log_dir for log in self._logs.values()]

    def write(self, run: Run, record: StepRecord) -> None:
        log = self._logs.get(run.run_id)
        if log is None or log.run is not run:
            if log is not None:
                log.close()
            log = self._logs[run.run_id] = TensorBoardLog(self._new_folder(run), run)
        log.write(record)

    def _new_folder(self, run: Run) -> Path:
        label = run.label or ("main" if run.run_id == 0 else f"run {run.run_id}")
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{_folder_name(label)}"
        folder, n = self.root / base, 1
        while folder.exists():
            n += 1
            folder = self.root / f"{base}-{n}"
        return folder

    def rolled_back(self, run: Run, step: int) -> None:
        log = self._logs.get(run.run_id)
        if log is not None and log.run is run:
            log.rolled_back(step)

    def flush(self) -> None:
        for log in self._logs.values():
            log.flush()

    def close_run(self, run_id: int) -> None:
        log = self._logs.pop(run_id, None)
        if log is not None:
            log.close()

    def close(self) -> None:
        logs, self._logs = list(self._logs.values()), {}
        errors: list[BaseException] = []
        for log in logs:
            try:
                log.close()
            except Exception as exc:  # close the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]

"""The engine's command loop: owns the runs (model + trainer) and serves commands between steps.

Qt-free. In the app it runs in a spawned process (:func:`engine_main`): commands arrive on a
queue, events leave through ``emit``. Between two optimizer steps the loop drains the inbox
without blocking; while idle or paused it blocks on the inbox with a short timeout.

Runs: run 0 is the main run. ``Fork(changes)`` adds a run built from the main run's *initial*
parameters (kept when a run is built or reset) and the same data order, with ``changes``
applied; while training, the runs advance round-robin, one optimizer step each per round, so
they stay at the same step and their curves can be compared.

Events: metrics are batched (one ``MetricsBatch`` per run every ``batch_interval_s`` and at
every pause / stop, never one message per step); ``ParamSnapshot`` every
``snapshot_interval_s`` while training (less often when copying the parameters is slow) and
after every step command, reset, pause, rollback and load. An exception in a command or a
step becomes a ``Failure`` event; the loop and the current runs survive it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import multiprocessing
import os
import queue
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from rnnviz.core.config import ConfigError, RunConfig, training_refusal
from rnnviz.core.messages import (
    CloseRun,
    Command,
    Divergence,
    Event,
    Failure,
    Fork,
    Load,
    LogToTensorBoard,
    MetricsBatch,
    OpenModel,
    ParamSnapshot,
    Pause,
    ProbeReply,
    ProbeRequest,
    Reset,
    Rollback,
    RunInfo,
    Save,
    Saved,
    SessionState,
    SetHyper,
    Start,
    StateChanged,
    Step,
    StepRecord,
    Stop,
)
from rnnviz.core.probe import params_to_numpy, probe
from rnnviz.core.runs import Run, build_run, same_corpus

if TYPE_CHECKING:
    from rnnviz.core.tensorboard_log import TensorBoardRuns

# above these learning rates a divergence is blamed on the learning rate
HIGH_LR = {"sgd": 2.0, "adam": 0.05}
# metric batches from the engine process (see engine_main)
ENGINE_BATCH_INTERVAL_S = 0.04
# how long the idle loop blocks on the inbox before looking again
IDLE_POLL_S = 0.1
# how often the loop asks whether its parent is still alive
ALIVE_CHECK_S = 1.0


def user_message(exc: BaseException) -> str:
    """What the user reads: our own errors as they are, anything else with its type."""
    from rnnviz.core.checkpoint import CheckpointError
    from rnnviz.core.corpus import CorpusError
    from rnnviz.core.torch_model import TorchModelError

    if isinstance(exc, ConfigError | CorpusError | CheckpointError | TorchModelError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def likely_cause(record: StepRecord, optimizer: str, reason: str) -> str:
    """A sentence naming the most likely cause of a divergence, for the student."""
    lr_high = record.lr > HIGH_LR.get(optimizer, 2.0)
    gnorm = record.grad_norm_before_clip
    g = f"{gnorm:.3g}" if math.isfinite(gnorm) else str(gnorm)
    if not record.clip_enabled:
        cause = f"clipping is off: ||g|| before clipping was {g}; turn clipping on (theta = 1)"
        if lr_high:
            cause += f", and the learning rate {record.lr:g} is high for {optimizer}"
        return cause
    if lr_high:
        return (
            f"the learning rate {record.lr:g} is high for {optimizer} "
            f"(above {HIGH_LR.get(optimizer, 2.0):g}); try a smaller one"
        )
    if reason == "nonfinite":
        return f"the loss or a gradient became non-finite (||g|| before clipping was {g})"
    return "the loss jumped; a larger step than the model can take (lower lr or clip theta)"


class Session:
    """Owns the runs and serves commands between optimizer steps (see the module docstring)."""

    def __init__(
        self,
        config: RunConfig,
        emit: Callable[[Event], None],
        batch_interval_s: float = 0.05,
        snapshot_interval_s: float = 0.25,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emit = emit
        self.batch_interval_s = batch_interval_s
        self.snapshot_interval_s = snapshot_interval_s
        self._clock = clock
        self.runs: dict[int, Run] = {}
        self.state: SessionState = "idle"
        self.stopped = False
        self._fork_changes: dict[int, dict[str, dict[str, Any]]] = {}
        self._next_run_id = 1
        self._pending: dict[int, list[StepRecord]] = {}
        self._steps_left: int | None = None  # a Step(n) in progress
        self._probe: ProbeRequest | None = None
        # one Divergence per streak: re-armed by a healthy step
        self._alarm_armed: dict[int, bool] = {}
        # LogToTensorBoard: every run's steps also go to TensorBoard event files
        self.tensorboard: TensorBoardRuns | None = None
        now = clock()
        self._last_flush = now
        self._next_snapshot = now
        main = build_run(config, run_id=0)
        self._install(main)
        self._emit_state("idle")

    # ------------------------------------------------------------------ properties

    @property
    def main(self) -> Run:
        return self.runs[0]

    @property
    def training(self) -> bool:
        return self.state == "training"

    def active_runs(self) -> list[Run]:
        return [r for rid, r in sorted(self.runs.items()) if not r.trainer.diverged]

    # ------------------------------------------------------------------ the loop

    def run(self, inbox: queue.Queue[Command], alive: Callable[[], bool] | None = None) -> None:
        """Serve ``inbox`` until ``Stop``, or until ``alive()`` (checked ~once a second,
        e.g. "is the GUI process still there") says no."""
        try:
            self._loop(inbox, alive)
        finally:
            self._close_tensorboard()

    def _loop(self, inbox: queue.Queue[Command], alive: Callable[[], bool] | None) -> None:
        next_check = self._clock() + ALIVE_CHECK_S
        while not self.stopped:
            if alive is not None and self._clock() >= next_check:
                next_check = self._clock() + ALIVE_CHECK_S
                if not alive():
                    self._stop(message="the GUI process is gone")
                    break
            if self.training:
                self._drain(inbox)
            else:
                self._flush_metrics()
                try:
                    command = inbox.get(timeout=IDLE_POLL_S)
                except queue.Empty:
                    continue
                self._dispatch(command)
                self._drain(inbox)
            self._serve_probe()
            if self.training and not self.stopped:
                self.train_round()

    def _drain(self, inbox: queue.Queue[Command]) -> None:
        while not self.stopped:
            try:
                command = inbox.get_nowait()
            except queue.Empty:
                return
            self._dispatch(command)

    def handle(self, command: Command) -> None:
        """One command, as the loop would handle it (a probe request is answered at once)."""
        self._dispatch(command)
        self._serve_probe()

    def run_until_idle(self, max_rounds: int = 1_000_000) -> int:
        """Train until the session stops training (a Step(n) finishes, a divergence); tests."""
        rounds = 0
        while self.training and rounds < max_rounds:
            self.train_round()
            rounds += 1
        return rounds

    def _dispatch(self, command: Command) -> None:
        if isinstance(command, ProbeRequest):
            self._probe = command  # only the newest pending one is served
            return
        try:
            self._handle(command)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.emit(Failure(user_message(exc), traceback.format_exc()))

    # ------------------------------------------------------------------ commands

    def _handle(self, command: Command) -> None:
        if isinstance(command, Start):
            self._steps_left = None
            self._set_training()
        elif isinstance(command, Pause):
            if self.training:
                self._pause()
        elif isinstance(command, Step):
            if command.n < 1:
                raise ConfigError(f"Step needs n >= 1, not {command.n}")
            self._steps_left = command.n
            self._set_training()
        elif isinstance(command, Reset):
            self._reset(command.config)
        elif isinstance(command, SetHyper):
            self._set_hyper(command)
        elif isinstance(command, Save):
            self._save(command.path)
        elif isinstance(command, Load):
            self._load(command.path)
        elif isinstance(command, OpenModel):
            self._open_model(command)
        elif isinstance(command, Rollback):
            self._rollback(command)
        elif isinstance(command, Fork):
            self._fork(command)
        elif isinstance(command, CloseRun):
            self._close(command.run_id)
        elif isinstance(command, Stop):
            self._stop()
        elif isinstance(command, LogToTensorBoard):
            self._log_to_tensorboard(command.path)
        else:
            raise TypeError(f"unknown command {command!r}")

    def _set_training(self) -> None:
        self._refuse_if_read_only("trained")
        for run in self.runs.values():  # every run trains together
            refusal = training_refusal(run.config.model)
            if refusal is not None:
                raise ConfigError(refusal)
        if not self.active_runs():
            self._steps_left = None
            raise ConfigError("every run has diverged: roll back or reset first")
        if not self.training:
            self.state = "training"
            self._emit_state("training")

    def _pause(self, message: str = "") -> None:
        self._steps_left = None
        self._flush_metrics()
        self.state = "paused"
        self._emit_state("paused", message=message)
        self._snapshot_all()
        if self.tensorboard is not None:
            self._guard_tensorboard(self.tensorboard.flush)

    def _stop(self, message: str = "") -> None:
        self._steps_left = None
        self._flush_metrics()
        self._close_tensorboard()
        self.state = "stopped"
        self.stopped = True
        self._emit_state("stopped", message=message)

    def _reset(self, config: RunConfig | None) -> None:
        old = self.main
        cfg = old.config if config is None else config
        if config is None and training_refusal(cfg.model) is not None:
            # a Reset trains a new model of the run's shape: of an opened bidirectional model
            # that is the one direction the language model trains
            cfg = cfg.replace(model={"bidirectional": False})
        corpus = old.corpus if same_corpus(cfg, old.config) else None
        main = build_run(cfg, corpus=corpus, run_id=0)
        forks = {}
        for rid, changes in self._fork_changes.items():
            fork_cfg = cfg.replace(**changes)
            forks[rid] = self._build_fork(fork_cfg, main, rid, self.runs[rid].label)
        # nothing raised: swap in
        self._pending.clear()
        self._install(main)
        for fork in forks.values():
            self._install(fork)
        self._after_change("reset")

    def _set_hyper(self, command: SetHyper) -> None:
        changes = {
            k: v
            for k, v in (
                ("lr", command.lr),
                ("clip_theta", command.clip_theta),
                ("clip_enabled", command.clip_enabled),
            )
            if v is not None
        }
        if not changes:
            return
        run = self.main
        new_config = run.config.replace(train=changes)  # validates
        run.trainer.set_hyper(
            lr=command.lr, clip_theta=command.clip_theta, clip_enabled=command.clip_enabled
        )
        run.config = new_config

    def _save(self, path: str) -> None:
        from rnnviz.core.checkpoint import save_run

        run = self.main
        save_run(path, run)
        self.emit(Saved(path, run.trainer.step))

    def _load(self, path: str) -> None:
        from rnnviz.core.checkpoint import load_checkpoint, restore_run

        ckpt = load_checkpoint(path)
        device = self.main.config.train.device
        run = restore_run(ckpt, device=device)  # raises before anything is replaced
        self._replace_main(run, "a checkpoint", f"loaded {path} at step {run.trainer.step}")

    def _replace_main(self, run: Run, what: str, message: str) -> None:
        """``run`` as the main run, paused; the compare runs of the old one are closed."""
        if self.training:
            self._pause()
        for rid in [r for r in self.runs if r != 0]:
            self._close(rid, message=f"closed: {what} replaced the main run")
        self._pending.clear()
        self._install(run)
        self._after_change("loaded", message=message)

    def _open_model(self, command: OpenModel) -> None:
        """The user's model as the main run, on the main run's corpus (encoded with the
        model's vocabulary: the saturation panel's validation batch) and training settings."""
        from rnnviz.core.torch_model import open_torch_model

        model, vocab = open_torch_model(command.path, command.spec)  # raises before a change
        main = self.main
        config = dataclasses.replace(main.config, model=model.config)
        run = build_run(
            config,
            corpus=main.corpus if same_corpus(config, main.config) else None,
            vocab=vocab,
            initial_params=model.state_dict(),
            label=f"opened: {os.path.basename(command.path)}",
        )
        run.opened = command.path
        self._replace_main(run, "an opened model", f"opened {command.path} (read-only)")

    def _refuse_if_read_only(self, what: str) -> None:
        if self.main.opened:
            one = " (one direction)" if self.main.config.model.bidirectional else ""
            raise ConfigError(
                f"the opened model {os.path.basename(self.main.opened)} is read-only and is "
                f"not {what}: Reset (Ctrl+R) trains a new model of its shape{one} on the corpus"
            )

    def _rollback(self, command: Rollback) -> None:
        self._refuse_if_read_only("rolled back")
        run = self._run(command.run_id)
        self._flush_metrics()
        step = run.trainer.rollback(command.step)
        if self.tensorboard is not None:
            self._guard_tensorboard(self.tensorboard.rolled_back, run, step)
        self._alarm_armed[run.run_id] = True
        if self.training:
            self._steps_left = None
            self.state = "paused"
        if self.state in ("idle", "diverged") or not self.active_runs():
            self.state = "paused"
        self._emit_state(self.state, run, message=f"rolled back to step {run.trainer.step}")
        self._snapshot(run)

    def _fork(self, command: Fork) -> None:
        self._refuse_if_read_only("compared with a changed copy")
        main = self.main
        config = main.config.replace(**command.changes)
        rid = self._next_run_id
        fork = self._build_fork(config, main, rid, command.label)
        self._next_run_id += 1
        self._fork_changes[rid] = command.changes
        self._install(fork)
        self._alarm_armed[rid] = True

    def _build_fork(self, config: RunConfig, main: Run, rid: int, label: str) -> Run:
        corpus = main.corpus if same_corpus(config, main.config) else None
        vocab = main.vocab if corpus is not None else None
        return build_run(
            config,
            corpus=corpus,
            vocab=vocab,
            initial_params=main.initial_params,
            run_id=rid,
            label=label or f"run {rid}",
        )

    def _close(self, run_id: int, message: str = "closed") -> None:
        if run_id == 0:
            raise ConfigError("the main run (0) cannot be closed")
        run = self._run(run_id)
        self._flush_metrics()
        del self.runs[run_id]
        self._fork_changes.pop(run_id, None)
        self._pending.pop(run_id, None)
        self._alarm_armed.pop(run_id, None)
        if self.tensorboard is not None:
            self._guard_tensorboard(self.tensorboard.close_run, run_id)
        self.emit(
            StateChanged("stopped", run.trainer.step, run.trainer.epoch, run_id, message=message)
        )

    def _run(self, run_id: int) -> Run:
        try:
            return self.runs[run_id]
        except KeyError:
            raise ConfigError(f"there is no run {run_id}") from None

    # ------------------------------------------------------------------ runs

    def _install(self, run: Run) -> None:
        self.runs[run.run_id] = run
        self._pending[run.run_id] = []
        self.emit(
            RunInfo(
                run_id=run.run_id,
                config=run.config,
                vocab_tokens=run.vocab.tokens,
                corpus_name=run.corpus.name,
                corpus_chars=len(run.corpus.text),
                param_names=tuple(n for n, _ in run.model.named_grad_params()),
                label=run.label,
                notes=(*run.corpus.notes, *run.batches.notes),
                opened=run.opened,
            )
        )
        self._snapshot(run)

    def _after_change(self, what: str, message: str = "") -> None:
        self._steps_left = None
        self.state = "idle" if what == "reset" else "paused"
        self._emit_state(self.state, message=message)

    # ------------------------------------------------------------------ training

    def train_round(self) -> None:
        """One optimizer step of every active run; then metrics, snapshots, state."""
        runs = self.active_runs()
        if not runs:
            self._pause()
            return
        problems: list[tuple[Run, StepRecord, str]] = []
        newly_diverged: list[Run] = []
        for run in runs:
            try:
                record = run.trainer.train_step()
            except Exception as exc:
                self._fail(exc)
                self._pause(message="paused after an error")
                return
            self._pending[run.run_id].append(record)
            if self.tensorboard is not None:
                self._guard_tensorboard(self.tensorboard.write, run, record)
            reason = self._problem(run, record)
            if reason:
                if self._alarm_armed.get(run.run_id, True):
                    problems.append((run, record, reason))
                self._alarm_armed[run.run_id] = False
            else:
                self._alarm_armed[run.run_id] = True
            if run.trainer.diverged:
                newly_diverged.append(run)
        if self._steps_left is not None:
            self._steps_left -= 1
        now = self._clock()
        if problems or newly_diverged:
            self._flush_metrics()
        for run, record, reason in problems:
            self.emit(
                Divergence(
                    run_id=run.run_id,
                    step=record.step,
                    reason=reason,
                    loss=record.loss,
                    grad_norm_before_clip=record.grad_norm_before_clip,
                    likely_cause=likely_cause(record, run.config.train.optimizer, reason),
                    rollback_steps=rollback_steps(run),
                    recent_median_loss=(
                        run.trainer.last_spike_median if reason == "loss_spike" else None
                    ),
                )
            )
        for run in newly_diverged:
            self._emit_state(
                "diverged", run, message="training stopped: too many non-finite steps in a row"
            )
            self._snapshot(run)
        if problems or not self.active_runs():
            self._pause(message="paused: training diverged" if problems else "")
        elif self._steps_left is not None and self._steps_left <= 0:
            self._pause()
        else:
            if now - self._last_flush >= self.batch_interval_s:
                self._flush_metrics()
            if now >= self._next_snapshot:
                self._snapshot_all()

    def _problem(self, run: Run, record: StepRecord) -> str:
        if record.nonfinite:
            return "nonfinite"
        if run.trainer.last_spike:
            return "loss_spike"
        return ""

    def _flush_metrics(self) -> None:
        self._last_flush = self._clock()
        for rid, records in self._pending.items():
            if records:
                self.emit(MetricsBatch(rid, tuple(records)))
                self._pending[rid] = []

    def _snapshot_all(self) -> None:
        start = self._clock()
        for run in self.runs.values():
            self._snapshot(run)
        cost = self._clock() - start
        # copying big models must not eat the training time: at most ~10 % of it
        self._next_snapshot = self._clock() + max(self.snapshot_interval_s, 10 * cost)

    def _snapshot(self, run: Run) -> None:
        self.emit(
            ParamSnapshot(
                run_id=run.run_id,
                step=run.trainer.step,
                config=run.config,
                vocab_tokens=run.vocab.tokens,
                params=params_to_numpy(run.model),
            )
        )

    def _emit_state(self, state: SessionState, run: Run | None = None, message: str = "") -> None:
        run = run if run is not None else self.main
        self.emit(StateChanged(state, run.trainer.step, run.trainer.epoch, run.run_id, message))

    # ------------------------------------------------------------------ TensorBoard

    def _log_to_tensorboard(self, path: str | None) -> None:
        from rnnviz.core.atomic import OutputPathError
        from rnnviz.core.tensorboard_log import (
            FAILURE_PREFIX,
            TensorBoardRuns,
            TensorBoardUnavailable,
        )

        self._close_tensorboard()
        if path is not None:
            try:
                self.tensorboard = TensorBoardRuns(path)
            except (TensorBoardUnavailable, OutputPathError) as exc:
                raise ConfigError(f"{FAILURE_PREFIX}: {exc}") from None

    def _guard_tensorboard(self, action: Callable[..., None], *args: Any) -> None:
        """``action(*args)`` on the logs; one that fails ends the logging, never the training."""
        try:
            action(*args)
        except Exception as exc:
            board, self.tensorboard = self.tensorboard, None
            if board is not None:
                with contextlib.suppress(Exception):
                    board.close()
            from rnnviz.core.tensorboard_log import FAILURE_PREFIX

            message = f"{FAILURE_PREFIX} logging stopped: {user_message(exc)}"
            self.emit(Failure(message, traceback.format_exc()))

    def _close_tensorboard(self) -> None:
        board = self.tensorboard
        if board is not None:
            self._guard_tensorboard(board.close)
            self.tensorboard = None

    # ------------------------------------------------------------------ probes

    def _serve_probe(self) -> None:
        request, self._probe = self._probe, None
        if request is None:
            return
        try:
            run = self._run(request.run_id)
            result = probe(run.model, run.vocab, request.text, top_k=request.top_k)
            self.emit(ProbeReply(request.request_id, request.run_id, result))
        except Exception as exc:
            self._fail(exc)


def rollback_steps(run: Run) -> tuple[int, ...]:
    """The steps the trainer can roll back to (its kept good snapshots)."""
    return tuple(int(s) for s in run.trainer.snapshot_steps())


def engine_main(inbox: Any, outbox: Any, config: RunConfig) -> None:
    """Target of the engine process: one torch thread, a session on these queues."""
    torch.set_num_threads(1)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            # 40 ms: the GUI's panels redraw once per metric batch, so this keeps them above
            # 20 Hz (a batch closes at the first step boundary after the interval)
            session = Session(config, emit=outbox.put, batch_interval_s=ENGINE_BATCH_INTERVAL_S)
        except Exception as exc:
            outbox.put(Failure(user_message(exc), traceback.format_exc(), fatal=True))
            return
        parent = multiprocessing.parent_process()  # None when not a child process
        try:
            session.run(inbox, alive=None if parent is None else parent.is_alive)
        except Exception as exc:  # the loop itself broke: say so before the process ends
            outbox.put(Failure(user_message(exc), traceback.format_exc(), fatal=True))
        if parent is not None and not parent.is_alive():
            # nobody reads the outbox any more: do not wait on its pipe at exit
            cancel = getattr(outbox, "cancel_join_thread", None)
            if cancel is not None:
                cancel()
    if multiprocessing.parent_process() is not None:
        _exit_at_once(outbox)


def _exit_at_once(outbox: Any) -> None:
    """End the engine process now that its work is done: every checkpoint was written (and
    renamed) while its command was served, and what it sent is flushed to the pipe here.
    The interpreter's shutdown walked every object torch made (py-spy: gc_collect_main),
    2.3 s of a Stop; then module teardown 0.4 s more. Nothing here needs a finaliser."""
    gc.freeze()
    with contextlib.suppress(Exception):
        outbox.close()
        outbox.join_thread()  # what was put reaches the reader (a no-op once cancelled)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)

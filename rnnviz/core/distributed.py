"""Data-parallel training under torchrun: every process trains its rows of each batch.

``torchrun --nproc-per-node N -m rnnviz train ...`` starts N copies of the train command, with
WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT in their
environment. Each builds the same run (same seed: same corpus, vocabulary, initial parameters
and batch order; :meth:`DataParallel.attach` checks it), takes a contiguous share of the rows of
every batch (:class:`ShardedBatches`), and right after its forward and backward pass
:class:`AllReduce` combines the shares into the whole batch's mean loss and mean gradient, each
share weighted by its token count. That happens before the gradient norm, so ‖g‖ before
clipping, the clipping, the non-finite guards and the update are those of one process training
on the whole batch, and every process applies the same update to the same parameters.

The carried hidden state (sequential partitioning) belongs to rows: each process carries its own
rows', as one process would carry them; for a checkpoint they are gathered into one state, so
the file is an ordinary one. Validation is split the same way and its sums added up.

gloo on CPUs, nccl on CUDA GPUs (one GPU a process, cuda:LOCAL_RANK). Rank 0 alone writes files
and progress (the CLI's business); the others train silently. With WORLD_SIZE unset or 1
nothing here is used and no process group is made.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from rnnviz.core.batches import Batches
from rnnviz.core.config import ConfigError
from rnnviz.core.model import State

if TYPE_CHECKING:
    from rnnviz.core.runs import Run
    from rnnviz.core.trainer import Trainer


@dataclass(frozen=True)
class Launch:
    """This process's place among torchrun's processes."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(env: Mapping[str, str], name: str, default: int | None) -> int:
    text = env.get(name)
    if text is None or not text.strip():
        if default is None:
            raise ConfigError(
                f"WORLD_SIZE is set but {name} is not: start the processes with torchrun"
            )
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} in the environment is not an integer") from None


def launch_from_env(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch torchrun describes in the environment; None for a single process."""
    env = os.environ if environ is None else environ
    world = _env_int(env, "WORLD_SIZE", 1)
    if world <= 1:
        return None
    rank = _env_int(env, "RANK", None)
    local_rank = _env_int(env, "LOCAL_RANK", 0)
    local_world = _env_int(env, "LOCAL_WORLD_SIZE", 1)
    if not 0 <= rank < world or not 0 <= local_rank < max(local_world, 1):
        raise ConfigError(
            f"RANK={rank}, LOCAL_RANK={local_rank} do not fit WORLD_SIZE={world}, "
            f"LOCAL_WORLD_SIZE={local_world}"
        )
    return Launch(rank, world, local_rank, local_world)


def device_for(launch: Launch, device: str) -> str:
    """The device this process trains on: ``cuda`` means its own GPU, cuda:LOCAL_RANK."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return "cpu"
    if dev.type == "cuda":
        if dev.index is None:
            return f"cuda:{launch.local_rank}"
        if launch.local_world_size > 1:
            raise ConfigError(
                f"device {device!r}: the {launch.local_world_size} processes on this machine "
                "each take their own GPU (cuda:LOCAL_RANK); give the device as cuda"
            )
        return device
    raise ConfigError(
        f"device {device!r}: data-parallel training runs on cpu (gloo) or cuda (nccl) only"
    )


def backend_for(device: str) -> str:
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def check_batch_size(launch: Launch, batch_size: int) -> None:
    if batch_size % launch.world_size:
        raise ConfigError(
            f"batch size {batch_size} does not divide among the {launch.world_size} processes "
            "(WORLD_SIZE): each takes an equal share of every batch's rows; give a multiple "
            f"of {launch.world_size}"
        )


def shard_bounds(rows: int, rank: int, world: int) -> tuple[int, int]:
    """Rows [lo, hi) of a ``rows``-row batch that process ``rank`` of ``world`` takes.

    Contiguous and as even as can be (the first ``rows % world`` take one more): a batch whose
    rows do not divide evenly is an epoch's short last one, and the token-weighted reduction
    keeps even that exact.
    """
    base, extra = divmod(rows, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class ShardedBatches:
    """One process's rows of every batch of ``source``; every process sees the same batch
    order (it is a pure function of the seed), so the shares make up the whole batch."""

    def __init__(self, source: Batches, rank: int, world: int) -> None:
        self.source = source
        self.rank = rank
        self.world = world

    @property
    def steps_per_epoch(self) -> int:
        return self.source.steps_per_epoch

    def batch(self, epoch: int, index: int) -> tuple[Tensor, Tensor]:
        X, Y = self.source.batch(epoch, index)
        lo, hi = shard_bounds(X.shape[0], self.rank, self.world)
        return X[lo:hi], Y[lo:hi]

    def continues_state(self, index: int) -> bool:
        # row r of this share continues row r of the previous batch's share: the rows of a
        # sequential batch are the same streams every batch, and so are their shares
        return self.source.continues_state(index)

    def val_batches(self) -> list[tuple[Tensor, Tensor]]:
        shares = []
        for X, Y in self.source.val_batches():
            lo, hi = shard_bounds(X.shape[0], self.rank, self.world)
            if hi > lo:  # a short last batch may leave a process none of its rows
                shares.append((X[lo:hi], Y[lo:hi]))
        return shares


class AllReduce:
    """The trainer's GradReducer across the process group (see ``Trainer.reducer``)."""

    def __init__(self, world: int, device: torch.device) -> None:
        self.world = world
        self.device = device

    def reduce_step(
        self, loss: float, tokens: int, grad_flow: np.ndarray, params: list[Tensor]
    ) -> tuple[float, int, np.ndarray]:
        grads = [p.grad for p in params]
        have = all(g is not None for g in grads)
        # One reduction of the small numbers first: the global token count N weights the
        # gradients, and whether every process has gradients and a finite loss decides, the
        # same way everywhere, whether the gradient reduction happens at all (a process that
        # skipped its backward pass must not leave the others waiting in it).
        # Global mean loss = sum_r n_r L_r / N. Grad flow averages ||dL/dH_t|| over rows, where
        # a row of share r has dL/dH = (n_r/N) dL_r/dH, so global = sum_r (n_r/N)^2 flow_r.
        flow = torch.as_tensor(np.asarray(grad_flow, dtype=np.float64))
        head = torch.tensor(
            [tokens * loss, float(tokens), 1.0 if have else 0.0], dtype=torch.float64
        )
        stats = torch.cat([head, flow * float(tokens) ** 2]).to(self.device)
        dist.all_reduce(stats)
        stats = stats.cpu()
        total_tokens = float(stats[1])
        global_loss = float(stats[0]) / total_tokens
        global_flow = (stats[3:] / total_tokens**2).numpy()
        if not (math.isfinite(global_loss) and int(stats[2]) == self.world):
            # the step is skipped on every process, as one process skips a non-finite loss
            for p in params:
                p.grad = None
            return global_loss, round(total_tokens), global_flow
        present = [g for g in grads if g is not None]
        flat = torch.cat([g.reshape(-1) for g in present]).mul_(tokens / total_tokens)
        dist.all_reduce(flat)
        offset = 0
        for g in present:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n
        return global_loss, round(total_tokens), global_flow

    def reduce_sums(self, total: float, count: int) -> tuple[float, int]:
        sums = torch.tensor([total, float(count)], dtype=torch.float64, device=self.device)
        dist.all_reduce(sums)
        return float(sums[0]), round(float(sums[1]))


class PeerFailed(Exception):
    """Another process failed (and says why itself); this one stops too."""


class DataParallel:
    """The process group of one launch, from ``with`` to its end (destroyed on error too)."""

    def __init__(self, launch: Launch, device: str) -> None:
        self.launch = launch
        self.device = torch.device(device)
        self.backend = backend_for(device)

    def __enter__(self) -> DataParallel:
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group(
            self.backend, rank=self.launch.rank, world_size=self.launch.world_size
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    @contextlib.contextmanager
    def setup(self) -> Iterator[None]:
        """Every process learns whether any failed in the block, so none waits for another
        that has gone. A failure shows once: rank 0's, else the failing process's own;
        the others raise :class:`PeerFailed`. The block must not communicate: a process
        that failed early would be exchanging its failure while the others wait in that."""
        try:
            yield
        except BaseException:
            failed = self._failures(True)
            if self.launch.is_main or not failed[0]:
                raise
            raise PeerFailed("rank 0 failed to set up") from None
        failed = self._failures(False)
        if any(failed):
            ranks = ", ".join(str(r) for r, f in enumerate(failed) if f)
            raise PeerFailed(f"rank {ranks} failed to set up")

    def _failures(self, failed: bool) -> list[bool]:
        mine = torch.tensor([1 if failed else 0], dtype=torch.int64, device=self.device)
        every = [torch.zeros_like(mine) for _ in range(self.launch.world_size)]
        dist.all_gather(every, mine)
        return [bool(t.item()) for t in every]

    def check_rows(self, run: Run) -> None:
        """Every batch of ``run`` has a row for each process (no communication: it may run
        inside :meth:`setup`, whose failure exchange must be the only collective there)."""
        world = self.launch.world_size
        source = run.batches
        # all batches but an epoch's last have the same rows, in every epoch
        last = source.steps_per_epoch - 1
        fewest = min(source.batch(0, 0)[0].shape[0], source.batch(0, last)[0].shape[0])
        if fewest < world:
            raise ConfigError(
                f"a batch of this run has {fewest} rows, fewer than the {world} processes: "
                "use a longer text, fewer processes, or a batch size that fills every batch"
            )

    def attach(self, run: Run) -> None:
        """Make ``run``'s trainer train this process's share, after checking that every
        process built the same run. Every process must call it, after :meth:`setup`."""
        self._check_same(run)
        world = self.launch.world_size
        run.trainer.batches = ShardedBatches(run.batches, self.launch.rank, world)
        run.trainer.reducer = AllReduce(world, self.device)

    def _check_same(self, run: Run) -> None:
        """The processes must agree on corpus, vocabulary and initial parameters, or the
        gradients they add up belong to different models. All find out alike: rank 0 says
        it, the others raise :class:`PeerFailed`."""
        values = [float(len(run.vocab)), float(len(run.ids)), float(run.ids.sum())]
        with torch.no_grad():
            for p in run.model.parameters():
                q = p.detach().double()
                values += [float(q.sum()), float((q * q).sum())]
        mine = torch.tensor(values, dtype=torch.float64, device=self.device)
        low, high = mine.clone(), mine.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if not torch.equal(low, high):
            if not self.launch.is_main:
                raise PeerFailed("the processes built different runs")
            raise ConfigError(
                "the processes built different runs (corpus, vocabulary or initial "
                "parameters differ): give every process the same corpus, seed and versions"
            )

    def gather_carried(self, trainer: Trainer, interrupted: bool) -> None:
        """Every process: the carried state of all rows, in row order, for the checkpoint.

        After an interrupt the others may be gone: the state is dropped instead (a resumed
        run then starts its next batch from zeros, a valid checkpoint all the same)."""
        if trainer.carried is None:  # None on every process alike (epoch ends, bad steps)
            return
        if interrupted:
            trainer.carried = None
            return
        carried: State = trainer.carried
        if isinstance(carried, tuple):
            trainer.carried = (self._gather_rows(carried[0]), self._gather_rows(carried[1]))
        else:
            trainer.carried = self._gather_rows(carried)

    def _gather_rows(self, state: Tensor) -> Tensor:
        if state.dim() == 3:  # stacked layers' (L, B, H): the rows are dim 1
            rows = self._gather_first(state.transpose(0, 1).contiguous())
            return rows.transpose(0, 1).contiguous()
        return self._gather_first(state)

    def _gather_first(self, t: Tensor) -> Tensor:
        """Every process's ``t``, concatenated along dim 0 in rank order."""
        world = self.launch.world_size
        count = torch.tensor([t.shape[0]], dtype=torch.int64, device=self.device)
        counts = [torch.zeros_like(count) for _ in range(world)]
        dist.all_gather(counts, count)
        sizes = [int(c.item()) for c in counts]
        padded = t.new_zeros((max(sizes), *t.shape[1:]))
        padded[: t.shape[0]] = t
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])

    def agree_status(self, status: int) -> int:
        """Rank 0's exit status on every process (it alone knows whether its writes failed)."""
        value = torch.tensor([status], dtype=torch.int64, device=self.device)
        dist.broadcast(value, src=0)
        return int(value.item())

"""Data parallelism with ``torch.distributed``: torchrun detection, the process group, sharding, gathering.

``hqdm train`` and ``hqdm sample`` run unchanged under ``torchrun``: :func:`join_process_group` reads the
variables torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), picks the backend from the device
(NCCL for CUDA, gloo otherwise), and returns a :class:`DistContext` that the trainer and the samplers use
for the few collectives they need. Without torchrun (or with one process) the context is a no-op, so the
single-process code path is unchanged.

Sharding is always "contiguous, as even as possible": rank ``r`` of ``W`` gets items
``[r*n//W, (r+1)*n//W)`` of a global batch of ``n``, so concatenating the ranks' shards in rank order
gives back the global batch.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "DistContext",
    "DistributedError",
    "TorchrunEnv",
    "backend_for",
    "current_context",
    "exit_without_teardown",
    "is_main_process",
    "join_process_group",
    "leave_process_group",
    "shard_bounds",
    "torchrun_env",
]

# Rank 0 alone draws sample grids and writes checkpoints while the others wait in a barrier; a long
# 1000-step DDPM grid of a hybrid model must not trip the collective timeout (NCCL's default is 10 min).
# A crashed rank is still noticed at once: torchrun stops the whole job when one worker fails.
COLLECTIVE_TIMEOUT = timedelta(hours=3)


class DistributedError(RuntimeError):
    """The torchrun environment or a distributed setting cannot work (e.g. a batch that does not split)."""


@dataclass(frozen=True)
class TorchrunEnv:
    rank: int
    world_size: int
    local_rank: int


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as err:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer") from err


def torchrun_env() -> TorchrunEnv | None:
    """The rank layout torchrun (or any launcher setting the same variables) put in the environment."""
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if rank is None and world is None:
        return None
    if rank is None or world is None:
        raise DistributedError(
            "RANK and WORLD_SIZE must be set together; launch with torchrun (or unset both for one process)"
        )
    if world < 1 or not 0 <= rank < world:
        raise DistributedError(f"RANK={rank} and WORLD_SIZE={world} do not describe a valid process layout")
    return TorchrunEnv(rank, world, local if local is not None else 0)


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of rank ``rank``'s contiguous share of ``n`` items."""
    return rank * n // world_size, (rank + 1) * n // world_size


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; every collective is a no-op when ``world_size == 1``."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def bounds(self, n: int) -> tuple[int, int]:
        return shard_bounds(n, self.rank, self.world_size)

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def sum(self, value: float, device: torch.device) -> float:
        """Sum of ``value`` over all ranks (the same result on every rank)."""
        if not self.is_distributed:
            return value
        buf = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(buf)
        return float(buf.item())

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if ``flag`` is true on at least one (e.g. a time limit hit by one rank)."""
        return self.sum(float(flag), device) > 0

    def gather_to_main(self, shard: Tensor) -> Tensor | None:
        """Concatenate every rank's ``shard`` (any lengths along dim 0) in rank order; None off rank 0."""
        if not self.is_distributed:
            return shard
        lengths = torch.tensor([shard.shape[0]], dtype=torch.int64, device=shard.device)
        all_lengths = [torch.zeros_like(lengths) for _ in range(self.world_size)]
        dist.all_gather(all_lengths, lengths)
        sizes = [int(x.item()) for x in all_lengths]
        # all_gather needs equal shapes: pad to the longest shard, trim afterwards
        padded = shard.new_zeros((max(sizes), *shard.shape[1:]))
        padded[: shard.shape[0]] = shard
        pieces = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(pieces, padded)
        if not self.is_main:
            return None
        return torch.cat([piece[:size] for piece, size in zip(pieces, sizes, strict=True)])


def _context_of_group() -> DistContext:
    return DistContext(dist.get_rank(), dist.get_world_size())


def current_context() -> DistContext:
    """The live process group's context, or the single-process one when there is none."""
    if dist.is_available() and dist.is_initialized():
        return _context_of_group()
    return DistContext()


def _process_device(device: torch.device, env: TorchrunEnv | None) -> torch.device:
    """Under torchrun, each process on a node drives its own GPU: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
    if device.type != "cuda" or env is None:
        return device
    if env.local_rank >= torch.cuda.device_count():
        raise DistributedError(
            f"LOCAL_RANK={env.local_rank} but this node has {torch.cuda.device_count()} CUDA device(s); "
            "start at most one process per GPU (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", env.local_rank)


def join_process_group(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join (or create) the job's process group; return this process's context and device.

    * a process group that already exists (created earlier in this process, or by a caller) is used;
    * under torchrun with more than one process, the default group is created here (NCCL for CUDA
      devices, gloo otherwise) and lives until :func:`leave_process_group` or the process exits. It is
      created once per process because ``hqdm demo`` trains, then samples, and a second group created in
      the same process after the first was destroyed was seen to hang (the first one leaves its keys in
      torchrun's store);
    * otherwise this is a single-process run and nothing is initialised.
    """
    if dist.is_available() and dist.is_initialized():
        return _context_of_group(), _process_device(device, torchrun_env())
    env = torchrun_env()
    if env is None or env.world_size == 1:
        return DistContext(), device
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed; run with a single process")
    device = _process_device(device, env)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend_for(device),
        rank=env.rank,
        world_size=env.world_size,
        timeout=COLLECTIVE_TIMEOUT,
        device_id=device if device.type == "cuda" else None,
    )
    atexit.register(_destroy_process_group)  # after a failure: no barrier, a peer may be gone
    return _context_of_group(), device


def leave_process_group() -> bool:
    """End this process's part in the job after its work succeeded: wait for every rank, then destroy.

    Call it last, on every rank (``hqdm`` commands do); it returns whether there was a group to leave (a
    no-op without one). Gloo's barrier waits for the collectives in flight on every rank first, so no
    rank tears down while a peer still talks to it.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        _destroy_process_group()
        return True
    return False


def exit_without_teardown(code: int) -> NoReturn:
    """Exit now with ``code``: flush Python's streams and logging, skip the interpreter's teardown.

    For a rank of a distributed job whose work is written and whose group is left. Even after
    :func:`leave_process_group`, a two-process gloo job aborted 3 times in 88 runs beside busy processes
    ("terminate called without an active exception", SIGABRT, after all its outputs were written, with no
    Python frame left on the main thread): a C++ thread of the process group was still joinable when
    interpreter teardown destroyed it. Exiting without the teardown: 0 aborts in 60 runs
    (docs/scaling.md). Nothing of hqdm's needs the teardown: its commands close their files and progress
    bars themselves.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Whether this process reports for the job: rank 0 of the live group, else per torchrun's ``RANK``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    env = torchrun_env()
    return env is None or env.rank == 0

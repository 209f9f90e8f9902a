"""torchrun support: the same ``train`` command runs data-parallel when launched by torchrun.

torchrun sets WORLD_SIZE / RANK / LOCAL_RANK; we then join a process group
(gloo on CPU, nccl on GPU), wrap the model in DistributedDataParallel and give
each rank a disjoint share of every epoch's permutation. Only rank 0 writes
checkpoints, logs and plots.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass
class DistContext:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_min(self, value: int) -> int:
        """The smallest of an integer across ranks (keeps collective step counts equal)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.long)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def all_any(self, flag: bool) -> bool:
        """True on every rank if any rank says True (e.g. 'stop now')."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.long)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


def init_distributed(device: torch.device) -> DistContext:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    ctx = DistContext(world, dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")))
    log.info("distributed training: rank %d of %d (%s)", ctx.rank, ctx.world_size, backend)
    return ctx


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA was asked for but no GPU is available")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def leave_process(code: int) -> NoReturn:
    """A follower rank's last step (train, retrain): flush what it printed and logged, then end at once.

    Why not a normal exit: in 2 of 20 runs of tests/test_retrain_ddp.py a follower that had finished
    its work and left the process group aborted in the interpreter's teardown ("terminate called
    without an active exception", SIGABRT): a native thread of the distributed stack was still
    joinable when C++ statics were destroyed (pytorch/pytorch#179291 describes the gloo case), and
    torchrun reported the job as failed although it had succeeded. A follower has nothing left to
    save (rank 0 alone writes checkpoints, the model, the store and the job's log), so skipping the
    teardown loses nothing.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe: nothing more can reach it anyway
            pass
    os._exit(code)

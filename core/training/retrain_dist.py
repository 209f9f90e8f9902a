"""The retraining job under torchrun: rank 0 runs the job, every rank trains.

    torchrun --nproc_per_node 2 main.py retrain --db URL --benchmark DATASET --user SUPERVISOR ...

The same command as on one process. Exactly one process, rank 0, touches the
store: it reaps dead jobs, creates and starts the job row, exports the
corrections, reports progress, installs and registers the candidate, runs the
gate and finishes the job, all through :func:`core.training.retrain.run_retrain`
as on a single process. The other ranks never open the store: they wait for
rank 0's word, which is either the fine-tuning run's ``TrainConfig`` (then they
train the same model with it, data-parallel, and exit) or a stop (refused,
nothing to do, bad input, a failure before training: they exit at once).

Why this shape: the job's decisions (refusal, "never two jobs at once", the
export and its lineage) must be taken once, and a store write from every rank
would duplicate job rows and audit events. The followers need only what the
export wrote (``DATA_DIR/jobs/job-N/dataset``) and the active model's file, so
on several machines the data directory must be shared storage mounted at the
same path; the config carries absolute paths for that reason.

Nothing may hang: every way rank 0 leaves the command before training sends the
stop (:meth:`Leader.release`, called from a ``finally``), and the process group
has a timeout (``--dist-timeout``) as a safety net for a rank that died without
a word. Exit codes: rank 0's are the job's (see ``core.cli.retrain``). The
other ranks exit 0 when told to stop and when their training ended, even in
failure (rank 0's next collective step then fails and it records the job as
failed; a follower's non-zero exit would make torchrun stop rank 0 within
0.1 s, possibly while it records that); 1 only when rank 0 never spoke (dead or
stuck: then torchrun stopping it is what is wanted).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from core.training.distributed import resolve_device

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MIN = 30.0   # covers rank 0's export of a large set of corrections before training starts


@dataclass
class Cluster:
    """This process's place in the job's process group, and the group for the job's own messages."""
    rank: int
    world_size: int
    local_rank: int
    backend: str
    control: Any = None      # a gloo group for Python objects when training runs on nccl; None: the default group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        """Leave the process group (a no-op once the trainer has left it)."""
        if dist.is_initialized():
            dist.destroy_process_group()


def start_cluster(device_name: str, timeout_min: float = DEFAULT_TIMEOUT_MIN) -> Cluster:
    """Join torchrun's process group before anything else, so that every rank can be told what to do.

    The trainer's ``init_distributed`` finds the group already there and uses it.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = dt.timedelta(minutes=timeout_min)
    dist.init_process_group(backend=backend, timeout=timeout)
    # nccl carries CUDA tensors only; the job's messages are small Python objects on the CPU.
    control = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    cluster = Cluster(dist.get_rank(), dist.get_world_size(), local_rank, backend, control)
    log.info("retrain: rank %d of %d (%s)", cluster.rank, cluster.world_size, backend)
    return cluster


def _send(cluster: Cluster, message: dict) -> None:
    dist.broadcast_object_list([message], src=0, group=cluster.control)


def _receive(cluster: Cluster) -> dict:
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0, group=cluster.control)
    return box[0]


class Leader:
    """Rank 0's side: trains with the others once the job is ready, or releases them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.sent = False

    def train(self, config, progress) -> dict:  # noqa: ANN001 - retrain's TrainConfig and _Progress
        """Stands in for ``core.training.retrain._train``: the same run, on every rank."""
        from core.training.retrain import _train  # noqa: PLC0415 - retrain imports this module's user

        payload = config.to_dict()
        for key in ("data", "out", "init_from"):   # the followers may run elsewhere on the shared storage
            if payload.get(key):
                payload[key] = str(Path(payload[key]).resolve())
        self.sent = True  # set first: a failed send must not be followed by a stop the others never read
        _send(self.cluster, {"kind": "train", "config": payload})
        log.info("training on %d processes (%s backend), data-parallel; this process (rank 0) reports",
                 self.cluster.world_size, self.cluster.backend)
        try:
            result = _train(config, progress)
        finally:
            # The trainer leaves the group itself; this covers a failure before it joined, so
            # that the others see the connection close instead of waiting for the timeout.
            self.cluster.close()
        return {**result, "world_size": self.cluster.world_size}

    def release(self, reason: str) -> None:
        """Tell the others to stop if they were never told to train, then leave the group. Never raises."""
        try:
            if not self.sent:
                self.sent = True
                _send(self.cluster, {"kind": "stop", "reason": reason})
                # Both sides meet once more: the stop has arrived before the group goes away.
                dist.barrier(group=self.cluster.control)
        except Exception as exc:  # noqa: BLE001 - a follower already gone: nothing left to release
            log.warning("could not release the other ranks (%s: %s)", type(exc).__name__, exc)
        finally:
            self.cluster.close()


def follow(cluster: Cluster) -> int:
    """A rank other than 0: wait for rank 0's word, train if told to, and exit (see the module docstring)."""
    from core.training.config import TrainConfig  # noqa: PLC0415
    from core.training.trainer import Trainer  # noqa: PLC0415 - torch-heavy, only on this path

    try:
        try:
            message = _receive(cluster)
        except Exception as exc:  # noqa: BLE001 - rank 0 died or is stuck: 1, so that torchrun stops it
            log.error("rank %d: no word from rank 0 (%s: %s)", cluster.rank, type(exc).__name__, exc)
            return 1
        if message.get("kind") != "train":
            log.info("rank %d: rank 0 ended the job before training: %s", cluster.rank, message.get("reason"))
            try:
                dist.barrier(group=cluster.control)
            except Exception:  # noqa: BLE001, S110 - rank 0 already left: the stop has arrived all the same
                pass
            return 0
        config = TrainConfig.from_dict(message["config"])
        log.info("rank %d: training with rank 0 (%d processes)", cluster.rank, cluster.world_size)
        try:
            result = Trainer(config).run()
        except Exception as exc:  # noqa: BLE001
            # Leaving the group breaks rank 0's next collective step, so rank 0 fails the job
            # with its log; exit 0 here, since a non-zero exit makes torchrun stop rank 0 at once,
            # possibly in the middle of recording that failure.
            log.error("rank %d: training failed (%s: %s); rank 0 records the job as failed", cluster.rank,
                      type(exc).__name__, exc)
            return 0
        log.info("rank %d: training ended at step %d%s", cluster.rank, result["step"],
                 " (stopped)" if result.get("interrupted") else "")
        return 0
    finally:
        cluster.close()

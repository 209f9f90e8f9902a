"""The trainer: traditional training or the over-sampling strategy (DOAM-O) and its variants.

One loop for every arch. Each step trains on a batch and scores its images by
their per-image losses (the detector contract returns them); the sample pool
(``core.training.sampling``) keeps the hard (or easy, or random) entries of a
cycle and retrains them at the end of it (``pool_period`` steps, or one epoch).

Resumable: ``checkpoint.pt`` is written every ``checkpoint_every_s`` seconds,
at each epoch's end and on SIGINT/SIGTERM; running the same command again
continues from it, training clock included. Deterministic on CPU for a seed:
every sample's augmentation is seeded by (seed, epoch, index), whatever the
number of data workers.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from core.classes import NUM_CLASSES
from core.training import branching
from core.training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from core.training.compiled import check_compiler, compile_raw_forward, compiled_forward
from core.training.config import TrainConfig
from core.training.distributed import DistContext, init_distributed, resolve_device, shutdown_distributed
from core.training.runlog import RunLog
from core.training.sampling import SamplePool

# Settings a resumed run must share with its checkpoint: any other value makes it another run
# (another model, data, or mix of scenes), which belongs in another --out.
_RESUME_MUST_MATCH = ("arch", "attention", "strategy", "data", "seed", "batch_size", "crop", "occluded_repeat",
                      "occluded_from", "occluded_start")
_CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

# Detector options that change how a model trains, not its parameters: the only ones that may be
# set on a model started from a file (--init-from), e.g. to fine-tune it with the map loss.
TRAINING_ONLY_OPTIONS: tuple[str, ...] = ("attention_loss_weight",)

log = logging.getLogger(__name__)


class SeededDataset(Dataset):
    """Seeds each sample's random augmentation by (seed, epoch, index): the same data whatever
    the workers, the ranks or an interruption in between."""

    def __init__(self, base: Dataset, seed: int) -> None:
        self.base = base
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch * 100_003 + int(index)) % (2**63))
            return self.base[index]


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.cfg = config
        self.stop_requested = False
        self.dist = DistContext()

    # ---- set-up -----------------------------------------------------------------------
    def _build(self) -> None:
        from core.data.dataset import OPIXrayDataset, collate_fn, default_transforms  # noqa: PLC0415
        from core.models.build import build_detector  # noqa: PLC0415

        cfg = self.cfg
        self.device = resolve_device(cfg.device)
        self.dist = init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        torch.manual_seed(cfg.seed)
        if cfg.init_from:
            self.model = self._model_from_file().to(self.device)
        else:
            options = dict(cfg.model_options)
            if cfg.strategy == "focal" and cfg.arch != "fast":
                # F is traditional sampling with a focal classification loss; only the fast detector
                # has one (its CenterNet heat-map loss), the others would silently train as T.
                raise ValueError(f"strategy 'focal' needs a detector trained with a focal loss; {cfg.arch} has none "
                                 "(the fast detector's heat-map loss is focal)")
            self.model = build_detector(cfg.arch, cfg.attention, num_classes=NUM_CLASSES, **options).to(self.device)
        size = tuple(self.model.input_size)
        if cfg.crop:
            from core.data.crops import CropDataset  # noqa: PLC0415

            base = CropDataset(cfg.data, "train", input_size=size, crop_size=cfg.crop,
                               negative_share=cfg.negative_share, flips=cfg.augment)
        else:
            base = OPIXrayDataset(cfg.data, "train", transforms=default_transforms(train=cfg.augment, size=size))
        # Scenes of the split: a plain epoch's draws, and an over-sampled epoch's originals (their copies follow).
        self.scene_count = len(base)
        if cfg.occluded_repeat > 1:
            base = self._over_sample_occluded(base)
        self.dataset = SeededDataset(base, cfg.seed)
        if len(self.dataset) == 0:
            raise ValueError(f"{cfg.data}: the train split has no images")
        self.collate = collate_fn
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
        self.net = self.model
        self.compiled_raw = None
        if cfg.compile:
            check_compiler(self.device)
            self.compiled_raw = compile_raw_forward(self.model)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.pool = None
        if cfg.strategy in ("hard", "easy", "random"):
            self.pool = SamplePool(cfg.strategy, cfg.pool_capacity, cfg.pool_threshold, seed=cfg.seed + self.dist.rank)
        self.run_dir = cfg.run_dir
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.runlog = RunLog(self.run_dir, enabled=self.dist.is_main)
        self.state = TrainState(next_curve_seconds=(cfg.curve_every_min or 0) * 60)
        self._resume_if_possible()
        # Fixed for the run; the learning rate needs it every step, so the batch plans are counted once.
        self.total_steps = self._total_steps()

    def _over_sample_occluded(self, base):
        """``base`` with its occluded scenes repeated (core.data.oversample), from the split's table."""
        from core.data.oversample import RepeatedScenes, scene_repeats  # noqa: PLC0415
        from core.synth.occlusion_table import read_table  # noqa: PLC0415

        cfg = self.cfg
        repeats = scene_repeats(base.samples, read_table(cfg.data, "train"), cfg.occluded_from, cfg.occluded_repeat)
        repeated = RepeatedScenes(base, repeats)
        log.info("over-sampling occluded scenes%s: %d of %d scenes hold an item under opacity >= %.3f, each shown "
                 "%d times an epoch (%d draws)",
                 f" after {cfg.occluded_start:.0%} of the run" if cfg.occluded_start else "",
                 int((repeats > 1).sum()), len(repeats), cfg.occluded_from, cfg.occluded_repeat, len(repeated))
        return repeated

    def _over_sampled(self, epoch: int) -> bool:
        """Whether ``epoch`` draws the copies of the occluded scenes too, or the split's scenes once each."""
        cfg = self.cfg
        if cfg.occluded_repeat == 1:
            return False
        if not cfg.occluded_start:
            return True
        since = self.state.occluded_since_epoch
        return since is not None and epoch >= since

    def _start_over_sampling_if_due(self) -> None:
        """At an epoch's start: begin the scheduled over-sampling once the run is --occluded-start through.

        Decided only where an epoch starts, and kept in the checkpoint's state, so a run resumed mid-epoch
        draws the epoch it had begun, and every DDP rank the same (the ranks' clocks differ)."""
        cfg, st = self.cfg, self.state
        if cfg.occluded_repeat == 1 or not cfg.occluded_start or st.occluded_since_epoch is not None:
            return
        if cfg.iters:
            progress = st.step / cfg.iters
        elif cfg.time_budget_min:
            progress = st.train_seconds / (cfg.time_budget_min * 60)
        else:
            progress = st.epoch / cfg.epochs
        if self.dist.all_any(progress >= cfg.occluded_start):
            st.occluded_since_epoch = st.epoch
            log.info("step %d (%.0f%% of the run): over-sampling the occluded scenes from epoch %d on",
                     st.step, 100 * progress, st.epoch)

    def _model_from_file(self) -> torch.nn.Module:
        """The network and weights of ``init_from`` (verified), to train further."""
        from core.inference.modelfile import load_model_file  # noqa: PLC0415
        from core.models.build import build_detector  # noqa: PLC0415

        model, info = load_model_file(self.cfg.init_from, self.cfg.init_sha256)
        asked = dict(self.cfg.model_options)
        fixed = sorted(set(asked) - set(TRAINING_ONLY_OPTIONS))
        if fixed:
            # Silently training the file's architecture instead of the one asked for would mislead.
            raise ValueError(f"--model-option {', '.join(fixed)} cannot change a model started with --init-from: "
                             f"its file fixes the architecture (only {', '.join(TRAINING_ONLY_OPTIONS)} may be set)")
        self.cfg.arch, self.cfg.attention = info.arch, info.attention
        self.cfg.model_options = {**info.config["options"], **asked}
        if asked:
            # Rebuilt with the training-only options (the constructor validates them), same weights.
            rebuilt = build_detector(info.arch, info.attention, num_classes=NUM_CLASSES, **self.cfg.model_options)
            rebuilt.load_state_dict(model.state_dict())
            model = rebuilt
        log.info("starting from %s (%s)%s", self.cfg.init_from, info.model_id, f" with {asked}" if asked else "")
        return model

    def _resume_if_possible(self) -> None:
        path = self.run_dir / "checkpoint.pt"
        if not path.exists():
            if self.cfg.branch_from:
                self._start_branch(Path(self.cfg.branch_from))
            if self.dist.is_main:
                (self.run_dir / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2))
            return
        payload = load_checkpoint(path)
        saved = payload["config"]
        for key in _RESUME_MUST_MATCH:
            # A key a checkpoint predates was at its default then (runs saved before the option existed).
            was = saved.get(key, _CONFIG_DEFAULTS.get(key))
            if was != getattr(self.cfg, key):
                raise ValueError(f"{path}: was trained with {key}={was!r}, not {getattr(self.cfg, key)!r}; "
                                 "use another --out or the same settings to resume")
        self._load_state(payload)
        log.info("resumed from %s at step %d (%.1f min of training)", path, self.state.step,
                 self.state.train_seconds / 60)

    def _start_branch(self, path: Path) -> None:
        """A new run from another run's epoch checkpoint, with another over-sampling schedule (core.training.branching)."""
        payload = load_checkpoint(path)
        parent = {**_CONFIG_DEFAULTS, **payload["config"]}
        steps = branching.check_branch(path, parent, payload["state"], self.cfg.to_dict())
        if self.dist.is_main:
            payload["state"] = branching.copy_parent_record(path, steps, payload["state"], self.run_dir)
        self._load_state(payload)
        self.dist.barrier()  # the other ranks start once the record is in place

    def _load_state(self, payload: dict) -> None:
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        torch.set_rng_state(payload["torch_rng"])
        self.state = payload["state"]
        if self.pool is not None:
            for item, loss in self.state.pool:
                self.pool.offer(item, loss)
        self.runlog.truncate_after(self.state.step)

    # ---- the loop ---------------------------------------------------------------------
    def run(self) -> dict:
        self._build()
        # Python lets only the main thread install handlers; a trainer run in a thread (a test, an
        # embedding program) is stopped through ``stop_requested`` instead of by a signal.
        in_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
        for s in previous:
            signal.signal(s, self._on_signal)
        try:
            return self._loop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            shutdown_distributed(self.dist)

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        log.warning("signal %d: finishing the current step, saving a checkpoint and stopping", signum)
        self.stop_requested = True

    def _batches_of_epoch(self, epoch: int) -> list[list[int]]:
        return self._batch_plan(epoch, len(self.dataset) if self._over_sampled(epoch) else self.scene_count)

    def _batch_plan(self, epoch: int, n: int) -> list[list[int]]:
        """This rank's batches of dataset indices 0..n-1 in ``epoch``'s order."""
        perm = np.random.default_rng([self.cfg.seed, epoch]).permutation(n)
        usable = (n // self.dist.world_size) * self.dist.world_size or n  # equal shares keep DDP in step
        share = perm[:usable][self.dist.rank::self.dist.world_size].tolist()
        bs = self.cfg.batch_size
        return [share[i:i + bs] for i in range(0, len(share), bs)]

    def _total_steps(self) -> int | None:
        if self.cfg.iters:
            return self.cfg.iters
        if self.cfg.time_budget_min:
            return None
        cfg = self.cfg
        plain = len(self._batch_plan(0, self.scene_count))
        if cfg.occluded_repeat == 1:
            return cfg.epochs * plain
        over = len(self._batch_plan(0, len(self.dataset)))
        # The epoch a scheduled over-sampling starts at, by the test _start_over_sampling_if_due makes.
        start = next((e for e in range(cfg.epochs) if e / cfg.epochs >= cfg.occluded_start), cfg.epochs)
        return start * plain + (cfg.epochs - start) * over

    def _loader(self, batches: list[list[int]]) -> DataLoader:
        return DataLoader(self.dataset, batch_sampler=batches, num_workers=self.cfg.workers,
                          collate_fn=self.collate, persistent_workers=False)

    def _finished(self) -> bool:
        cfg, st = self.cfg, self.state
        if cfg.iters is not None and st.step >= cfg.iters:
            return True
        if cfg.time_budget_min is not None and st.train_seconds >= cfg.time_budget_min * 60:
            return True
        return cfg.iters is None and st.epoch >= cfg.epochs

    def _loop(self) -> dict:
        cfg, st = self.cfg, self.state
        total = self.total_steps
        bar = tqdm(total=total, initial=min(st.step, total or st.step), desc="train", unit="step",
                   disable=not self.dist.is_main, dynamic_ncols=True)
        last_ckpt = time.monotonic()
        interrupted = False
        while not self._finished():
            if st.batch_in_epoch == 0:
                self._start_over_sampling_if_due()
            self.dataset.epoch = st.epoch
            batches = self._batches_of_epoch(st.epoch)
            for batch_idx, (images, targets) in enumerate(self._loader(batches[st.batch_in_epoch:]),
                                                           start=st.batch_in_epoch):
                per_image = self._train_step(images, targets, phase="train", bar=bar)
                st.batch_in_epoch = batch_idx + 1
                if self.pool is not None:
                    self._offer(batches[batch_idx], per_image)
                    if cfg.pool_period and st.step % cfg.pool_period == 0:
                        self._replay_pool(bar)
                stop = self.dist.all_any(self.stop_requested or self._finished())
                if time.monotonic() - last_ckpt >= cfg.checkpoint_every_s or stop:
                    self._checkpoint()
                    last_ckpt = time.monotonic()
                self._maybe_evaluate()
                if stop:
                    break
            else:
                # The epoch ran to its end: replay the pool if it cycles per epoch, go on.
                if self.pool is not None and not cfg.pool_period:
                    self._replay_pool(bar)
                st.epoch += 1
                st.batch_in_epoch = 0
                self._checkpoint()
                if cfg.keep_epoch_checkpoints and self.dist.is_main:
                    branching.keep_epoch_checkpoint(self.run_dir, st.epoch)
                last_ckpt = time.monotonic()
                continue
            interrupted = self.stop_requested
            break
        bar.close()
        self._checkpoint()
        result = self._finish(interrupted)
        return result

    def _lr_at(self, step: int) -> float:
        cfg = self.cfg
        factor = min(1.0, (step + 1) / max(1, cfg.warmup_iters))
        total = self.total_steps
        progress = None
        if total:  # cosine decay to 5% over the known length of the run
            progress = min(1.0, step / max(1, total))
        elif cfg.time_budget_min:  # a time budget: the same decay over the training clock
            progress = min(1.0, self.state.train_seconds / (cfg.time_budget_min * 60))
        if progress is not None:
            factor *= 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))
        return cfg.lr * factor

    def _train_step(self, images, targets, phase: str, bar) -> torch.Tensor:
        t0 = time.perf_counter()
        self.net.train()
        if isinstance(images, (list, tuple)):
            images = torch.stack(list(images))  # fixed-size inputs: the transforms resize to input_size
        images = images.to(self.device, non_blocking=True)
        # Plain tensors for the model: tv_tensors subclasses are a data-pipeline concern.
        targets = [{"boxes": t["boxes"].as_subclass(torch.Tensor).float().to(self.device),
                    "labels": t["labels"].to(self.device)} for t in targets]
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr_at(self.state.step)
        with compiled_forward(self.model, self.compiled_raw):
            losses = self.net(images, targets)
        per_image = torch.stack(list(losses.values())).sum(dim=0)
        loss = per_image.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {self.state.step}: lower the learning rate")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        dt = time.perf_counter() - t0
        st = self.state
        st.step += 1
        st.images_seen += len(images)
        st.train_seconds += dt
        self.runlog.step(step=st.step, epoch=st.epoch, train_seconds=round(st.train_seconds, 3),
                         loss=round(loss.item(), 5), lr=self.optimizer.param_groups[0]["lr"], phase=phase,
                         images_per_s=round(len(images) / dt, 2))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", phase=phase, min=f"{st.train_seconds / 60:.1f}")
        return per_image.detach().cpu()

    def _offer(self, indices: list[int], per_image: torch.Tensor) -> None:
        if self.cfg.pool_granularity == "batch":
            self.pool.offer(tuple(indices), float(per_image.mean()))
        else:
            for index, loss in zip(indices, per_image.tolist()):
                self.pool.offer(int(index), loss)
        self.state.pool = self.pool.items()

    def _replay_pool(self, bar) -> None:
        entries = self.pool.drain()
        self.state.pool = []
        indices: list[int] = []
        for entry in entries:
            indices.extend(entry if isinstance(entry, tuple) else [entry])
        bs = self.cfg.batch_size
        batches = [indices[i:i + bs] for i in range(0, len(indices), bs)]
        if self.cfg.iters is not None:  # a replay never runs past --iters (resume lands where asked)
            batches = batches[:max(0, self.cfg.iters - self.state.step)]
        batches = batches[:self.dist.all_min(len(batches))]  # every rank takes the same number of steps
        if not batches:
            return
        for images, targets in self._loader(batches):
            self._train_step(images, targets, phase="replay", bar=bar)

    # ---- saving and evaluating ----------------------------------------------------------
    def _checkpoint(self) -> None:
        if not self.dist.is_main:
            return
        t0 = time.perf_counter()
        save_checkpoint(self.run_dir / "checkpoint.pt", state=self.state, config=self.cfg.to_dict(),
                        model=self.model, optimizer=self.optimizer)
        log.debug("checkpoint at step %d in %.2f s", self.state.step, time.perf_counter() - t0)

    def _maybe_evaluate(self, force: bool = False) -> dict | None:
        cfg, st = self.cfg, self.state
        if cfg.curve_every_min is None or (not force and st.train_seconds < st.next_curve_seconds):
            return None
        st.next_curve_seconds = st.train_seconds + cfg.curve_every_min * 60
        if not self.dist.is_main:
            return None
        from core.evaluation.runner import evaluate_model_on_dataset  # noqa: PLC0415

        t0 = time.perf_counter()
        metrics = evaluate_model_on_dataset(self.model, cfg.curve_data, split="test",
                                            max_images=cfg.curve_max_images, device=self.device)
        record = {"step": st.step, "train_seconds": round(st.train_seconds, 3), "images_seen": st.images_seen,
                  "eval_seconds": round(time.perf_counter() - t0, 1), **metrics}
        if cfg.keep_curve_models:
            # One seed's curve point says little on its own; with the model kept, `compare` can set
            # it against other seeds' at the same point, with intervals.
            name = f"curve_models/step{st.step:07d}.pt"
            (self.run_dir / "curve_models").mkdir(exist_ok=True)
            self._save_model_file(self.run_dir / name, metrics)
            record["model_file"] = name
        self.runlog.evaluation(record)
        (self.run_dir / "curve.json").write_text(json.dumps(self.runlog.read_evals(), indent=2))
        self.runlog.plot()
        if metrics["map"] > st.best_map:
            st.best_map = metrics["map"]
            self._save_model_file(self.run_dir / "best.pt", metrics)
        log.info("step %d, %.1f min: mAP@0.5 %.3f", st.step, st.train_seconds / 60, metrics["map"])
        return record

    def _save_model_file(self, path: Path, metrics: dict | None) -> str:
        from core.inference.modelfile import save_model  # noqa: PLC0415

        return save_model(path, self.model, metrics=metrics, strategy=self.cfg.strategy,
                          extra={"train_seconds": round(self.state.train_seconds, 1), "step": self.state.step,
                                 "images_seen": self.state.images_seen, "seed": self.cfg.seed,
                                 # The folder's name only: a shipped model must not carry this machine's paths.
                                 "data": Path(self.cfg.data).name})

    def _finish(self, interrupted: bool) -> dict:
        st = self.state
        result = {"run_dir": str(self.run_dir), "step": st.step, "epoch": st.epoch,
                  "train_minutes": round(st.train_seconds / 60, 2), "images_seen": st.images_seen,
                  "interrupted": interrupted}
        if not self.dist.is_main:
            return result
        if not interrupted and self.cfg.curve_every_min is not None:
            self._maybe_evaluate(force=True)
        evals = self.runlog.read_evals()
        metrics = evals[-1] if evals else None
        result["sha256"] = self._save_model_file(self.run_dir / "model.pt", metrics)
        result["model"] = str(self.run_dir / "model.pt")
        self.runlog.plot()
        (self.run_dir / "result.json").write_text(json.dumps(result, indent=2))
        return result


def train(config: TrainConfig) -> dict:
    """Train (or resume) a run; returns a summary dict (paths, steps, minutes)."""
    return Trainer(config).run()

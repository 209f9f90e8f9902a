"""Training settings in one dataclass, with the defaults and why they were chosen.

The paper's archs default to the paper's optimiser (SGD, lr 1e-4, momentum 0.9,
weight decay 5e-4, batch 24); the CPU-fast default has its own (see
``ARCH_DEFAULTS``), since from-scratch training on two cores needs a far larger
learning rate and a smaller batch to learn within an hour.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from core.training.sampling import STRATEGIES

# Per-arch optimiser defaults: (optimizer, lr, momentum, weight decay, batch size).
ARCH_DEFAULTS: dict[str, dict] = {
    "ssd": dict(optimizer="sgd", lr=1e-4, momentum=0.9, weight_decay=5e-4, batch_size=24),
    "yolov3": dict(optimizer="sgd", lr=1e-4, momentum=0.9, weight_decay=5e-4, batch_size=24),
    "fcos": dict(optimizer="sgd", lr=1e-4, momentum=0.9, weight_decay=5e-4, batch_size=24),
    # From scratch on a CPU: AdamW converges in far fewer steps than SGD at 1e-4.
    "fast": dict(optimizer="adamw", lr=2e-3, momentum=0.9, weight_decay=1e-4, batch_size=8),
}

UNLIMITED_EPOCHS = 1_000_000


@dataclass
class TrainConfig:
    data: str                              # OPIXray-layout dataset root (train split used)
    out: str                               # run directory: checkpoints, logs, plots
    arch: str = "fast"
    attention: str = "doam"
    strategy: str = "hard"                 # traditional | hard | easy | random | focal
    epochs: int | None = None              # None: 1, or no epoch limit when a time budget is given
    iters: int | None = None               # stop after this many optimiser steps (overrides epochs)
    time_budget_min: float | None = None   # stop after this much training wall-clock time
    optimizer: str | None = None           # sgd | adamw (None: the arch default)
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    warmup_iters: int = 50                 # linear warm-up: keeps the first from-scratch steps stable
    grad_clip: float = 10.0
    augment: bool = True                   # flips, scale and translation only: pixel values stay true
    # Crop recipe (core.data.crops): train on crop x crop windows of the image resized to the
    # model's input size (the inference scale) instead of whole images; None = whole images.
    crop: int | None = None
    negative_share: float = 0.2            # share of crops holding no object (hard negatives)
    # Over-sample occluded scenes (core.data.oversample; synthetic data with an occlusion table):
    # a scene with an item under cover of opacity >= occluded_from appears occluded_repeat times an epoch.
    occluded_repeat: int = 1
    occluded_from: float = 0.505           # OL3's lower edge (core.synth.occlusion)
    # Share of the run (of --iters steps, --epochs, or the --time-budget's minutes) before the over-sampling
    # starts, at the next epoch: a curriculum that learns the ordinary mix first. 0: from the start.
    occluded_start: float = 0.0
    workers: int = 2                       # data-loading processes
    seed: int = 0
    # Over-sampling pool (paper Sec. IV-B). Threshold None: every entry competes on loss alone,
    # i.e. the pool holds the top-`pool_capacity` losses of each cycle.
    pool_capacity: int = 16
    pool_threshold: float | None = None
    pool_granularity: str = "image"        # image (the paper's Fig. 4) | batch (its text)
    pool_period: int = 0                   # optimiser steps per pool cycle; 0 = once per epoch
    checkpoint_every_s: float = 120.0
    curve_every_min: float | None = None   # learning-curve evaluation interval (training minutes)
    curve_data: str | None = None          # held-out dataset root for the curve (its test split)
    curve_max_images: int | None = None    # evaluate on at most this many held-out images
    keep_curve_models: bool = False        # a model file per curve point (curve_models/), for `compare`
    # The full state at every epoch's end (checkpoints/epochNNNN.pt), to branch other runs from
    # (core.training.branching); branch_from: such a file, the new run's starting point.
    keep_epoch_checkpoints: bool = False
    branch_from: str | None = None
    device: str = "auto"
    compile: bool = False                  # TorchInductor for the training steps (core/training/compiled.py)
    model_options: dict = field(default_factory=dict)
    # Start from a model file's weights (fine-tuning, retraining): its arch, attention and options
    # win over the fields above, since the weights only fit the network they were trained in.
    init_from: str | None = None
    init_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        if self.pool_granularity not in ("image", "batch"):
            raise ValueError("pool_granularity must be 'image' or 'batch'")
        if self.epochs is None:
            # A time budget alone means "train for this long", not "one epoch or this long".
            self.epochs = 1 if self.time_budget_min is None else UNLIMITED_EPOCHS
        defaults = ARCH_DEFAULTS.get(self.arch, ARCH_DEFAULTS["ssd"])
        for key, value in defaults.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch size must be >= 1 and the learning rate > 0")
        if self.crop is not None and (self.crop < 32 or self.crop % 32):
            raise ValueError(f"--crop must be a positive multiple of 32 (the detector's stride), got {self.crop}")
        if not 0.0 <= self.negative_share < 1.0:
            raise ValueError(f"--negative-share must be in [0, 1), got {self.negative_share}")
        if self.occluded_repeat < 1 or not 0.0 < self.occluded_from <= 1.0:
            raise ValueError(f"--occluded-repeat must be >= 1 and --occluded-from in (0, 1], got "
                             f"{self.occluded_repeat} and {self.occluded_from}")
        if not 0.0 <= self.occluded_start < 1.0:
            raise ValueError(f"--occluded-start must be a share of the run in [0, 1), got {self.occluded_start}")
        if self.occluded_start and self.occluded_repeat == 1:
            raise ValueError("--occluded-start schedules the over-sampling: it needs --occluded-repeat K > 1")
        if self.curve_every_min is not None and not self.curve_data:
            raise ValueError("--curve-every needs --curve-data (a held-out dataset)")

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

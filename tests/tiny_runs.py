"""What the over-sampling and branching tests train on: a tiny detector and a few small synthetic scenes."""
from pathlib import Path

from core.synth.generator import generate_dataset
from core.synth.scene import SceneConfig

# Large enough for 96-pixel crops with items in them, small enough for a step in a few milliseconds.
SMALL = {"input_size": [160, 192], "widths": [8, 8, 16, 16, 16], "neck_channels": 16, "head_channels": 16}


def small_scenes(root: Path, n_train: int, n_test: int = 0, seed: int = 12) -> Path:
    """Writes 320x250 scenes with their occlusion tables under ``root``; returns it."""
    generate_dataset(root, n_train, n_test, seed=seed, config=SceneConfig(width=320, height=250), progress=False)
    return root

"""The OPIXray classes, in the dataset's order (the index is the label id)."""
from __future__ import annotations

CLASSES: tuple[str, ...] = (
    "Folding_Knife",
    "Straight_Knife",
    "Scissor",
    "Utility_Knife",
    "Multi-tool_Knife",
)
SHORT_NAMES: tuple[str, ...] = ("FO", "ST", "SC", "UT", "MU")
CLASS_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
NUM_CLASSES = len(CLASSES)

# Occlusion levels as the paper names them: OL1 none/slight, OL2 partial, OL3 severe.
OCCLUSION_LEVELS: tuple[int, ...] = (1, 2, 3)

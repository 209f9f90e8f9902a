"""The vocabulary shared by the shape catalogue and the renderer.

An object is a set of ``Layer``s: a material and a thickness map (centimetres of
that material along the beam, per pixel) placed at an integer offset. The
renderer turns the sum of ``mu(material, energy) * thickness`` over all layers
into transmission ``T = exp(-tau)``, so objects compose by multiplication.

Scale: ``PIXEL_CM`` centimetres per pixel at the default 1225x954 image
(a 60 cm suitcase spans ~650 px, a 17 cm knife ~190 px, as in OPIXray).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PIXEL_CM = 0.09


@dataclass
class Layer:
    material: str              # key of core.synth.materials.MATERIALS
    thickness: np.ndarray      # float32 HxW, centimetres along the beam; 0 where absent
    x: int = 0                 # column of thickness[0, 0] in the parent frame
    y: int = 0                 # row of thickness[0, 0] in the parent frame

    @property
    def shape(self) -> tuple[int, int]:
        return self.thickness.shape[0], self.thickness.shape[1]


@dataclass
class SynthObject:
    """A bag part, a clutter item or a cutter, in its own frame (origin top-left)."""
    kind: str
    layers: list[Layer] = field(default_factory=list)

    def translated(self, dx: int, dy: int) -> "SynthObject":
        return SynthObject(self.kind, [Layer(l.material, l.thickness, l.x + dx, l.y + dy) for l in self.layers])

    def extent(self) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2) exclusive bounds of all layers' arrays."""
        xs1 = [l.x for l in self.layers]
        ys1 = [l.y for l in self.layers]
        xs2 = [l.x + l.shape[1] for l in self.layers]
        ys2 = [l.y + l.shape[0] for l in self.layers]
        return min(xs1), min(ys1), max(xs2), max(ys2)

    def tight_box(self, min_thickness: float = 1e-3) -> tuple[int, int, int, int] | None:
        """Inclusive pixel box (x1, y1, x2, y2) of where any layer has material, or None."""
        boxes = []
        for l in self.layers:
            mask = l.thickness > min_thickness
            if not mask.any():
                continue
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            boxes.append((l.x + cols[0], l.y + rows[0], l.x + cols[-1], l.y + rows[-1]))
        if not boxes:
            return None
        b = np.array(boxes)
        return int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max())

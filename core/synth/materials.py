"""Linear attenuation coefficients (1/cm) at the two energies of a dual-energy scanner.

Values are mass attenuation coefficients from the NIST XCOM tables at about
40 keV (low channel) and 100 keV (high channel), times a typical bulk density.
Their ratio low/high is what a dual-energy scanner turns into colour: ~1.4-1.7
for organics (orange), ~3 for light inorganics such as aluminium and glass
(green), ~8-11 for iron and copper (blue). Bulk densities of porous things
(fabric, paper stacks) are effective values, not solid ones.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Material:
    name: str
    mu_low: float    # 1/cm at ~40 keV
    mu_high: float   # 1/cm at ~100 keV
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.mu_low / self.mu_high


_TABLE = [
    # name, mass coeff 40 keV, mass coeff 100 keV (cm^2/g), density (g/cm^3), note
    ("plastic", 0.242, 0.167, 0.95, "polyethylene/polypropylene: trays, cases, handles"),
    ("abs", 0.248, 0.166, 1.05, "ABS housings of chargers, phones, laptops"),
    ("rubber", 0.260, 0.166, 1.15, "soles, wheels, seals"),
    ("clothing", 0.256, 0.164, 0.25, "folded textiles, effective density"),
    ("food", 0.268, 0.171, 0.9, "water-like organic matter"),
    ("liquid", 0.268, 0.171, 1.0, "water, drinks, gels"),
    ("paper", 0.256, 0.164, 0.75, "books, magazines, effective density"),
    ("leather", 0.255, 0.165, 0.86, "shoes, belts, wallets"),
    ("glass", 0.683, 0.172, 2.5, "bottles, lenses"),
    ("aluminium", 0.568, 0.170, 2.70, "laptop chassis, cans, frames"),
    ("circuit", 0.9, 0.19, 1.9, "populated boards: FR-4 glass epoxy with copper"),
    ("battery", 2.2, 0.30, 2.6, "Li-ion cells: copper/aluminium foils, graphite, electrolyte"),
    ("steel", 3.63, 0.372, 7.87, "blades, keys, hinges, screws, springs"),
    ("copper", 4.86, 0.458, 8.96, "cables, coils, coins"),
    ("zinc", 4.6, 0.42, 7.1, "zinc alloys: zips, buckles, handle liners"),
]

MATERIALS: dict[str, Material] = {
    name: Material(name, low * rho, high * rho, note) for name, low, high, rho, note in _TABLE
}


def material(name: str) -> Material:
    try:
        return MATERIALS[name]
    except KeyError:
        raise KeyError(f"unknown material {name!r}; known: {', '.join(MATERIALS)}") from None

"""Model versions as text for the Models view: key numbers, the gate's verdict, lineage, details.

Plain functions of ``ModelVersionInfo`` (no widgets), so the view stays about layout and actions.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from core.store.values import ModelVersionInfo
from core.training.gate import interval_text


def key_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """Benchmark and held-out mAP and the gate's verdict, wherever this version's metrics keep them."""
    metrics = metrics or {}
    gate = metrics.get("gate") or {}
    own = gate.get("candidate") or metrics

    def value(scores: Any) -> float | None:
        if isinstance(scores, dict):
            scores = scores.get("map")
        return float(scores) if isinstance(scores, (int, float)) else None

    return {"benchmark_map": value(own.get("benchmark", metrics.get("benchmark_map", metrics.get("map")))),
            "heldout_map": value(own.get("heldout", metrics.get("heldout_map"))),
            "verdict": gate.get("verdict")}


def format_number(value: float | None) -> str:
    """Three decimals, or a dash for a number the version does not have."""
    return "–" if value is None else f"{value:.3f}"


def gate_summary(metrics: dict[str, Any] | None) -> str:
    """The gate's verdict, reasons and the numbers it compared, as a few lines ('' without a gate)."""
    gate = (metrics or {}).get("gate")
    if not gate:
        return ""
    lines = [f"Gate verdict: {gate.get('verdict', '?')}"]
    changes = gate.get("changes") or {}
    for side in ("benchmark", "heldout"):
        active = ((gate.get("active") or {}).get(side) or {}).get("map")
        candidate = ((gate.get("candidate") or {}).get(side) or {}).get("map")
        lines.append(f"  {side} mAP: active {format_number(active)} -> candidate {format_number(candidate)}"
                     + interval_text(changes, side, "map", " ({})"))
    lines += [f"  - {reason}" for reason in gate.get("reasons", [])]
    lines += [f"  Note: {note}" for note in gate.get("notes", [])]
    return "\n".join(lines)


def lineage(version: ModelVersionInfo, versions: dict[int, ModelVersionInfo]) -> list[str]:
    """This version and its ancestors, newest first (a missing or looping parent ends the chain)."""
    chain, seen, current = [], set(), version
    while current is not None and current.id not in seen:
        seen.add(current.id)
        chain.append(f"#{current.id} {current.name} ({current.status})")
        current = versions.get(current.parent_id) if current.parent_id is not None else None
    return chain


def details_text(version: ModelVersionInfo, versions: dict[int, ModelVersionInfo]) -> str:
    info = {k: v for k, v in asdict(version).items() if k != "metrics"}
    parts = [f"Model version {version.id}: {version.name} ({version.status})",
             "Lineage: " + " <- ".join(lineage(version, versions))]
    summary = gate_summary(version.metrics)
    if summary:
        parts.append(summary)
    parts.append(json.dumps({**info, "metrics": version.metrics}, indent=2, default=str, sort_keys=False))
    return "\n\n".join(parts)

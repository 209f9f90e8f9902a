"""One builder for every detector: ``build_detector(arch, attention, num_classes=5, **options)``.

Each architecture lives in its own module ``core.models.<arch>`` with a function
``build_<arch>(attention, num_classes=5, **options)``; it is imported only when asked for, so a
missing or broken architecture does not stop the others (see CONTRACT.md).
"""
from __future__ import annotations

import importlib
import logging

from torch import nn

from core.models.attention import ATTENTIONS
from core.models.names import ARCHS, DEFAULT_ARCH  # noqa: F401 - re-exported

log = logging.getLogger(__name__)



class ArchitectureUnavailable(RuntimeError):
    """The architecture's module is not present (or fails to import) in this installation."""


def builder_for(arch: str):
    """Return ``core.models.<arch>.build_<arch>``; raise ArchitectureUnavailable if it cannot be had."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    module_name = f"core.models.{arch}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ArchitectureUnavailable(f"architecture {arch!r} is not available: no module {module_name}") from exc
        raise ArchitectureUnavailable(f"architecture {arch!r} cannot be imported: {exc}") from exc
    builder = getattr(module, f"build_{arch}", None)
    if builder is None:
        raise ArchitectureUnavailable(f"{module_name} has no function build_{arch}")
    return builder


def available_archs() -> dict[str, str | None]:
    """Map each arch to None when it can be built, or to the reason it cannot."""
    status: dict[str, str | None] = {}
    for arch in ARCHS:
        try:
            builder_for(arch)
            status[arch] = None
        except ArchitectureUnavailable as exc:
            status[arch] = str(exc)
    return status


def build_detector(arch: str = DEFAULT_ARCH, attention: str = "doam", num_classes: int = 5, **options) -> nn.Module:
    """Build a detector following core/models/CONTRACT.md.

    ``build_detector(**model.config)`` rebuilds a model with the same architecture and options.
    """
    if attention not in ATTENTIONS:
        raise ValueError(f"unknown attention {attention!r}; expected one of {', '.join(ATTENTIONS)}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    builder = builder_for(arch)
    model = builder(attention, num_classes=num_classes, **options)
    log.debug("built %s with attention %s (%d classes, options %s)", arch, attention, num_classes, options)
    return model

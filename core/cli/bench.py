"""``python main.py bench [SUITE ...]``: JSON on stdout, a human summary on stderr."""
from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import sys
import time

import core.bench


def suites() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(core.bench.__path__) if not m.name.startswith("_"))


def register(sub) -> None:
    p = sub.add_parser("bench", help="run benchmarks (JSON on stdout)",
                       description=f"Run benchmark suites. Available: {', '.join(suites())}. Default: all.")
    p.add_argument("suites", nargs="*", metavar="SUITE", help="suites to run (default: all)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (for smoke tests)")
    for name in suites():
        module = importlib.import_module(f"core.bench.{name}")
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    chosen = args.suites or suites()
    unknown = [s for s in chosen if s not in suites()]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; available: {', '.join(suites())}", file=sys.stderr)
        return 2
    import torch  # noqa: PLC0415 - only for the environment record

    result = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cuda": torch.cuda.is_available()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for name in chosen:
        module = importlib.import_module(f"core.bench.{name}")
        print(f"== bench {name}", file=sys.stderr)
        t0 = time.perf_counter()
        result[name] = module.run(args)
        result[name]["suite_seconds"] = round(time.perf_counter() - t0, 2)
        _summarise(name, result[name])
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


def _summarise(name: str, data: dict, prefix: str = "") -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            _summarise(name, value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            print(f"  {name}.{prefix}{key}: {value}", file=sys.stderr)

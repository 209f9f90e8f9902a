"""Benchmarks behind ``python main.py bench [SUITE...]``.

Each module of this package is a suite with a function ``run(args) -> dict``
(JSON-serialisable results) and optionally ``add_arguments(parser)``. Timings
are compared as ratios within one run: this machine is noisy.
"""

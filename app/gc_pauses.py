"""Keep Python's cyclic garbage collector from freezing the lane window.

A full (generation 2) collection walks every tracked object in the process: with
torch, onnxruntime, numpy and PySide6 loaded that is ~430k objects and took
200-400 ms on a loaded 2-core machine (``bench gui``). Whichever thread triggers it
holds the GIL for that long, so the GUI thread -- which needs the GIL for every
Python slot -- is frozen even when a worker thread triggered it.

Almost all of those objects are modules, classes and functions that live as long as
the process. ``gc.freeze()`` moves every object that exists now into a permanent
generation the collector no longer scans, so later collections only look at what
was created since. Objects frozen are still freed by reference counting (a model
swapped out is: its detector, torch module and onnxruntime session hold no
reference cycles); only cyclic garbage already present when freezing would stay.
Freezing costs O(1) (it splices lists; counting the frozen objects would walk all of
them, ~40 ms) and may be done again after each model load.
"""
from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Stop scanning the objects alive now (imports, the loaded model) in cyclic collections."""
    gc.freeze()


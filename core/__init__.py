"""The workstation without a screen: data, synthesis, models, training, store.

Nothing under ``core`` imports Qt (tests/test_layers.py enforces it).
"""
__version__ = "0.1.0"

"""Detectors: DOAM and the attention baselines, SSD / YOLOv3 / FCOS and the CPU-fast default."""

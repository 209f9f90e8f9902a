"""Training: the over-sampling strategy (DOAM-O), the trainer, distributed runs, retraining."""

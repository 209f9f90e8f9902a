"""A stop at a chosen step, as SIGINT/SIGTERM would make it, for resume tests."""
from core.training.trainer import Trainer


def stop_after_step(monkeypatch, step: int) -> None:
    """The next training run finishes step ``step``, saves its checkpoint and stops (undo with monkeypatch.undo)."""
    original = Trainer._train_step

    def step_then_stop(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self.state.step == step:
            self.stop_requested = True
        return out

    monkeypatch.setattr(Trainer, "_train_step", step_then_stop)

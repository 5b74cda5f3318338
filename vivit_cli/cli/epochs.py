"""What process 0 of a --full run does after each epoch (validate, keep the best, save the state, one line on stderr)
and at the end (the model folder with training.png, the card and training.json; the last line says how to use it)."""

from __future__ import annotations

import time
from typing import Any

import click

from vivit_cli.cli.progress import say
from vivit_cli.results import clock


class Epochs:
    """The run's epochs so far, as process 0 keeps them."""

    def __init__(
        self,
        ctx: click.Context,
        out: str,
        trainer: Any,
        pool: Any,
        begun: dict[str, Any],
        made_from: dict[str, Any],
        p: dict[str, Any],
        history: list[dict[str, Any]],
        best_weights: dict[str, Any] | None,
        local: Any,
    ) -> None:
        from vivit_cli.learn.data import Example

        self.ctx, self.out, self.trainer, self.pool, self.begun, self.made_from, self.p = (
            ctx, out, trainer, pool, begun, made_from, p
        )  # fmt: skip
        self.history, self.best_weights, self.local = history, best_weights, local
        self.val = [Example(path, label, split or None) for path, label, split in begun["split"]["val"]]
        self.labels = made_from["labels"]
        self.started = time.perf_counter()
        self.first = len(history)

    def _classifier(self) -> Any:
        import torch

        from vivit_cli.pipeline import Classifier

        t = self.trainer
        return Classifier(t.model, t.preprocess, self.local, t.device, torch.float32)

    def _validate(self) -> Any:
        from vivit_cli.learn.validate import validate

        v = validate(self.trainer, self._classifier(), self.pool, self.val, self.labels, self.p["views"], None)
        self.trainer.model.train()
        return v

    def done(self, epoch: int, figures: Any) -> None:
        """After `epoch` (0-based): validate, keep the weights if best, save the state, say the line."""
        from vivit_cli.learn import resume
        from vivit_cli.learn.report import best_epoch, epoch_figures

        val = self._validate()
        entry = epoch_figures(epoch + 1, figures, val, self.trainer.lr)
        self.history.append(entry)
        if best_epoch(self.history) == epoch + 1:
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.trainer.model.state_dict().items()}
        extra = {k: self.begun[k] for k in ("split", "probe")}
        state = resume.capture(self.trainer, epoch + 1, self.made_from, {
            **extra, "history": self.history, "best_weights": self.best_weights,
        })  # fmt: skip
        resume.save(self.out, state)
        epochs = self.made_from["settings"]["epochs"]
        done = len(self.history) - self.first
        per_epoch = (time.perf_counter() - self.started) / max(done, 1)
        say(self.ctx, f"epoch {epoch + 1}/{epochs}  loss {entry['train_loss']:.4f}  train acc "
                      f"{entry['train_accuracy']:.3f}  val acc {entry['val_accuracy']:.3f}  val loss "
                      f"{entry['val_loss']:.4f}  {figures.clips / max(figures.seconds, 1e-9):.1f} clips/s  "
                      f"{clock(per_epoch * (epochs - epoch - 1), 0)} left")  # fmt: skip

    def finish(self, dataset: Any, failed: dict[str, str]) -> None:
        """The best epoch's weights as the model folder, its figures said; exit 4 where videos failed."""
        import cv2

        from vivit_cli.checkpoint import to_hf_state_dict
        from vivit_cli.errors import VideoError
        from vivit_cli.learn import export
        from vivit_cli.learn.curves import draw_curves
        from vivit_cli.learn.report import best_epoch, full_card, full_record, waited_share
        from vivit_cli.writers.evaluation import metrics_lines

        assert self.best_weights is not None, "at least one epoch ran"
        best = best_epoch(self.history)
        self.trainer.model.load_state_dict(self.best_weights)
        val = self._validate()
        s = self.trainer.settings
        record = full_record(self.begun["probe"], s, self.made_from["processes"], self.history, val)
        record["failed"] = {**record["failed"], **failed}
        lines = metrics_lines(val.evaluation)
        say(self.ctx, f"Validation, epoch {best} of {s.epochs} (the best):", *lines)
        share = waited_share(self.history)
        say(self.ctx, f"Waiting for decoded clips: {share:.0%} of the training time"
                      + (" (more --workers would feed it faster)" if share > 0.1 else ""))  # fmt: skip
        png = cv2.imencode(".png", draw_curves(self.history, best))[1].tobytes()
        state = to_hf_state_dict(self.best_weights)
        card = full_card(record, lines, self.out)
        export.write_model(self.local.folder, self.out, dataset.labels, state, record, card, {"training.png": png})
        say(self.ctx, f"Wrote {self.out} ({len(dataset.labels)} labels, epoch {best} of {s.epochs}): "
                      f"vivit classify --model {self.out} VIDEO")  # fmt: skip
        if record["failed"]:
            self.ctx.exit(VideoError.exit_code)

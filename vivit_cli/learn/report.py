"""What a --full run says of itself: each epoch's figures, training.json (the linear probe's record, then every
setting of the fine-tuning, each epoch and the best), and the model card."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vivit_cli.learn.export import model_card
from vivit_cli.learn.train import figures

if TYPE_CHECKING:
    from vivit_cli.learn.finetune import EpochFigures, Settings
    from vivit_cli.learn.validate import Validation


def epoch_figures(epoch: int, trained: EpochFigures, val: Validation, lr: float) -> dict[str, Any]:
    """One entry of training.json's `epochs` (and of training.png)."""
    return {
        "epoch": epoch,
        "train_loss": trained.loss,
        "train_accuracy": trained.accuracy,
        "val_loss": val.loss,
        "val_accuracy": val.evaluation.top1,
        "lr": lr,
        "clips": trained.clips,
        "seconds": trained.seconds,
        "waited_s": trained.waited_s,
    }


def best_epoch(epochs: Sequence[Mapping[str, Any]]) -> int:
    """The 1-based epoch kept: the best validation accuracy, ties to the lower validation loss, then the earlier."""
    return min(epochs, key=lambda e: (-e["val_accuracy"], e["val_loss"], e["epoch"]))["epoch"]


def waited_share(epochs: Sequence[Mapping[str, Any]]) -> float:
    """The share of the training time spent waiting for clips, over the epochs."""
    return sum(e["waited_s"] for e in epochs) / max(sum(e["seconds"] for e in epochs), 1e-9)


def full_record(
    probe: Mapping[str, Any], settings: Settings, processes: int, epochs: Sequence[Mapping[str, Any]], best: Validation
) -> dict[str, Any]:
    """training.json of a --full run: the probe's record (`train`'s, whose validation becomes `probe`), the
    fine-tuning's settings, each epoch, and the best epoch's validation figures."""
    record = {k: v for k, v in probe.items() if k != "validation"}
    kept = best_epoch(epochs)
    record["full"] = {
        **dataclasses.asdict(settings),
        "processes": processes,
        "best_epoch": kept,
        "waited_share": waited_share(epochs),
    }
    record["probe"] = probe["validation"]
    record["epochs"] = list(epochs)
    record["validation"] = figures(best.evaluation, best.loss)
    return record


def full_card(record: Mapping[str, Any], report_lines: Sequence[str], out: str) -> str:
    f, s = record["full"], record["settings"]
    base, revision = record["base_model"], record.get("base_revision")
    made = (
        f"the whole network of `{base}`" + (f" (revision `{revision}`)" if revision else "") + " fine-tuned "
        f"(`--full`), starting from a linear head fitted on its frozen features (validation accuracy "
        f"{record['probe']['accuracy']:.3f}); the weights of epoch {f['best_epoch']} of {f['epochs']}, the best "
        "on the validation videos."
    )
    precision = "float32" if f["dtype"] == "float32" else f"{f['dtype']} autocast, float32 weights"
    lines = [
        f"- one random clip of {s['num_frames']} frames per video per epoch (random position and resized crop, "
        f"{'with' if f['flip'] else 'no'} horizontal flip), stride {s['stride']}",
        f"- AdamW, lr {f['lr']:g} with layer decay {f['layer_decay']:g}, weight decay {f['weight_decay']:g}, "
        f"{f['warmup']:g} epochs of warm-up then cosine; label smoothing {f['label_smoothing']:g}",
        f"- {f['batch_size']} clips per pass x {f['accumulate']} passes x {f['processes']} processes per step; "
        f"{precision}; gradient checkpointing {'on' if f['grad_ckpt'] else 'off'}; seed {f['seed']}",
        f"- validation each epoch: {s['clips']} clips x {s['crops']} crops per video, averaged",
    ]
    return model_card(record, report_lines, out, made, lines)

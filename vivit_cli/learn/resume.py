"""A --full run's state after each epoch, in --out: what `--resume` goes on from. One file, written beside itself and
renamed over the last one, so a run stopped at any moment (Ctrl-C, SIGTERM, a crash, a kill) leaves the last whole
epoch's. It holds the weights, the optimiser's moments, the scheduler and loss scaler, the random generators, the
epoch and step, each epoch's figures, the best epoch's weights, and what the run was made from, to refuse a
--resume with other data, labels, model or settings."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vivit_cli.errors import SourceError
from vivit_cli.results import shown_path

if TYPE_CHECKING:
    from vivit_cli.learn.finetune import Trainer

STATE_FILE = "training-state.pt"  # in --out while a --full run is under way or was stopped
STATE_FORMAT = 1
SHOWN = 3  # videos named where the data differ


def state_path(out: str | Path) -> Path:
    return Path(out) / STATE_FILE


def capture(trainer: Trainer, epoch: int, made_from: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a resumed run needs after `epoch` epochs; `extra`: the history and the best epoch, as the caller
    keeps them. Tensors are copied to the CPU: the file loads on any device."""
    return {
        "format": STATE_FORMAT,
        "made_from": dict(made_from),
        "epoch": epoch,
        "step": trainer.step,
        "model": {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()},
        "optimiser": trainer.optimiser.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler else None,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
        },
        **extra,
    }


def save(out: str | Path, state: Mapping[str, Any]) -> None:
    """The state into --out, whole or not at all."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{STATE_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())  # on disk before it replaces the last epoch's: a power cut keeps one of the two
        os.replace(tmp, folder / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(out: str | Path, made_from: Mapping[str, Any]) -> dict[str, Any]:
    """The state a stopped run left in --out; a SourceError when there is none, or it was made from other data,
    labels, model or settings (naming what differs)."""
    path = state_path(out)
    if not path.is_file():
        raise SourceError(f"--resume: {shown_path(out)} holds no stopped --full run to go on from ({STATE_FILE})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a file that is not ours, or from another version of torch's format
        raise SourceError(f"--resume: {shown_path(path)} cannot be read ({type(e).__name__}: {e})") from None
    if state.get("format") != STATE_FORMAT:
        raise SourceError(f"--resume: {shown_path(path)} was written by another version of vivit")
    differs = differences(state["made_from"], made_from)
    if differs:
        raise SourceError(f"--resume: {shown_path(out)} was stopped with other " + "; ".join(differs))
    return state


def differences(was: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between two runs' `made_from`: data (videos added, gone or relabelled), labels, model, each
    setting, the number of processes."""
    said = []
    if was["data"] != now["data"]:
        before, after = ({tuple(r) for r in x["data"]} for x in (was, now))
        gone, new = sorted(before - after), sorted(after - before)
        shown = [f"{'+' if r in new else '-'}{r[0]} ({r[1]})" for r in (new + gone)[:SHOWN]]
        said.append(f"data ({len(new)} videos new or changed, {len(gone)} gone: {', '.join(shown)})")
    if was["labels"] != now["labels"]:
        said.append(f"labels ({', '.join(was['labels'])} then; {', '.join(now['labels'])} now)")
    if was["model"] != now["model"]:
        said.append(f"model ({was['model'][0]} then, {now['model'][0]} now)")
    for name, value in now["settings"].items():
        if was["settings"].get(name) != value:
            said.append(f"--{name.replace('_', '-')} ({was['settings'].get(name)} then, {value} now)")
    if was["processes"] != now["processes"]:
        said.append(f"processes ({was['processes']} then, {now['processes']} now: the batches would differ)")
    return said


def restore(trainer: Trainer, state: Mapping[str, Any]) -> None:
    """Put a saved state back into a Trainer built with the same settings."""
    trainer.model.load_state_dict(state["model"])
    trainer.optimiser.load_state_dict(state["optimiser"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.scaler is not None and state["scaler"] is not None:
        trainer.scaler.load_state_dict(state["scaler"])
    trainer.step = state["step"]
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(rng["python"])

"""The trained head on its backbone -> a model folder in transformers' layout (config.json with the new labels,
model.safetensors, preprocessor_config.json), a model card and the training record; --out checked first.

The backbone's tensors are copied from the base checkpoint's file as they are: exporting loads no model."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from vivit_cli.errors import SourceError
from vivit_cli.labels import one_line_label
from vivit_cli.learn.swap import swap, tidy
from vivit_cli.locks import held
from vivit_cli.results import shown_path
from vivit_cli.writers.files import FULL, probe_folder, write_error

if TYPE_CHECKING:
    from vivit_cli.learn.head import Head

TRAINING_FILE = "training.json"  # what `vivit train` did: its presence marks a folder it may replace
STATE_FILE = "training-state.pt"  # a stopped `vivit train --full` run's last epoch: a folder it may go on in
CARD_FILE = "README.md"
CLASSIFIER = "classifier."  # transformers' head keys in VivitForVideoClassification
BACKBONE = "vivit."  # the prefix of the backbone's keys in a classification checkpoint
POOLER = "pooler."  # VivitForVideoClassification has no pooler: a bare VivitModel's is left out


def check_out(out: str | Path, force: bool, keep: Sequence[str | Path] = ()) -> str | None:
    """Refuse an --out that holds something else (unless force), or that is, holds or lies in one of `keep` (DATA,
    the base model's folder: never replaced, nor written into); a note when it replaces a model we trained."""
    path = Path(out)
    where = path.resolve()
    for kept in keep:
        other = Path(kept).resolve()
        if other.is_dir() and (where == other or other in where.parents or where in other.parents):
            raise SourceError(f"--out {shown_path(path)} would overlap {shown_path(kept)}: write the model elsewhere")
    if where == Path.cwd().resolve():
        raise SourceError("--out is the current folder: give the model a folder of its own")
    parent = next((p for p in where.parents if p.exists()), where.anchor)
    try:
        probe_folder(Path(parent))
    except OSError:
        where_to = shown_path(parent)
        raise SourceError(f"--out {shown_path(path)}: {where_to} is not a folder that can be written") from None
    if not os.path.lexists(path):
        return None
    if path.is_dir() and (path / TRAINING_FILE).is_file():
        return f"replacing the model vivit train wrote in {shown_path(path)}"
    if path.is_dir() and (path / STATE_FILE).is_file():
        return f"replacing the stopped run in {shown_path(path)} (--resume goes on from it)"
    if path.is_dir() and not any(path.iterdir()):
        return None
    if force:
        return f"--force: replacing {shown_path(path)}"
    what = "a folder that is not a model vivit train wrote" if path.is_dir() else "a file"
    raise SourceError(f"--out {shown_path(path)} is {what}: choose another --out, or add --force to replace it")


@contextmanager
def claimed(out: str | Path, force: bool, keep: Sequence[str | Path] = ()) -> Iterator[str | None]:
    """--out checked (check_out) and held for the run: a second run on it is refused at once. What a killed run
    left beside it is cleaned up first (tidy). Yields check_out's note."""
    check_out(out, force, keep)  # before any folder is made
    Path(out).absolute().parent.mkdir(parents=True, exist_ok=True)  # where the hold is kept
    with held(out, "--out"):
        tidy(out)
        yield check_out(out, force, keep)


def export(
    base_folder: Path, out: str | Path, labels: Sequence[str], head: Head, training: Mapping[str, Any], card: str
) -> Path:
    """The base model's backbone as it is with `head` on it, written as write_model does."""
    import torch

    from vivit_cli.checkpoint import read_weights

    state = read_weights(base_folder)
    if not any(k.startswith(BACKBONE) for k in state):  # a bare VivitModel: its keys gain the backbone's prefix
        state = {BACKBONE + k: v for k, v in state.items() if not k.startswith(POOLER)}
    state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER)}
    state[CLASSIFIER + "weight"] = torch.as_tensor(head.weight, dtype=torch.float32)  # (L, D)
    state[CLASSIFIER + "bias"] = torch.as_tensor(head.bias, dtype=torch.float32)  # (L,)
    return write_model(base_folder, out, labels, state, training, card)


def write_model(
    base_folder: Path,
    out: str | Path,
    labels: Sequence[str],
    state: Mapping[str, Any],
    training: Mapping[str, Any],
    card: str,
    files: Mapping[str, bytes] | None = None,
) -> Path:
    """`state` (transformers' keys, with the classifier's) as a model of `labels` on the base model's config and
    preprocessing, with the record, the card and `files` (name -> bytes): written beside --out, then put in --out's
    place (a run that fails leaves --out as it was)."""
    from vivit_cli.checkpoint import read_config, read_preprocess, write_folder

    config, _ = read_config(base_folder)
    backbone_dtype = next(v.dtype for k, v in state.items() if v.is_floating_point() and k.startswith(BACKBONE))
    new = dataclasses.replace(config, id2label=dict(enumerate(labels)), problem_type="single_label_classification")
    raw = {
        **new.to_dict(),
        "num_labels": len(labels),
        "architectures": ["VivitForVideoClassification"],
        "torch_dtype": str(backbone_dtype).removeprefix("torch."),
    }
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        staging.chmod(0o777 & ~_umask())  # not mkdtemp's 0700: it becomes --out, an output like any other
        try:
            write_folder(staging, raw, state, read_preprocess(base_folder))
            text = json.dumps(training, indent=2, ensure_ascii=False) + "\n"
            (staging / TRAINING_FILE).write_text(text, encoding="utf-8")
            (staging / CARD_FILE).write_text(card, encoding="utf-8")
            for name, data in (files or {}).items():
                (staging / name).write_bytes(data)
            swap(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # the new model that failed, or the old one it replaced
    except OSError as e:
        if e.errno in FULL:
            raise write_error(out, e) from None
        raise SourceError(f"cannot write --out {shown_path(out)}: {e.strerror or e}") from None
    except SafetensorError as e:  # the weights' writer says "No space left on device (os error 28)" in its words
        if f"os error {errno.ENOSPC}" in str(e):
            raise write_error(out, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from None
        raise SourceError(f"cannot write --out {shown_path(out)}: {e}") from None
    return out


def _umask() -> int:
    """The process's umask (read by setting it, so set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def model_card(
    training: Mapping[str, Any],
    report_lines: Sequence[str],
    out: str,
    made: str | None = None,
    settings: Sequence[str] | None = None,
) -> str:
    """A short README.md: what it was made from and with, how well it did on the validation videos, how to use it.
    `made` and `settings` replace the frozen head's description and settings (for a fine-tuned network)."""
    base, revision = training["base_model"], training.get("base_revision")
    counts: Mapping[str, Mapping[str, int]] = training["counts"]
    splits = list(counts)
    header = "| label | " + " | ".join(splits) + " |"
    rows = [
        f"| {_cell(label)} | " + " | ".join(str(counts[s][label]) for s in splits) + " |"
        for label in training["labels"]
    ]
    s = training["settings"]
    picked = "fixed with --l2" if s["l2_fixed"] else f"picked by validation log-loss from {s['l2_grid']}"
    on_hub = "/" in base and not os.path.isabs(base) and not base.startswith((".", "~"))
    front = ["---", "library_name: transformers", "pipeline_tag: video-classification", "tags: [vivit, vivit-train]"]
    front += [f"base_model: {base}"] if on_hub else []
    lines = [
        *front,
        "---",
        "",
        f"# {Path(out).name or out}",
        "",
        f"A ViViT video classifier for {len(training['labels'])} labels, made by `vivit train`: "
        + (
            made
            or "a new linear head (L2-regularised logistic regression on the final CLS features) on the frozen "
            f"backbone of `{base}`"
            + (f" (revision `{revision}`)" if revision else "")
            + ". The backbone's weights are unchanged."
        ),
        "",
        "## Data",
        "",
        f"From `{training['data']}`, videos per label and split:",
        "",
        header,
        "|" + " --- |" * (len(splits) + 1),
        *rows,
        "",
        "## Settings",
        "",
        *(
            settings
            or [
                f"- views per video: {s['clips']} clips x {s['crops']} crops of {s['num_frames']} frames, stride "
                f"{s['stride']}; each view is one training sample",
                f"- features in {s['dtype']}; class-balanced loss; L2 {s['l2']:g} ({picked}); seed {s['seed']}",
            ]
        ),
        f"- validation: {s['validation']}",
        "",
        "## Validation",
        "",
        "Per video, its views' probabilities averaged:",
        "",
        "```text",
        *report_lines,
        "```",
        "",
        "## Use",
        "",
        "```bash",
        f"vivit classify --model {out} --clips {s['clips']} video.mp4",
        "```",
        "",
        "```python",
        "from transformers import VivitForVideoClassification",
        "",
        f"model = VivitForVideoClassification.from_pretrained({str(out)!r})",
        "```",
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """A label as a Markdown table cell: a `|` in it would start another cell, a line break another row."""
    return one_line_label(text).replace("|", "\\|")

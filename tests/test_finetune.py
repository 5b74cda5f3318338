"""`vivit train --full` on a tiny random backbone: labels that only motion tells apart (the frozen head cannot learn
them, the fine-tuned network does), a folder transformers loads alike, a run stopped after an epoch and resumed
that ends as an uninterrupted one, two gloo processes that end as one, and the bad input of the issue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from tests import faults
from tests.checkpoints import hf, write_ours
from tests.videos import write_video
from vivit_cli.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DIRECTIONS = {"down": (0, 1), "left": (-1, 0), "right": (1, 0), "up": (0, -1)}  # label -> (dx, dy)
SIZE = 40  # px, square frames
SIDE = 12  # px, the object
SPEED = 3  # px per frame
FRAMES = 10
TEXTURE = np.random.default_rng(7).integers(0, 86, (SIDE, SIDE, 3), dtype=np.uint8)  # the one object of every video


def moving(direction: str, seed: int):
    """The same textured square moving one way from a random place, brighter or darker than a grey background (at
    random): no single frame says which way it goes, and the edges' sign alone does not either."""
    rng = np.random.default_rng(seed)
    dx, dy = DIRECTIONS[direction]
    texture = TEXTURE + 170 if rng.random() < 0.5 else TEXTURE
    background = np.full((SIZE, SIZE, 3), rng.integers(95, 160), np.uint8)
    travel = SPEED * (FRAMES - 1)

    def start(d: int) -> int:
        low, high = (0, SIZE - SIDE) if d == 0 else (0, SIZE - SIDE - travel) if d > 0 else (travel, SIZE - SIDE)
        return int(rng.integers(low, high + 1))

    x0, y0 = start(dx), start(dy)

    def frame(i: int, width: int, height: int) -> np.ndarray:
        f = background.copy()
        x, y = x0 + dx * SPEED * i, y0 + dy * SPEED * i
        f[y : y + SIDE, x : x + SIDE] = texture
        return f

    return frame


def write_motion(root: Path, per_label: dict[str, int], labels=tuple(DIRECTIONS)) -> Path:
    """root/<split>/<direction>/<i>.avi"""
    for s, (split, n) in enumerate(per_label.items()):
        for k, label in enumerate(labels):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                frames = moving(label, 1000 * s + 100 * k + i)
                write_video(root / split / label / f"{i}.avi", FRAMES, (SIZE, SIZE), frame_fn=frames)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=["a", "b", "c", "d", "e"])


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIVIT_CACHE", str(tmp_path / "vivit-cache"))


def invoke(*args: str | Path):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def full(data: Path, checkpoint: Path, out: Path, *more: str | Path):
    return invoke("train", data, "--model", checkpoint, "--out", out, "-j", "1", "--dtype", "float32", "--full", *more)


MOTION_RUN = ("--epochs", "12", "--lr", "3e-3", "--warmup", "2", "-b", "4")


@pytest.fixture(scope="module")
def motion_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_motion(tmp_path_factory.mktemp("motion"), {"train": 10, "val": 5})


@pytest.fixture(scope="module")
def motion(motion_data: Path, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("models") / "motion-model"
    result = full(motion_data, checkpoint, out, *MOTION_RUN)
    assert result.exit_code == 0, result.output
    return out, result.stderr


def test_the_whole_network_learns_what_only_motion_tells_apart(motion: tuple[Path, str]) -> None:
    out, stderr = motion
    record = json.loads((out / "training.json").read_text("utf-8"))
    assert record["probe"]["accuracy"] <= 0.7  # the frozen backbone's head: well below
    # --full starts from the strongest L2 within a point of the probe's best validation accuracy, not the lowest loss
    assert record["settings"]["l2"] == 0.1 and "l2 0.1, the strongest L2 within a point" in stderr
    assert record["validation"]["accuracy"] >= 0.9  # on the held-out videos, their clips averaged
    assert len(record["epochs"]) == 12 and record["full"]["best_epoch"] in range(1, 13)
    assert record["full"]["lr"] == 3e-3 and record["full"]["flip"] is False and record["full"]["processes"] == 1
    assert [line.split()[1] for line in stderr.splitlines() if line.startswith("epoch ")] == [
        f"{e}/12" for e in range(1, 13)
    ]
    assert "Waiting for decoded clips: " in stderr
    assert stderr.strip().splitlines()[-1].endswith(f"vivit classify --model {out} VIDEO")
    assert (out / "training.png").read_bytes().startswith(b"\x89PNG")
    assert not (out / "training-state.pt").exists()  # the run ended: no state left to resume
    card = (out / "README.md").read_text("utf-8")
    assert "fine-tuned (`--full`)" in card and "no horizontal flip" in card


def test_the_fine_tuned_folder_loads_in_transformers_with_equal_logits(motion: tuple[Path, str]) -> None:
    from vivit_cli.checkpoint import load_checkpoint

    out, _ = motion
    ours = load_checkpoint(out).model
    theirs = hf().VivitForVideoClassification.from_pretrained(out, attn_implementation="eager").eval()
    assert theirs.config.id2label == dict(enumerate(sorted(DIRECTIONS)))
    assert all(v.dtype == torch.float32 for v in load_file(out / "model.safetensors").values())
    x = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(theirs(x).logits, ours(x).logits, atol=1e-4, rtol=1e-4)


def test_clips_that_come_before_their_turn_keep_their_own_frames(tmp_path: Path) -> None:
    """The workers finish out of order (the plan's first video answers late): the clips taken before their turn are
    kept while the pool reuses their shared blocks, and each micro-batch holds its own video's clip, in the plan's
    order."""
    from vivit_cli.batch.pool import DecodePool
    from vivit_cli.learn.clips import ClipSpec, decode_clip
    from vivit_cli.learn.feed import Feed, Plan

    seed, count = 5, 12  # more videos than the ring has blocks (a few batches ahead)
    plan = Plan(count, batch=1)
    order = [i for step in plan.steps(seed, 0) for micro in step for i in micro]
    directions = list(DIRECTIONS)
    paths = [
        str(write_video(tmp_path / f"{'late-' if i == order[0] else ''}{i}.avi", FRAMES, (SIZE, SIZE),
                        frame_fn=moving(directions[i % 4], i)))
        for i in range(count)
    ]  # fmt: skip
    spec = ClipSpec(4, 2, (16, 16), seed, 0, False)
    with DecodePool(2, 60, decode=faults.late("late-", 1.0)) as pool:
        feed = Feed(pool, [(path, i) for i, path in enumerate(paths)], plan, lambda epoch: spec, seed)
        micros = list(feed.epoch(0))
    assert [m.labels.tolist() for m in micros] == [[i] for i in order] and not feed.failed
    for m in micros:
        np.testing.assert_array_equal(m.frames[0].numpy(), decode_clip(paths[m.labels.item()], spec).frames)


def test_bf16_autocast_trains_the_motion_task_as_well_as_fp32(
    motion: tuple[Path, str], motion_data: Path, checkpoint: Path, tmp_path: Path
) -> None:
    """The same run in bf16 autocast (fp32 weights): this CPU may have no native bf16, and torch then emulates it,
    slowly, which a tiny model affords."""
    result = full(motion_data, checkpoint, tmp_path / "bf16", *MOTION_RUN, "--dtype", "bfloat16")
    assert result.exit_code == 0, result.output
    bf16, fp32 = (json.loads((out / "training.json").read_text("utf-8")) for out in (tmp_path / "bf16", motion[0]))
    assert bf16["full"]["dtype"] == "bfloat16" and fp32["full"]["dtype"] == "float32"
    assert bf16["validation"]["accuracy"] >= fp32["validation"]["accuracy"] - 0.05  # within a video of 20
    assert all(v.dtype == torch.float32 for v in load_file(tmp_path / "bf16" / "model.safetensors").values())


SMALL_RUN = ("--epochs", "2", "--lr", "1e-3", "-b", "2", "--clips", "1")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_motion(tmp_path_factory.mktemp("small"), {"train": 3, "val": 1}, labels=("left", "right"))


def test_a_run_stopped_after_an_epoch_and_resumed_ends_as_an_uninterrupted_one(
    small: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vivit_cli.cli.epochs import Epochs

    whole = full(small, checkpoint, tmp_path / "whole", *SMALL_RUN)
    assert whole.exit_code == 0, whole.output
    done = Epochs.done

    def stop_after_the_first(self: Epochs, epoch: int, figures: object) -> None:
        done(self, epoch, figures)
        raise KeyboardInterrupt  # Ctrl-C as the second epoch begins

    monkeypatch.setattr(Epochs, "done", stop_after_the_first)
    stopped = full(small, checkpoint, tmp_path / "m", *SMALL_RUN)
    assert stopped.exit_code == 130 and "add --resume to the same command" in stopped.stderr
    assert (tmp_path / "m" / "training-state.pt").is_file() and not (tmp_path / "m" / "config.json").exists()
    monkeypatch.undo()
    again = full(small, checkpoint, tmp_path / "m", *SMALL_RUN, "--resume")
    assert again.exit_code == 0, again.output
    assert "Going on from epoch 1 of 2" in again.stderr and "Embedding" not in again.stderr
    a, b = (load_file(folder / "model.safetensors") for folder in (tmp_path / "whole", tmp_path / "m"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    epochs = [
        json.loads((f / "training.json").read_text("utf-8"))["epochs"] for f in (tmp_path / "whole", tmp_path / "m")
    ]
    assert [e["train_loss"] for e in epochs[0]] == pytest.approx([e["train_loss"] for e in epochs[1]], abs=1e-6)


def test_resume_refuses_other_data_or_settings_naming_what_differs(
    small: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vivit_cli.cli.epochs import Epochs

    def stop(self: Epochs, epoch: int, figures: object, done=Epochs.done) -> None:
        done(self, epoch, figures)
        raise KeyboardInterrupt

    monkeypatch.setattr(Epochs, "done", stop)
    assert full(small, checkpoint, tmp_path / "m", *SMALL_RUN).exit_code == 130
    monkeypatch.undo()
    other = full(small, checkpoint, tmp_path / "m", *SMALL_RUN, "--lr", "0.5", "--resume")
    assert other.exit_code == 2 and "--lr (0.001 then, 0.5 now)" in other.stderr
    write_video(small / "train" / "left" / "new.avi", FRAMES, (SIZE, SIZE), frame_fn=moving("left", 99))
    try:
        changed = full(small, checkpoint, tmp_path / "m", *SMALL_RUN, "--resume")
    finally:
        (small / "train" / "left" / "new.avi").unlink()
    assert changed.exit_code == 2 and "data (1 videos new or changed, 0 gone: +" in changed.stderr
    assert "new.avi (left)" in changed.stderr and len(changed.stderr.strip().splitlines()) == 1
    nothing = full(small, checkpoint, tmp_path / "other", *SMALL_RUN, "--resume")
    assert nothing.exit_code == 2 and "holds no stopped --full run" in nothing.stderr


def test_two_gloo_processes_end_as_one_with_the_same_global_batch(
    small: Path, checkpoint: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VIVIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    args = ["train", str(small), "--model", str(checkpoint), "-j", "1", "--dtype", "float32", "--full",
            "--epochs", "2", "--lr", "1e-3", "--clips", "1", "-q"]  # fmt: skip
    one = subprocess.run(
        [sys.executable, "-m", "vivit_cli", *args, "--out", str(tmp_path / "one"), "-b", "2"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    two = subprocess.run(
        [*torchrun, "-m", "vivit_cli", *args, "--out", str(tmp_path / "two"), "-b", "1"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("one", "two"))
    for k in a:
        # A key's bias adds the same to every score of a query, which the softmax takes away: its gradient is zero up
        # to rounding, and Adam turns rounding (which differs with the sum's order) into steps of the full rate.
        if not k.endswith("attention.key.bias"):
            torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    runs = [json.loads((tmp_path / name / "training.json").read_text("utf-8"))["epochs"] for name in ("one", "two")]
    assert [e["train_loss"] for e in runs[0]] == pytest.approx([e["train_loss"] for e in runs[1]], abs=1e-5)
    record = json.loads((tmp_path / "two" / "training.json").read_text("utf-8"))
    assert record["full"]["processes"] == 2 and record["full"]["batch_size"] == 1


def test_bad_input_is_one_line(small: Path, checkpoint: Path, tmp_path: Path) -> None:
    from vivit_cli.locks import held

    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((checkpoint / "config.json").read_text("utf-8"), "utf-8")
    result = full(small, no_weights, tmp_path / "m")
    assert result.exit_code == 3 and "has no weights to fine-tune" in result.stderr
    result = full(small, checkpoint, tmp_path / "m", "--epochs", "0")
    assert result.exit_code == 2 and "--epochs" in result.stderr
    result = invoke("train", small, "--model", checkpoint, "--out", tmp_path / "m", "--epochs", "3")
    assert result.exit_code == 2 and "--epochs is an option of --full" in result.stderr
    with held(tmp_path / "busy", "--out"):  # another run (a torchrun's process 0) writes it
        result = full(small, checkpoint, tmp_path / "busy")
    assert result.exit_code == 2 and "is in use by another vivit run" in result.stderr
    assert not (tmp_path / "m").exists()


GIB = 2**30


@pytest.mark.parametrize(
    ("choice", "needed", "free", "on"),
    [
        ("auto", 10 * GIB, 4 * GIB, True),  # a GPU with less free than the activations: on
        ("auto", 2 * GIB, 4 * GIB, False),  # room enough: off, and no time spent recomputing
        ("auto", 10 * GIB, None, False),  # a CPU (free unknown): off
        ("on", 1, 4 * GIB, True),
        ("off", 10 * GIB, 4 * GIB, False),
    ],
)
def test_grad_ckpt_auto_turns_it_on_where_the_activations_exceed_free_memory(
    choice: str, needed: int, free: int | None, on: bool
) -> None:
    from vivit_cli.learn.memory import wants_grad_ckpt

    assert wants_grad_ckpt(choice, needed, free) is on


def test_the_activation_estimate_grows_with_the_batch_and_halves_in_16_bit() -> None:
    from vivit_cli.config import VivitConfig
    from vivit_cli.learn.memory import activation_bytes

    base = VivitConfig()  # ViViT-B: 3,137 tokens, 12 layers of 768
    one = activation_bytes(base, 1, "bfloat16")
    assert 0.5 * GIB < one < 2 * GIB
    assert activation_bytes(base, 8, "bfloat16") == 8 * one and activation_bytes(base, 1, "float32") == 2 * one


def test_a_step_out_of_gpu_memory_names_what_should_fit(
    small: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vivit_cli.learn.finetune import Trainer

    def out_of_memory(self: Trainer, micro: object, totals: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "_pass", out_of_memory)
    result = full(small, checkpoint, tmp_path / "m", "--epochs", "1", "-b", "4")
    line = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 2 and line.startswith("Error: ") and "Traceback" not in result.stderr
    assert "ran out of memory training on 4 clips" in line and "--grad-ckpt on" in line
    assert "--batch-size 2 --accumulate 2" in line
    result = full(small, checkpoint, tmp_path / "m", "--epochs", "1", "-b", "4", "--grad-ckpt", "on")
    line = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 2 and "--grad-ckpt on: try --batch-size 2 --accumulate 2" in line


@pytest.mark.parametrize(
    ("accuracies", "chosen"),
    [
        ((0.45, 0.65, 0.55, 0.55, 0.55), 0.1),  # the motion task's probe: the best accuracy, its strongest L2
        ((0.655, 0.64, 0.66, 0.60, 0.60), 1.0),  # within a point of the best: the strongest wins
        ((0.30, 0.50, 0.70, 0.80, 0.80), 1e-3),  # equal best: the stronger of the two
    ],
)
def test_full_starts_from_the_strongest_l2_within_a_point_of_the_best(
    accuracies: tuple[float, ...], chosen: float
) -> None:
    from vivit_cli.learn.head import L2_GRID, Fit, Head, strongest_near_best

    zeros = np.zeros((2, 3), np.float32)
    heads = [
        Head(zeros, zeros[0], Fit(l2, 1.0, acc, 0.5))
        for l2, acc in zip(sorted(L2_GRID, reverse=True), accuracies, strict=True)
    ]
    assert strongest_near_best(heads).fit.l2 == chosen

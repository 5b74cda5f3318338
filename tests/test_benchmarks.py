"""The benchmark scripts still run: gpu_check.py's steps on the CPU with a tiny model, report.py's harness.

They time nothing here; the figures are only checked to be there. Each runs as a user runs it, in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_gpu_check_runs_every_step_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    done = run("gpu_check.py", "--quick", "--device", "cpu", "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["errors"] == {}
    assert figures["machine"]["cpu_cores"] >= 1
    correct = figures["correctness"]
    for dtype in ("bf16", "fp16"):
        assert 0 <= correct[f"{dtype}_vs_fp32"]["max_abs_prob_diff"] < 0.01
        assert 0 <= correct[f"{dtype}_vs_fp32"]["top1_agreement"] <= 1
    speed = figures["speed"]
    assert {(r["dtype"], r["batch"]) for r in speed["rows"]} == {(d, b) for d in ("bf16", "fp16", "fp32")
                                                                 for b in (1, 2)}  # fmt: skip
    assert all(r["clips_per_s"] > 0 and r["of_bf16_matmul_peak"] > 0 for r in speed["rows"])
    assert set(speed["sdpa_backend"]) == {"bf16", "fp16", "fp32"}
    assert figures["compile"]["compile_s"] > 0 and figures["compile"]["speedup"] > 0
    runs = figures["batch_command"]["runs"]
    assert [r["workers"] for r in runs] == [1, 2]
    assert all(r["videos_per_s_wall"] > 0 and r["model_share_of_loop"] is not None for r in runs)
    assert all(r["feed_clips_per_s"] > 0 and r["feed_vs_decode"] > 0 for r in runs)
    assert figures["batch_command"]["bottleneck"].split(":")[0] in ("decoding", "the model")
    assert "bottleneck: " in done.stdout
    tuned = figures["finetune"]
    assert {(r["batch"], r["grad_ckpt"]) for r in tuned["rows"]} == {(b, on) for b in (1, 4, 8) for on in (False, True)}
    assert all(r["clips_per_s"] > 0 and r["estimated_activations_gib"] > 0 for r in tuned["rows"])
    assert tuned["largest_batch"] == {"off": None, "on": None}  # no out-of-memory to find on a CPU
    assert "finetune: train --full's step" in done.stdout
    assert "vivit batch" in done.stdout and "correctness" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_bench_feed_quick_compares_the_three_hand_overs(tmp_path: Path) -> None:
    done = run("bench_feed.py", "--quick", "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert figures["bytes_per_view"] == 8 * 56 * 56 * 3  # uint8: a quarter of float32's
    assert figures["handovers"]["float32 pipe"]["bytes_per_view"] == 4 * figures["bytes_per_view"]
    assert figures["handover_ms_per_view"] > 0 and figures["feed_vs_decode"] > 0
    assert "feed/decode" in done.stderr


def test_bench_finetune_tiny_times_the_step_and_gradient_checkpointing(tmp_path: Path) -> None:
    done = run("bench_finetune.py", "--tiny", "--steps", "2", "--json", str(tmp_path / "f.json"), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tiny = json.loads((tmp_path / "f.json").read_text())["models"]["tiny"]
    assert tiny["step"]["step_s"] > 0 and tiny["step"]["fwd_bwd_s"] > 0 and tiny["step"]["ratio"] > 0
    assert [(r["batch"], r["grad_ckpt"]) for r in tiny["grad_ckpt"]] == [(2, False), (2, True)]
    assert all(r["step_s"] > 0 and r["peak_mib"] > 0 for r in tiny["grad_ckpt"])
    assert "fwd+bwd alone" in done.stdout


def test_gpu_check_without_cuda_says_so_and_exits_0(tmp_path: Path) -> None:
    done = run("gpu_check.py", "--out", str(tmp_path / "none.json"))
    assert done.returncode == 0
    assert len(done.stdout.strip().splitlines()) == 1 and "no CUDA" in done.stdout
    assert not (tmp_path / "none.json").exists()


def test_report_help() -> None:
    done = run("report.py", "--help")
    assert done.returncode == 0 and "--quick" in done.stdout


def test_report_quick_model_table(tmp_path: Path) -> None:
    """The quickest part of the report: the model benchmark with a tiny model, and its rows in the table."""
    done = run("report.py", "--quick", "--only", "model", "--json", str(tmp_path / "report.json"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout
    assert "CPU:" in table and "CPU bf16:" in table
    assert "model fp32, batch 1: ours / transformers sdpa" in table
    assert "matmul peak" in table
    assert json.loads((tmp_path / "report.json").read_text())["figures"]["model"]["rows"]


def test_report_rejects_an_unknown_benchmark() -> None:
    done = run("report.py", "--only", "model,nonsense")
    assert done.returncode == 2 and "nonsense" in done.stderr


def test_bench_train_tiny(tmp_path: Path) -> None:
    """bench_train's harness on a tiny model: embedding alone, then train and a second train from the cache."""
    out = tmp_path / "train.json"
    done = run("bench_train.py", "--tiny", "--videos", "6", "--clips", "1", "--no-cli", "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["videos"] == 6 and figures["embed_s"] > 0 and figures["train_over_embed"] > 0
    assert figures["again_s"] > 0 and figures["again_process_s"] is None
    assert "train / embed alone" in done.stdout


def test_bench_label_simulates_the_loop_and_a_random_order(tmp_path: Path) -> None:
    """bench_label's person on made data with labels of several looks and a tiny model: every figure is there and
    within what it can be."""
    from tests.checkpoints import write_ours

    made = run("bench_label.py", "--make", str(tmp_path / "data"), "--per-label", "5", "--json")
    assert made.returncode == 0, made.stderr[-3000:]
    looks = json.loads(made.stdout)["videos_per_look"]
    assert len(looks) >= 3 and all(len(counts) == 3 and counts[0] > counts[2] >= 1 for counts in looks.values())
    videos = sum(sum(counts) for counts in looks.values())
    model = write_ours(tmp_path / "model")
    done = run("bench_label.py", str(tmp_path / "data"), "--model", str(model), "--seeds", "2", "--threads", "1",
               "--cache-dir", str(tmp_path / "cache"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = done.stdout.splitlines()
    figures = json.loads(line)
    assert figures["videos"] == videos and figures["labels"] == len(looks) and figures["seeds"] == 2
    for strategy in ("loop", "random"):
        assert len(figures[f"{strategy}_runs"]) == 2
        assert all(1 <= n <= videos for n in figures[f"{strategy}_runs"])
        assert min(figures[f"{strategy}_runs"]) <= figures[strategy] <= max(figures[f"{strategy}_runs"])
    assert 0 < figures["all"] <= 1 and abs(figures["target"] - (figures["all"] - 0.02)) < 1e-3
    assert figures["ratio"] == round(figures["loop"] / figures["random"], 3)
    assert "cross-validated" in figures["all_measured"] and "not yet answered" in figures["measured"]
    assert figures["cpu"]


def test_bench_label_speed_small(tmp_path: Path) -> None:
    """bench_label --speed with small sizes: the re-trains, the server's work and (where there is a browser) the
    page, each a median and a max."""
    done = run("bench_label.py", "--speed", "--videos", "60", "--answers", "20", "--dim", "8", "--labels", "3",
               "--repeats", "2", "--threads", "1", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert (figures["videos"], figures["answers"], figures["dim"], figures["views"]) == (60, 20, 8, 3)
    names = ("retrain_cold", "retrain_warm", "publish", "answer_to_next_json", "cross_validated_accuracy")
    timed = [figures[name] for name in names]
    if figures["page"] is not None:
        timed += [figures["page"]["load"], figures["page"]["answer_to_next_on_screen"]]
    assert all(0 < t["median_s"] <= t["max_s"] for t in timed)


def test_bench_decode_resolutions_compares_threads_and_pools(tmp_path: Path) -> None:
    """bench_decode --resolutions on a short 360p video: ours against the plain read, every reader (OpenCV's and
    PyAV's threads) and every pool that fills the cores, each figure there and the best pool named."""
    out = tmp_path / "decode.json"
    done = run("bench_decode.py", "--resolutions", "360", "--seconds", "3", "--repeats", "1", "--pool-seconds", "0.2",
               "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["cpu"] and figures["cores"] >= 1 and figures["opencv_default_threads"] >= 1
    assert figures["threads_started"]["1"] in (0, None)
    r = figures["resolutions"]["360p"]
    assert r["size"] == [640, 360] and r["ratio"] > 0 and r["ours_s"] > 0 and r["plain_s"] > 0
    assert {"ours_default", "ours_t1", "plain_t1", "pyav_t1", "pyav_auto_t2", "pyav_frame_t2"} <= set(r["readers"])
    assert all(f["wall_s"] > 0 and f["clips_per_cpu_s"] > 0 for f in r["readers"].values())
    assert {"ours_default", "ours_t1", "ours_t2", "pyav_t1", "pyav_frame_t2"} == set(r["pools"])
    assert all(f["clips_per_s"] > 0 and f["per_core"] > 0 for f in r["pools"].values())
    assert r["pools"]["ours_default"]["vs_default"] == 1 and r["best_pool"] in r["pools"]
    assert "most clips per second per core" in done.stdout

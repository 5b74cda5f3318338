"""The decode pool's hand-over: uint8 frames through a shared ring of blocks, normalised on the model's device; a
crashed or hung worker, views too big for a block, and every way a run ends leave no block lost or leaked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests import faults
from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.batch import ring, worker
from vivit_cli.batch.pool import DONE, Decoded, DecodePool
from vivit_cli.batch.worker import DecodeSpec
from vivit_cli.pipeline import load_model, score_videos
from vivit_cli.video.preprocess import PreprocessConfig
from vivit_cli.video.sampling import Views
from vivit_cli.video.views import prepare_video

VIDEOS = 8  # more than the ring's blocks: each block is used again and again
FRAMES = 12
SPEC = DecodeSpec(4, PreprocessConfig(shortest_edge=24, crop_hw=(16, 16)), Views(clips=2, crops=3))
needs_ring = pytest.mark.skipif(not ring.available(), reason="no memfd here: frames travel through the pipe")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Videos that differ in every frame (each its own seed), so frames read from a wrong block are seen."""
    root = tmp_path_factory.mktemp("videos")

    def noise(seed: int):
        return lambda i, w, h: np.random.default_rng([seed, i]).integers(0, 256, (h, w, 3), dtype=np.uint8)

    return [str(write_video(root / f"{i}.avi", FRAMES, (40, 32), "MJPG", frame_fn=noise(i))) for i in range(VIDEOS)]


def expected(path: str) -> np.ndarray:
    return prepare_video(path, SPEC.num_frames, SPEC.preprocess, SPEC.views).frames


def answers(pool: DecodePool, paths: list[str], max_pending: int) -> dict[str, Decoded]:
    """Every answer, its frames compared with a decode in this process while they are still lent."""
    pool.submit(paths, SPEC, max_pending)
    found = {}
    while (item := pool.get()) is not DONE:
        assert item is not None
        if item.prepared is not None:
            np.testing.assert_array_equal(item.prepared.frames, expected(item.path))
        found[item.path] = item
    return found


def memfds() -> list[str]:
    """This process's descriptors that are the ring."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, closed by now
            continue
        found += [link] if link.startswith(f"memfd:{ring.NAME}") else []
    return found


@needs_ring
def test_frames_come_as_uint8_views_through_blocks_used_again_and_again(videos: list[str]) -> None:
    shm = sorted(os.listdir("/dev/shm"))
    with DecodePool(2, 60) as pool:
        found = answers(pool, videos, max_pending=2)
        assert pool._ring is not None and pool._ring.count == 3 and pool._ring.free == 3  # all given back at DONE
    assert sorted(found) == sorted(videos)
    for item in found.values():
        assert item.block is not None and item.prepared is not None
        assert item.prepared.frames.dtype == np.uint8 and item.prepared.frames.shape == (6, 4, 16, 16, 3)
        assert 0 < item.decode_s and 0 < item.handed_s
    assert len({item.block for item in found.values()}) == 3  # 8 videos through 3 blocks
    assert memfds() == [] and sorted(os.listdir("/dev/shm")) == shm  # nothing named, nothing held after close


@needs_ring
def test_a_crashed_and_a_hung_worker_give_their_blocks_back(videos: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker on 2.avi dies holding a block, the one on 5.avi is killed at the timeout holding another: each
    file gets its error, the others their own frames, and every block comes back."""
    faults.install(monkeypatch, hang_on="5.avi", crash_on="2.avi")
    with DecodePool(2, 2.0) as pool:
        found = answers(pool, videos, max_pending=2)
        assert pool._ring is not None and pool._ring.free == pool._ring.count
    assert "crashed" in (found[videos[2]].error or "") and "longer than 2 s" in (found[videos[5]].error or "")
    assert sum(item.prepared is not None for item in found.values()) == VIDEOS - 2
    assert memfds() == []


def test_views_that_do_not_fit_a_block_come_through_the_pipe(
    videos: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More views than the block was made for (there: a checkpoint without a centre crop) travel pickled."""
    monkeypatch.setattr(DecodeSpec, "frames_bytes", property(lambda spec: 1024))
    with DecodePool(1, 60) as pool:
        found = answers(pool, videos[:3], max_pending=1)
    assert all(item.block is None and item.prepared is not None for item in found.values())


def test_the_pool_uses_the_body_the_workers_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A decode body swapped in before the pool starts is the one its workers run (the fault tests rely on it)."""
    monkeypatch.setattr(worker, "decode", faults.faulty(crash_on="x"))
    assert DecodePool(1, 60)._decode is worker.decode


@pytest.mark.filterwarnings("ignore:this CPU has no native bf16")
def test_uint8_frames_normalised_on_the_device_score_as_float_pixels_do(tmp_path: Path, videos: list[str]) -> None:
    """fp32: equal to the float32 pixel values normalised on the CPU, to the last bit; bf16: close to them."""
    folder = write_ours(tmp_path / "ckpt", labels=["a", "b", "c"])
    clf = load_model(folder, dtype="float32")
    frames = prepare_video(videos[0], clf.config.num_frames, clf.preprocess, Views(clips=2)).frames  # (V, T, S, S, C)
    pixels = torch.stack([clf.preprocess(f) for f in frames])  # (V, T, C, S, S) float32, as before
    np.testing.assert_array_equal(clf.preprocess.normalise(torch.from_numpy(frames)), pixels)
    np.testing.assert_array_equal(clf.scores(torch.from_numpy(frames)), clf.scores(pixels))
    (batched,) = score_videos(clf, [frames], batch_size=len(frames))  # through ViewBatcher's uint8 batch
    np.testing.assert_array_equal(batched, clf.scores(pixels))
    bf16 = load_model(folder, dtype="bfloat16")
    np.testing.assert_allclose(bf16.scores(torch.from_numpy(frames)), clf.scores(pixels), atol=0.05)


@needs_ring
def test_rounds_after_rounds_reuse_the_workers_and_grow_the_ring(videos: list[str]) -> None:
    """train --full decodes each epoch as a round: the workers start once; a round whose views need bigger blocks
    gets a new ring, and its frames are right."""
    with DecodePool(1, 60, decode=worker.decode) as pool:
        answers(pool, videos[:3], max_pending=2)
        pids, first = [w.process.pid for w in pool._slots], pool._ring
        answers(pool, videos[3:5], max_pending=2)  # the same sizes: the same ring
        assert pool._ring is first
        bigger = DecodeSpec(SPEC.num_frames, SPEC.preprocess, Views(clips=3, crops=3))
        pool.submit(videos[:2], bigger, 2)
        while (item := pool.get()) is not DONE:
            assert item is not None and item.prepared is not None and item.block is not None
            want = prepare_video(item.path, bigger.num_frames, bigger.preprocess, bigger.views).frames
            np.testing.assert_array_equal(item.prepared.frames, want)
        assert pool._ring is not first and [w.process.pid for w in pool._slots] == pids

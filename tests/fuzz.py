"""Damaged videos, made the same way every time: a real H.264 mp4 and an MJPEG avi, cut, bit-flipped, with chunks
swapped or the index zeroed. For the fuzz tests and benchmarks/fuzz.py; nothing in vivit_cli knows of them."""

from __future__ import annotations

import random
from pathlib import Path

from tests.videos import h264_video, write_video, write_video_ffmpeg

SEED = 13  # the issue that asked for them
FRAMES = 48  # per source video: two H.264 GOPs of 24
SIZE = (64, 48)  # width x height
KINDS = ("truncate", "flip", "swap", "zero_index")
FLIPS = (1, 64)  # bytes flipped per "flip" variant: at least, at most
SWAP_BYTES = (16, 4096)  # length of each swapped chunk: at least, at most
INDEX_BOXES = {".mp4": b"moov", ".avi": b"idx1"}  # the index a "zero_index" variant zeroes


def sources(folder: Path) -> list[Path]:
    """The undamaged videos: H.264 in .mp4 (B-frames, index at the end) and MJPEG in .avi."""
    folder.mkdir(parents=True, exist_ok=True)
    lossless = write_video_ffmpeg(folder / "source.mkv", FRAMES, SIZE)
    return [h264_video(lossless, folder / "h264.mp4"), write_video(folder / "mjpeg.avi", FRAMES, SIZE, "MJPG")]


def damage(data: bytes, kind: str, suffix: str, rng: random.Random) -> bytes:
    """One damaged copy of `data`."""
    out = bytearray(data)
    if kind == "truncate":
        return bytes(out[: rng.randrange(1, len(out))])
    if kind == "flip":
        for _ in range(rng.randint(*FLIPS)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == "swap":
        n = rng.randint(SWAP_BYTES[0], min(SWAP_BYTES[1], len(out) // 2))
        a = rng.randrange(len(out) - 2 * n + 1)
        b = rng.randrange(a + n, len(out) - n + 1)  # after the first: the two never overlap
        out[a : a + n], out[b : b + n] = data[b : b + n], data[a : a + n]
        return bytes(out)
    if kind == "zero_index":
        box = INDEX_BOXES[suffix]
        at = data.find(box)
        if at < 4:
            return bytes(out)
        size = int.from_bytes(data[at - 4 : at], "big" if suffix == ".mp4" else "little")
        end = min(len(out), at + 4 + size) if suffix == ".avi" else min(len(out), at - 4 + size)
        out[at + 4 : end] = bytes(end - at - 4)
        return bytes(out)
    raise ValueError(f"unknown kind of damage {kind!r}")


def variants(folder: Path, count: int, seed: int = SEED) -> list[Path]:
    """`count` damaged files in `folder`, alternating sources and kinds of damage; the same for the same seed."""
    rng = random.Random(seed)
    originals = sources(folder / "sources")
    made = []
    for i in range(count):
        src = originals[i % len(originals)]
        kind = KINDS[(i // len(originals)) % len(KINDS)]
        path = folder / f"{i:04d}-{kind}-{src.stem}{src.suffix}"
        path.write_bytes(damage(src.read_bytes(), kind, src.suffix, rng))
        made.append(path)
    return made

"""Frame sampling and reading: exact indices, frames equal to a sequential decode, distrusted metadata, errors."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from videos import (
    FORMATS,
    corner_frame,
    decode_all,
    decode_index,
    h264_video,
    index_frame,
    rotate_video,
    write_video,
    write_video_ffmpeg,
)

from vivit_cli.errors import VideoError
from vivit_cli.video import decode, probe
from vivit_cli.video.decode import read_frames, sample_clips
from vivit_cli.video.probe import DEFAULT_FPS, checked_fps, open_video
from vivit_cli.video.sampling import Sampling, clip_indices
from vivit_cli.video.sources import VIDEO_SUFFIXES

LONG = 90  # frames: more than SEEK_MIN_GAP_FRAMES, so reads across it seek
REAL_CAPTURE = cv2.VideoCapture


# Composition, not inheritance: a Python subclass of cv2.VideoCapture segfaults once released (OpenCV 5.0).
class WrappedCapture:
    """A real capture behind Python methods that tests override."""

    def __init__(self, *args: object) -> None:
        self._cap = REAL_CAPTURE(*args)

    def __getattr__(self, name: str):
        return getattr(self._cap, name)


# (frame_count, sampling, expected indices per clip), worked out by hand from the README formula:
# span = (T - 1) * stride + 1, room = max(F - span, 0), start_c = room * (2c + 1) // (2N),
# index = min(start_c + j * stride, F - 1).
INDEX_CASES = [
    (100, Sampling(4, 2, 1), [(46, 48, 50, 52)]),
    (100, Sampling(4, 2, 2), [(23, 25, 27, 29), (69, 71, 73, 75)]),
    (100, Sampling(4, 2, 3), [(15, 17, 19, 21), (46, 48, 50, 52), (77, 79, 81, 83)]),
    (300, Sampling(32, 2, 1), [tuple(range(118, 181, 2))]),
    (10, Sampling(3, 1, 1), [(3, 4, 5)]),
    (9, Sampling(2, 5, 2), [(0, 5), (2, 7)]),
    (7, Sampling(4, 2, 1), [(0, 2, 4, 6)]),  # exactly one clip long
    (8, Sampling(4, 2, 3), [(0, 2, 4, 6)] * 3),  # more views than start positions: they coincide
    (5, Sampling(4, 2, 1), [(0, 2, 4, 4)]),  # shorter than a clip: the last frame is held
    (5, Sampling(4, 2, 2), [(0, 2, 4, 4)] * 2),
    (1, Sampling(3, 2, 2), [(0, 0, 0)] * 2),
    (2, Sampling(1, 2, 1), [(0,)]),
]


@pytest.mark.parametrize("frame_count,sampling,expected", INDEX_CASES)
def test_clip_indices_exact(frame_count: int, sampling: Sampling, expected: list[tuple[int, ...]]) -> None:
    assert clip_indices(frame_count, sampling) == expected


def test_clip_indices_invariants() -> None:
    for frame_count in (1, 2, 3, 7, 8, 50, 63, 64, 100, 1001):
        for num_frames in (1, 2, 8, 32):
            for stride in (1, 2, 3):
                for clips in (1, 2, 3, 5):
                    s = Sampling(num_frames, stride, clips)
                    got = clip_indices(frame_count, s)
                    assert len(got) == clips and all(len(c) == num_frames for c in got)
                    assert all(0 <= i < frame_count for c in got for i in c)
                    assert all(list(c) == sorted(c) for c in got)
                    assert [c[0] for c in got] == sorted(c[0] for c in got)
                    if frame_count >= s.span:  # fits: exact stride, and a single clip is centred
                        assert all(b - a == stride for c in got for a, b in zip(c, c[1:], strict=False))
                        if clips == 1:
                            before, after = got[0][0], frame_count - 1 - got[0][-1]
                            assert before - after in (0, -1)


@pytest.mark.parametrize("args", [(0,), (4, 0), (4, 2, 0), (-1,), (4.0,), (4, 2, 1.5)])
def test_sampling_rejects_non_positive_values(args: tuple) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        Sampling(*args)


def test_clip_indices_rejects_an_empty_video() -> None:
    with pytest.raises(ValueError):
        clip_indices(0, Sampling(4))


@pytest.mark.parametrize("fourcc,suffix", FORMATS)
def test_formats_read_like_a_sequential_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fourcc: str, suffix: str
) -> None:
    try:
        path = write_video(tmp_path / f"clip{suffix}", LONG, fourcc=fourcc)
    except RuntimeError as e:  # another OpenCV build may lack this encoder
        pytest.skip(str(e))
    reference = decode_all(path)
    assert [decode_index(f) for f in reference] == list(range(LONG))
    info = open_video(path)
    assert (info.frame_count, info.width, info.height) == (LONG, 64, 48)
    assert info.fps == pytest.approx(30.0)
    assert info.duration_s == pytest.approx(LONG / 30.0)
    wanted = [0, 1, 5, 60, 61, LONG - 1]
    for gap in (decode.SEEK_MIN_GAP_FRAMES, 1):  # as shipped, and seeking across every gap
        monkeypatch.setattr(decode, "SEEK_MIN_GAP_FRAMES", gap)
        frames, times = read_frames(path, wanted, info)
        assert sorted(frames) == wanted
        for i in wanted:
            assert frames[i].dtype == np.uint8 and frames[i].shape == (48, 64, 3)
            assert np.array_equal(frames[i], reference[i]), f"frame {i} differs from the sequential decode"
            assert times[i] == pytest.approx(i / 30.0, abs=1e-3)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_h264_with_b_frames_seeks_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = h264_video(write_video(tmp_path / "src.avi", 120), tmp_path / f"h264{suffix}", bframes=3, gop=24)
    reference = decode_all(path)
    monkeypatch.setattr(decode, "SEEK_MIN_GAP_FRAMES", 1)
    wanted = [0, 3, 23, 24, 25, 47, 50, 71, 97, 119]
    frames, _ = read_frames(path, wanted, open_video(path))
    for i in wanted:
        assert np.array_equal(frames[i], reference[i]) and decode_index(frames[i]) == i


@pytest.mark.parametrize(
    "size,codec",
    [
        ((97, 61), ("-c:v", "ffv1")),  # lossless RGB: frames must match exactly
        ((61, 97), ("-c:v", "ffv1")),  # odd and portrait
        ((97, 61), ("-c:v", "mjpeg", "-pix_fmt", "yuvj444p", "-q:v", "2")),
    ],
)
def test_odd_sizes_come_out_whole(tmp_path: Path, size: tuple[int, int], codec: tuple[str, ...]) -> None:
    path = write_video_ffmpeg(tmp_path / "odd.mkv", 20, size, codec, frame_fn=corner_frame)
    info, (clip,) = sample_clips(path, Sampling(4, 3))
    assert (info.width, info.height, info.frame_count) == (*size, 20)
    assert clip.frames.shape == (4, size[1], size[0], 3)
    for i, frame in zip(clip.frame_indices, clip.frames, strict=True):
        expected = corner_frame(i, *size)
        if codec[1] == "ffv1":
            assert np.array_equal(frame, expected)
        else:
            assert np.abs(frame.astype(int) - expected).mean() < 4
        assert tuple(frame[2, 2]) == pytest.approx((255, 0, 0), abs=12)  # RGB, not BGR


def test_gray_video_comes_out_as_rgb(tmp_path: Path) -> None:
    path = write_video_ffmpeg(tmp_path / "gray.mkv", 12, (64, 48), ("-c:v", "ffv1", "-pix_fmt", "gray"))
    frames, _ = read_frames(path, range(12))
    for i, frame in frames.items():
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert np.array_equal(frame, index_frame(i, 64, 48))


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_phone_video_comes_out_upright(tmp_path: Path, degrees: int) -> None:
    src = write_video(tmp_path / "sensor.mp4", 10, size=(64, 32), fourcc="mp4v", frame_fn=corner_frame)
    path = rotate_video(src, tmp_path / "phone.mp4", degrees)
    info = open_video(path)
    upright = (32, 64) if degrees % 180 else (64, 32)
    assert (info.width, info.height) == upright
    frames, _ = read_frames(path, range(10), info)
    for i, frame in frames.items():
        # -display_rotation is counter-clockwise, as np.rot90 turns.
        expected = np.rot90(corner_frame(i, 64, 32), k=degrees // 90)
        assert frame.shape == expected.shape
        assert np.abs(frame.astype(int) - expected).mean() < 6
        assert decode_index(np.rot90(frame, k=-(degrees // 90))) == i


def test_short_video_holds_its_last_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "short.avi", 5)
    info, clips = sample_clips(path, Sampling(6, 2, 2))
    assert info.frame_count == 5 and len(clips) == 2
    for c, clip in enumerate(clips):
        assert clip.index == c
        assert clip.frame_indices == (0, 2, 4, 4, 4, 4)
        assert [decode_index(f) for f in clip.frames] == [0, 2, 4, 4, 4, 4]
        assert clip.timestamps_s == pytest.approx((0, 2 / 30, 4 / 30, 4 / 30, 4 / 30, 4 / 30))


def test_single_frame_video(tmp_path: Path) -> None:
    info, (clip,) = sample_clips(write_video(tmp_path / "one.avi", 1), Sampling(8))
    assert info.frame_count == 1 and clip.frame_indices == (0,) * 8
    assert clip.frames.shape == (8, 48, 64, 3)


def test_sample_clips_returns_the_frames_it_names(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clips.mp4", 200, fourcc="mp4v")
    info, clips = sample_clips(path, Sampling(8, 3, 3))
    assert [c.frame_indices for c in clips] == clip_indices(200, Sampling(8, 3, 3))
    for clip in clips:
        assert clip.frames.shape == (8, 48, 64, 3) and clip.frames.dtype == np.uint8
        assert [decode_index(f) for f in clip.frames] == list(clip.frame_indices)
        assert clip.timestamps_s == pytest.approx([i / 30 for i in clip.frame_indices], abs=1e-3)


@pytest.fixture
def capture_log(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Records every grab (index decoded), packet (raw-mode grab), retrieve and seek (index asked for)."""
    log: list[tuple[str, int]] = []

    class Spy(WrappedCapture):
        def grab(self) -> bool:
            ok = self._cap.grab()
            if ok:
                raw = self._cap.get(cv2.CAP_PROP_FORMAT) == -1
                log.append(("packet" if raw else "grab", round(self._cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1))
            return ok

        def retrieve(self, *args):
            log.append(("retrieve", round(self._cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1))
            return self._cap.retrieve(*args)

        def set(self, prop: int, value: float) -> bool:
            if prop == cv2.CAP_PROP_POS_FRAMES:
                log.append(("seek", int(value)))
            return self._cap.set(prop, value)

    monkeypatch.setattr(cv2, "VideoCapture", Spy)
    return log


def test_reads_only_what_it_needs(tmp_path: Path, capture_log: list[tuple[str, int]]) -> None:
    path = write_video(tmp_path / "long.mp4", 300, fourcc="mp4v")
    info = open_video(path)
    capture_log.clear()
    frames, _ = read_frames(path, [202, 200, 200, 290, 10, 12], info)
    assert sorted(frames) == [10, 12, 200, 202, 290]
    retrieved = [i for what, i in capture_log if what == "retrieve"]
    assert retrieved == [10, 12, 200, 202, 290]  # each once, in increasing order
    assert [i for what, i in capture_log if what == "seek"] == [200, 290]
    assert sum(what == "grab" for what, _ in capture_log) < 25  # not 290: the gaps were seeked across
    assert [decode_index(frames[i]) for i in sorted(frames)] == [10, 12, 200, 202, 290]


def test_open_video_decodes_a_handful_of_frames(tmp_path: Path, capture_log: list[tuple[str, int]]) -> None:
    path = write_video(tmp_path / "long.mp4", 300, fourcc="mp4v")
    assert open_video(path).frame_count == 300
    # The count is checked on packets at the end, not by decoding up to it.
    assert max(i for what, i in capture_log if what == "grab") < 2 * probe.FPS_PROBE_FRAMES


def test_sample_clips_decodes_overlapping_views_once(tmp_path: Path, capture_log: list[tuple[str, int]]) -> None:
    path = write_video(tmp_path / "overlap.avi", 30)
    _, clips = sample_clips(path, Sampling(8, 2, 4))
    union = sorted({i for c in clips for i in c.frame_indices})
    assert [i for what, i in capture_log if what == "retrieve"][1:] == union  # [0] is open_video's probe


def _lying_capture(monkeypatch: pytest.MonkeyPatch, lies: dict[int, float], land_off_by: int = 0) -> None:
    """Make cv2.VideoCapture report `lies` for those properties, and optionally seek short of the target."""

    class Liar(WrappedCapture):
        def get(self, prop: int) -> float:
            return lies[prop] if prop in lies else self._cap.get(prop)

        def set(self, prop: int, value: float) -> bool:
            if prop == cv2.CAP_PROP_POS_FRAMES and land_off_by and self._cap.get(cv2.CAP_PROP_FORMAT) != -1:
                return self._cap.set(prop, max(value - land_off_by, 0))
            return self._cap.set(prop, value)

    monkeypatch.setattr(cv2, "VideoCapture", Liar)


@pytest.mark.parametrize("count", [0.0, -1.0, -9.2e18, math.nan, math.inf, 50.0, 89.0, 91.0, 1000.0])
def test_wrong_frame_counts_are_corrected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: float) -> None:
    path = write_video(tmp_path / "count.mp4", LONG, fourcc="mp4v")
    _lying_capture(monkeypatch, {cv2.CAP_PROP_FRAME_COUNT: count})
    info, (clip,) = sample_clips(path, Sampling(4, 2))
    assert info.frame_count == LONG
    assert [decode_index(f) for f in clip.frames] == list(clip.frame_indices) == [41, 43, 45, 47]


@pytest.mark.parametrize("fps", [0.0, -30.0, math.nan, math.inf, 90000.0, 1000.0, 7.5])
def test_wrong_fps_falls_back_to_timestamps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fps: float) -> None:
    path = write_video(tmp_path / "fps.avi", LONG, fps=25.0)
    _lying_capture(monkeypatch, {cv2.CAP_PROP_FPS: fps})
    info = open_video(path)
    assert info.fps == pytest.approx(25.0) and info.frame_count == LONG
    frames, times = read_frames(path, [3, 80], info)
    assert [decode_index(frames[i]) for i in (3, 80)] == [3, 80]
    assert times == pytest.approx({3: 3 / 25, 80: 80 / 25})


def test_no_usable_rate_or_timestamps_uses_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_video(tmp_path / "nots.avi", LONG, fps=25.0)
    _lying_capture(monkeypatch, {cv2.CAP_PROP_FPS: math.nan, cv2.CAP_PROP_POS_MSEC: 0.0})
    info = open_video(path)
    assert info.fps == DEFAULT_FPS and info.frame_count == LONG
    # Seeks cannot be checked without timestamps, so reading grabs forward: slower, still exact.
    frames, times = read_frames(path, [3, 80], info)
    assert [decode_index(frames[i]) for i in (3, 80)] == [3, 80]
    assert times == {3: 3 / DEFAULT_FPS, 80: 80 / DEFAULT_FPS}


@pytest.mark.parametrize("claims_success", [False, True])
def test_a_seek_that_lands_elsewhere_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claims_success: bool
) -> None:
    path = write_video(tmp_path / "seek.mp4", 200, fourcc="mp4v")
    info = open_video(path)
    lies = {cv2.CAP_PROP_POS_FRAMES: 150.0} if claims_success else {}  # the position it was asked for
    _lying_capture(monkeypatch, lies, land_off_by=3)
    monkeypatch.setattr(decode, "SEEK_MIN_GAP_FRAMES", 10)
    frames, _ = read_frames(path, [5, 150, 152], info)
    assert [decode_index(frames[i]) for i in (5, 150, 152)] == [5, 150, 152]


def test_read_frames_clamps_past_the_end_and_rejects_negatives(tmp_path: Path) -> None:
    path = write_video(tmp_path / "end.avi", 20)
    frames, times = read_frames(path, [19, 20, 500])
    assert [decode_index(frames[i]) for i in (19, 20, 500)] == [19, 19, 19]
    assert times[500] == times[19]
    assert read_frames(path, []) == ({}, {})
    with pytest.raises(ValueError, match="non-negative"):
        read_frames(path, [-1, 3])


@pytest.mark.parametrize(
    "reported,timestamps_ms,expected",
    [
        (30.0, [0, 33.3, 66.7, 100], 30.0),
        (29.97, [], 29.97),
        (0.0, [0, 40, 80, 120], 25.0),
        (math.nan, [0, 40, 80], 25.0),
        (90000.0, [0, 40, 80], 25.0),
        (60.0, [0, 40, 80, 120], 25.0),  # disagrees with what the decoder delivers
        (0.0, [0, 0, 0], DEFAULT_FPS),
        (math.nan, [], DEFAULT_FPS),
        (-1.0, [0.0], DEFAULT_FPS),
    ],
)
def test_checked_fps(reported: float, timestamps_ms: list[float], expected: float) -> None:
    assert checked_fps(reported, timestamps_ms) == pytest.approx(expected, rel=1e-3)


def _bad_file(tmp: Path, kind: str) -> Path:
    """A file (or not) that no video reader should accept, made the way `kind` says."""
    path = tmp / f"{kind}.mp4"
    if kind == "missing":
        return path
    if kind == "control chars":
        return tmp / "line\nbreak.mp4"
    if kind == "directory":
        path.mkdir()
    elif kind == "link loop":
        path.symlink_to(path.name)
    elif kind == "broken link":
        path.symlink_to("gone.mp4")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "truncated":  # mp4v writes its index (moov) last: half a file has none
        data = write_video(tmp / "whole.mp4", 30, fourcc="mp4v").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "no frames":
        path = write_video(tmp / "no-frames.avi", 0)
    elif kind == "corrupt frames":  # a valid AVI whose JPEG payloads are zeroed
        data = bytearray(write_video(tmp / "ok.avi", 10).read_bytes())
        start = data.find(b"movi") + 20
        data[start : len(data) - 200] = bytes(len(data) - 200 - start)
        path = tmp / "corrupt.avi"
        path.write_bytes(bytes(data))
    return path


BAD_FILES = {
    "missing": "no such file",
    "control chars": "no such file",
    "link loop": "a symbolic link loop",
    "broken link": "a symbolic link to gone.mp4, which does not exist",
    "directory": "is a directory",
    "fifo": "not a regular file",
    "empty": "empty file",
    "text": "not a video",
    "truncated": "not a video",
    "no frames": "no decodable",
    "corrupt frames": "no decodable",
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_files_raise_one_line_video_errors(tmp_path: Path, kind: str) -> None:
    path = _bad_file(tmp_path, kind)
    for call in (open_video, lambda p: read_frames(p, [0]), lambda p: sample_clips(p, Sampling(4))):
        with pytest.raises(VideoError) as caught:
            call(path)
        message = str(caught.value)
        assert "\n" not in message and BAD_FILES[kind] in message
        assert (ascii(str(path)) if kind == "control chars" else str(path)) in message


def test_unreadable_file_raises_video_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_video(tmp_path / "locked.avi", 5)
    if os.name == "posix" and os.geteuid() == 0:  # root reads whatever the mode: fail the open as for a user
        real_open = open

        def deny(file, *args, **kwargs):
            if os.fspath(file) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", deny)
    else:
        path.chmod(0)
    try:
        with pytest.raises(VideoError, match=r"locked\.avi: cannot be read \(Permission denied\)"):
            open_video(path)
    finally:
        path.chmod(0o644)


def test_video_suffixes_cover_what_the_tests_write() -> None:
    assert all(s.startswith(".") and s == s.lower() for s in VIDEO_SUFFIXES)
    assert {suffix for _, suffix in FORMATS} <= VIDEO_SUFFIXES

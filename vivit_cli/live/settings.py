"""What a live run is given: the source the user named and the settings of capture and scoring. No OpenCV."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from vivit_cli.errors import CaptureError, SourceError, VideoError, VivitError
from vivit_cli.results import shown_path
from vivit_cli.video.sampling import DEFAULT_STRIDE

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
OPEN_TIMEOUT_S = 10.0  # seconds a stream may take to answer before it counts as unreachable
READ_TIMEOUT_S = 10.0  # seconds without a frame before a stream counts as dropped
RECONNECT_ATTEMPTS = 5  # reopenings of a dropped stream before giving up
BACKOFF_S = 0.5  # seconds before the first reopening; doubles with each failed attempt ...
MAX_BACKOFF_S = 8.0  # ... up to this many seconds
WEBCAM_EVERY = 8  # frames between predictions
TOP_K = 5  # labels per prediction


@dataclass(frozen=True)
class Source:
    """What --source named: a camera index, a video file or a stream URL."""

    kind: str  # "camera", "file" or "stream"
    target: int | str  # camera index, file path or URL

    @property
    def name(self) -> str:
        """How messages and logs show the source: a URL's password is masked."""
        if self.kind == "camera":
            return f"camera {self.target}"
        if self.kind == "stream":
            return _redact(str(self.target))
        return shown_path(str(self.target))


def parse_source(text: str) -> Source:
    """The user's --source string -> a Source: digits are a camera, scheme:// a stream, else an existing file."""
    text = text.strip()
    if not text:
        raise SourceError(f"empty --source: {_SUPPORTED}")
    if re.fullmatch(r"[0-9]+", text):
        return Source("camera", int(text))
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme:
        if scheme.group(1).lower() not in STREAM_SCHEMES:
            raise SourceError(
                f"{_redact(text)}: unsupported URL scheme {scheme.group(1)!r}; streams may use "
                f"{', '.join(STREAM_SCHEMES)}"
            )
        return Source("stream", text)
    if not os.path.isfile(text):
        why = "is not a regular file" if os.path.exists(text) else "no such file"
        raise VideoError(f"{shown_path(text)}: {why}; {_SUPPORTED}")
    return Source("file", text)


_SUPPORTED = "--source takes a camera index (0), a video file or a stream URL (rtsp://, http://, ...)"


@dataclass(frozen=True)
class CaptureSettings:
    open_timeout_s: float = OPEN_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    reconnect: int = RECONNECT_ATTEMPTS
    backoff_s: float = BACKOFF_S

    def __post_init__(self) -> None:
        if self.open_timeout_s <= 0 or self.read_timeout_s <= 0 or self.reconnect < 0 or self.backoff_s < 0:
            raise CaptureError("timeouts must be positive and --reconnect at least 0")


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True)
class LiveSettings:
    stride: int = DEFAULT_STRIDE  # frames between the sampled frames of a window
    every: int = WEBCAM_EVERY  # frames between predictions (at least; more when the model is slower)
    smooth: int = 1  # predictions whose probabilities are averaged
    top_k: int = TOP_K
    threshold: float = 0.0  # smoothed scores below this are left out of the top-k
    max_predictions: int | None = None  # stop after this many
    duration_s: float | None = None  # stop after this many seconds
    fast: bool = False  # a file as fast as the model goes, every window scored, instead of at its frame rate

    def __post_init__(self) -> None:
        if min(self.stride, self.every, self.smooth, self.top_k) < 1:
            raise VivitError("--stride, --every, --smooth and --top-k must be at least 1")
        if not 0.0 <= self.threshold <= 1.0:
            raise VivitError(f"--threshold is a probability in [0, 1], got {self.threshold}")


def check_settings(source: Source, settings: LiveSettings) -> None:
    """Settings that cannot apply to this source, refused before anything is opened or loaded."""
    if settings.fast and source.kind != "file":
        raise SourceError(f"--fast reads a file as fast as the model goes; {source.name} runs at its own pace")

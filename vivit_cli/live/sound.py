"""The overlay's sound: the input video's audio track, re-encoded into the overlay alongside its picture (PyAV)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

AUDIO_CODEC = "aac"  # what the sound is re-encoded as: every container the overlay may be (.mp4, .mov, .mkv) takes it


class AudioTrack:
    """The input's first audio track, decoded and re-encoded as AAC into the overlay as the picture reaches each
    stretch of it: sound and picture stay together in the file, and no more than a frame of sound is held. A
    track that cannot be read on the way is left where it broke off, with a note; the picture goes on."""

    codec = AUDIO_CODEC

    def __init__(self, source: Any, start_s: float) -> None:
        self.source, self.start_s = source, start_s
        self.input = source.streams.audio[0]
        self.frames = source.decode(self.input)
        self.waiting: Any = None  # the decoded frame that starts after the picture's time so far
        self.stream: Any = None
        self.output: Any = None
        self.kept, self.note = False, None

    @classmethod
    def of(cls, name: str, start_s: float) -> AudioTrack | None:
        """The sound of the video at `name` (from `start_s`, the picture's first timestamp); None without any."""
        import av

        try:
            source = av.open(name)
        except (OSError, av.error.FFmpegError):
            return None  # the picture is read by OpenCV: this only costs the sound
        if not source.streams.audio:
            source.close()
            return None
        return cls(source, start_s)

    def add_to(self, output: Any) -> None:
        """Add the AAC stream to `output`, before its first packet: mono stays mono, more channels become stereo."""
        context = self.input.codec_context
        self.output, self.stream = output, output.add_stream(AUDIO_CODEC, rate=context.sample_rate)
        self.stream.layout = "mono" if context.layout.nb_channels == 1 else "stereo"

    def mux_until(self, t: float) -> None:
        """Encode and mux the sound up to `t` seconds of the overlay."""
        while True:
            frame = self.waiting if self.waiting is not None else self._decoded()
            if frame is None:
                return
            at = (frame.time or 0.0) - self.start_s
            if at > t:
                self.waiting = frame
                return
            self.waiting = None
            if at >= 0:  # sound from before the first picture has nothing to go with
                frame.pts, frame.time_base = round(at * frame.sample_rate), Fraction(1, frame.sample_rate)
                self._mux(self.stream.encode(frame))

    def _decoded(self) -> Any:
        """The next frame of sound; None at its end, or where it cannot be read (said in the note)."""
        import av

        if self.frames is None:
            return None
        try:
            frame = next(self.frames, None)
        except av.error.FFmpegError as e:
            frame, self.note = None, f"the sound stops where it could not be read ({e})"
        if frame is None:
            self.frames = None
        return frame

    def flush(self) -> None:
        self._mux(self.stream.encode(None))

    def _mux(self, packets: Any) -> None:
        for packet in packets:
            self.output.mux(packet)
            self.kept = True

    def close(self) -> None:
        self.source.close()

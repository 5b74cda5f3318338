"""Decoding ahead: the next video's clips decode in a thread while the model runs on this one."""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterator, Sequence

from vivit_cli.video.decode import sample_clips
from vivit_cli.video.probe import VideoPath
from vivit_cli.video.sampling import Clip, Sampling, VideoInfo


class ClipsAhead:
    """sample_clips over `paths` in one background thread, one video ahead of the caller: OpenCV releases the GIL
    while it decodes, so video i + 1 decodes while the caller runs the model on video i.

        with ClipsAhead(paths, sampling) as ahead:
            for path, clips in ahead:
                info, frames = clips()  # or the error decoding that video raised, raised here, in its turn
    """

    def __init__(self, paths: Sequence[VideoPath], sampling: Sampling) -> None:
        self._paths, self._sampling = list(paths), sampling
        self._todo: queue.Queue[VideoPath | None] = queue.Queue()
        self._done: queue.Queue[tuple[VideoInfo, list[Clip]] | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._decode, name="vivit-decode", daemon=True)

    def __enter__(self) -> ClipsAhead:
        self._thread.start()
        if self._paths:
            self._todo.put(self._paths[0])
        return self

    def __exit__(self, *exc: object) -> None:
        # Waits for the video in flight (one at most): a thread still inside OpenCV when Python exits aborts the
        # process. A daemon, so a second Ctrl-C during this wait still exits.
        self._todo.put(None)
        self._thread.join()

    def __iter__(self) -> Iterator[tuple[VideoPath, Callable[[], tuple[VideoInfo, list[Clip]]]]]:
        for i, path in enumerate(self._paths):
            outcome = self._done.get()
            if i + 1 < len(self._paths):
                self._todo.put(self._paths[i + 1])
            yield path, functools.partial(_outcome, outcome)

    def _decode(self) -> None:
        while (path := self._todo.get()) is not None:
            try:
                self._done.put(sample_clips(path, self._sampling))
            except BaseException as e:  # raised in the caller's thread, in this video's turn
                self._done.put(e)


def _outcome(outcome: tuple[VideoInfo, list[Clip]] | BaseException) -> tuple[VideoInfo, list[Clip]]:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome

"""The labelling loop's state: the project, its answers, each video's features as they come, the head (re-trained in
the background: label.background) and what it suggests, and the order of what comes next. Every method takes the
loop's lock: the server's threads, the embedding and the training all go through it. No model, no server."""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vivit_cli.errors import LabelError
from vivit_cli.label import order
from vivit_cli.label.answers import Answers
from vivit_cli.label.project import Project
from vivit_cli.learn.head import Head, Videos, video_probs
from vivit_cli.video.sources import path_key

STRIP = 8  # videos in the strip of what comes next


@dataclass(frozen=True)
class Suggestion:
    label: str
    score: float  # a probability; for "nearest", the cosine similarity to the answered video
    by: str  # "head" (trained on the answers), "model" (the backbone's own labels) or "nearest" (an answered video)


@dataclass(frozen=True)
class Accuracy:
    value: float  # share of answered videos a head trained without them labels right
    folds: int
    answers: int


@dataclass
class Embedding:
    """How far computing the features has come."""

    total: int
    done: int = 0
    failed: int = 0
    state: str = "starting"  # "starting", "loading the model", "embedding", "done", or "error: ..."


class Loop:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.answers = Answers(project.folder)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # the trainer waits on it for answers
        self.version = 0  # moves whenever what the page shows may have changed
        self.answers_version = 0  # moves with every answer, skip and undo: the trainer's cue
        self.features: dict[int, np.ndarray] = {}  # number -> (V, D) float32
        self.errors: dict[int, str] = {}  # number -> why it could not be embedded
        self.embedding = Embedding(len(project.videos))
        self.head: Head | None = None  # trained on the answers, over head_labels
        self.head_labels: tuple[str, ...] = ()
        self.prior: Head | None = None  # the model's own classifier over the project's labels, when it has them all
        self.accuracy: Accuracy | None = None
        self.stopping = threading.Event()
        self._index = project.index()
        self._points = np.zeros((len(project.videos), 0), np.float32)  # (N, D) once D is known
        self._closeness = np.full(len(project.videos), order.NONE_ANSWERED, np.float32)
        self._probs: np.ndarray | None = None  # (N, L) of the head or prior; rows of videos not embedded are 0
        self._answered_at: tuple[int, list[tuple[int, str]]] = (-1, [])  # (answers version, answered())
        self._upcoming: tuple[tuple[int, int | None, int], list[int]] = ((-1, None, 0), [])

    # What the page asks

    def number(self, path: str) -> int | None:
        return self._index.get(path_key(path))

    def upcoming(self, current: int | None = None, k: int = STRIP) -> list[int]:
        with self.lock:
            key = (self.version, current, k)  # an answer asks for it three times: its own, the video's, the status'
            if self._upcoming[0] != key:
                self._upcoming = (key, order.upcoming(self._pool(), k, current))
            return list(self._upcoming[1])

    def suggestions(self, i: int) -> list[Suggestion]:
        """What the loop would answer for video `i`, best first: the head's (or the model's) labels, or before
        either, the answer of the most similar answered video."""
        with self.lock:
            if i not in self.features:
                return []
            if self._probs is not None:
                labels = self.head_labels if self.head is not None else self.project.labels
                by = "head" if self.head is not None else "model"
                row = self._probs[i]
                return [Suggestion(labels[j], float(row[j]), by) for j in np.argsort(-row, kind="stable")]
            answered = [(n, label) for n, label in self.answered() if n in self.features]
            if not answered:
                return []
            similarity = self._points[[n for n, _ in answered]] @ self._points[i]  # (A,)
            best = int(np.argmax(similarity))
            return [Suggestion(answered[best][1], float(similarity[best]), "nearest")]

    # What the page does

    def answer(self, i: int, label: str) -> int | None:
        """Save `label` as video i's answer; the next video to show."""
        with self.lock:
            if label not in self.project.labels:
                raise LabelError(f"no label {label!r} in this project: add it first")
            self.answers.answer(self.project.videos[i], label)
            self._after_answer(i)
            return next(iter(self.upcoming(i)), None)

    def skip(self, i: int) -> int | None:
        with self.lock:
            self.answers.skip(self.project.videos[i])
            self._moved()
            return next(iter(self.upcoming(i)), None)

    def undo(self) -> int | None:
        """Take back the latest answer; the video it was for, to show again."""
        with self.lock:
            path = self.answers.undo()
            if path is None:
                return None
            self._closeness = self._closeness_to_answers()
            self._moved()
            return self.number(path)

    def add_label(self, name: str) -> None:
        name = unicodedata.normalize("NFC", name.strip())
        if not name or not name.isprintable():
            raise LabelError("a label is a name of printable characters, not empty")
        with self.lock:
            if name in self.project.labels:
                return
            self.project = self.project.with_label(name)
            self.project.save()
            self.prior = None  # the model's labels no longer cover the project's
            if self.head is None:
                self._probs = None
            self._moved()

    # What the embedding and the training report

    def embedded(self, i: int, features: np.ndarray | None, error: str | None = None) -> None:
        with self.lock:
            if features is None:
                self.errors[i] = error or "unknown error"
                self.embedding.failed += 1
            else:
                self._add_features(i, features)
            self.embedding.done += 1
            self.version += 1

    def publish(self, head: Head | None, labels: tuple[str, ...], prior: bool = False) -> None:
        """A new head (or the model's own classifier, `prior`) over `labels`: every embedded video's suggestions,
        worked out before the lock is taken, so that an answer does not wait for them."""
        with self.lock:
            numbers = list(self.features)
            features = [self.features[n] for n in numbers]
        probs = None if head is None else self._probs_for(head, numbers, features)
        with self.lock:
            if prior:
                self.prior = head
            else:
                self.head, self.head_labels = head, labels
            current = self.head or self.prior
            if current is not None and current is head:
                done = set(numbers)
                for n in (n for n in self.features if n not in done):  # embedded meanwhile
                    probs[n] = head.probs(self.features[n]).mean(axis=0)  # type: ignore[index]
                self._probs = probs
            else:
                self._probs = None if current is None else self._probs_of(current)
            self.version += 1

    def publish_accuracy(self, accuracy: Accuracy | None) -> None:
        with self.lock:
            self.accuracy = accuracy
            self.version += 1

    def training_set(self) -> tuple[int, list[np.ndarray], list[str]]:
        """(answers version, features, labels) of the answered videos that have features."""
        with self.lock:
            kept = [(self.features[n], label) for n, label in self.answered() if n in self.features]
            return self.answers_version, [f for f, _ in kept], [label for _, label in kept]

    # Inside

    def answered(self) -> list[tuple[int, str]]:
        """(number, answer) of every answered video, answered last last; kept until the answers change."""
        if self._answered_at[0] != self.answers_version:
            pairs = [(self._index.get(path_key(p)), a) for p, a in self.answers.state.current.items()]
            self._answered_at = (self.answers_version, [(n, a) for n, a in pairs if n is not None])
        return self._answered_at[1]

    def _numbers(self, paths: Iterable[str]) -> list[int]:
        """The numbers of `paths`, in order; a path the project does not list (a hand-edited log) is passed over."""
        return [n for p in paths if (n := self._index.get(path_key(p))) is not None]

    def _after_answer(self, i: int) -> None:
        if i in self.features:
            self._closeness = np.maximum(self._closeness, self._points @ self._points[i])
        self._moved()

    def _moved(self) -> None:
        self.answers_version += 1
        self.version += 1
        self.changed.notify_all()

    def _pool(self) -> order.Pool:
        state = self.answers.state
        n = len(self.project.videos)
        answered = np.zeros(n, bool)
        answered[[i for i, _ in self.answered()]] = True
        skipped = np.zeros(n, bool)
        skipped[self._numbers(state.skipped)] = True
        have = np.zeros(n, bool)
        have[list(self.features)] = True
        open_ = ~answered & ~skipped
        last = self.number(next(reversed(state.current))) if state.current else None
        return order.Pool(
            self._points, have, open_, skipped & ~answered, self._closeness, self._probs, last, len(state.current)
        )

    def _add_features(self, i: int, features: np.ndarray) -> None:
        self.features[i] = features
        mean = order.unit(features.mean(axis=0, keepdims=True))  # (1, D)
        if self._points.shape[1] != mean.shape[1]:
            self._points = np.zeros((len(self.project.videos), mean.shape[1]), np.float32)
        self._points[i] = mean[0]
        answered = [n for n, _ in self.answered() if n in self.features and n != i]
        if answered:
            self._closeness[i] = float(np.max(self._points[answered] @ mean[0]))
        if self.project.videos[i] in self.answers.state.current:
            self._moved()  # an answered video's features: the head has more to learn from
        current = self.head or self.prior
        if current is not None:
            if self._probs is None or self._probs.shape[1] != len(current.bias):
                self._probs = self._probs_of(current)
            else:
                self._probs[i] = current.probs(features).mean(axis=0)

    def _probs_of(self, head: Head) -> np.ndarray:
        numbers = list(self.features)
        return self._probs_for(head, numbers, [self.features[n] for n in numbers])

    def _probs_for(self, head: Head, numbers: list[int], features: list[np.ndarray]) -> np.ndarray:
        """(N, L): the head's probabilities for the videos `numbers` (their views averaged), 0 for the others."""
        probs = np.zeros((len(self.project.videos), len(head.bias)), np.float32)  # (N, L)
        if numbers:
            probs[numbers] = video_probs(head, Videos.stack(features, [0] * len(numbers)))
        return probs

    def _closeness_to_answers(self) -> np.ndarray:
        closeness = np.full(len(self.project.videos), order.NONE_ANSWERED, np.float32)
        answered = [n for n, _ in self.answered() if n in self.features]
        if answered:
            closeness = (self._points @ self._points[answered].T).max(axis=1)
        return closeness

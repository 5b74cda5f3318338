"""The loop's work behind the page, in two threads: every video's features (an embed file, the shared cache, else the
model through the decode pool, as `vivit train` gets them), and the head re-trained after each answer (the head of
`vivit train`, one strength, warm-started) with its cross-validated accuracy. Until the answers cover two labels, the
model's own classifier suggests, when it has every label of the project."""

from __future__ import annotations

import random
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from vivit_cli.errors import VivitError
from vivit_cli.label.loop import Accuracy, Loop
from vivit_cli.learn.cache import EmbeddingCache
from vivit_cli.learn.head import Fit, Fitter, Head, Videos, video_probs
from vivit_cli.video.sources import path_key

LOOP_L2 = 1e-2  # the middle of `vivit train`'s grid: no validation set to choose by after every answer
CV_FOLDS = 5  # at most; fewer when there are fewer answers
MIN_PER_LABEL = 2  # answers two labels need before there is a head (and before its accuracy means anything)
SEED = 0  # the order videos are embedded in, and the folds
WAIT_S = 0.5  # the trainer looks at the stop flag at least this often


class Stopped(Exception):
    """The loop is closing: the embedding stops, and its decode workers with it."""


@dataclass(frozen=True)
class Embedder:
    """Where features come from, in this order: `given` (an embed file's rows), the cache, the model."""

    cache: EmbeddingCache
    load: Callable[[], object]  # -> a Classifier, called only when some video is in neither of the others
    workers: int
    timeout_s: float
    batch_size: int | None
    given: Mapping[str, np.ndarray]  # path_key -> (1, D)
    prior: Callable[[], Head | None]  # the model's classifier over the project's labels, or None


def start(loop: Loop, embedder: Embedder) -> list[threading.Thread]:
    """The two threads, started; they end when loop.stopping is set."""
    threads = [
        threading.Thread(target=_embed_all, args=(loop, embedder), name="vivit-label-embed", daemon=True),
        threading.Thread(target=_train_forever, args=(loop,), name="vivit-label-train", daemon=True),
    ]
    for t in threads:
        t.start()
    return threads


def _embed_all(loop: Loop, embedder: Embedder) -> None:
    from vivit_cli.learn.embed import embed_videos

    try:
        loop.publish(embedder.prior(), loop.project.labels, prior=True)
        todo = take_given(loop, embedder.given)
        random.Random(SEED).shuffle(todo)  # the first embedded are a fair sample: coverage has the whole to go on

        def on_video(path: str, result: np.ndarray | str, from_cache: bool) -> None:
            if loop.stopping.is_set():
                raise Stopped
            number = loop.number(path)
            if number is not None:
                loop.embedded(number, *((None, result) if isinstance(result, str) else (result, None)))

        def load() -> object:
            if loop.stopping.is_set():
                raise Stopped
            loop.embedding.state = "loading the model"
            classifier = embedder.load()
            loop.embedding.state = "embedding"
            return classifier

        loop.embedding.state = "embedding"
        project = loop.project
        embed_videos(
            todo, embedder.cache, load, project.views, embedder.workers, embedder.timeout_s, embedder.batch_size,
            on_video,
        )  # fmt: skip
        loop.embedding.state = "done"
    except Stopped:
        loop.embedding.state = "stopped"
    except VivitError as e:
        loop.embedding.state = f"error: {e}"
    except Exception as e:  # a thread's end is seen only on the page: say what it was
        loop.embedding.state = f"error: {type(e).__name__}: {e}"
    finally:
        with loop.lock:
            loop.version += 1


def take_given(loop: Loop, given: Mapping[str, np.ndarray]) -> list[str]:
    """The features an embed file gives into the loop; the videos it does not have."""
    todo = []
    for i, path in enumerate(loop.project.videos):
        features = given.get(path_key(path))
        if features is None:
            todo.append(path)
        else:
            loop.embedded(i, features)
    return todo


def _train_forever(loop: Loop) -> None:
    seen = -1
    fitter: Fitter | None = None
    while not loop.stopping.is_set():
        with loop.changed:
            if loop.answers_version == seen:
                loop.changed.wait(WAIT_S)
                continue
        seen, fitter = train_once(loop, fitter)


def train_once(loop: Loop, fitter: Fitter | None = None, accuracy: bool = True) -> tuple[int, Fitter | None]:
    """Re-train the head on the answers as they are now (warm-started from `fitter`'s last solution) and publish it,
    then its cross-validated accuracy; (the answers version it saw, the fitter to start from next time)."""
    version, features, answers = loop.training_set()
    labels = loop.project.labels
    if len(set(answers)) < 2:  # nothing to tell apart yet
        if loop.head is not None:
            loop.publish(None, ())
            loop.publish_accuracy(None)
        return version, fitter
    videos = Videos.stack(features, [labels.index(a) for a in answers])
    theta = fitter.theta if fitter is not None and fitter.num_classes == len(labels) else None
    fitter = Fitter(videos, len(labels), theta)
    loop.publish(fitter.fit(LOOP_L2), labels)
    if not accuracy:
        return version, fitter
    if sum(answers.count(label) >= MIN_PER_LABEL for label in set(answers)) < 2:
        loop.publish_accuracy(None)
    else:
        found = cross_validated(videos, len(labels), lambda: loop.answers_version != version)
        if found is not None:  # None: newer answers came meanwhile, and their own round will say
            loop.publish_accuracy(found)
    return version, fitter


def cross_validated(videos: Videos, num_classes: int, moved_on: Callable[[], bool]) -> Accuracy | None:
    """k-fold accuracy over videos, each label's spread over the folds (seeded): how the head labels a video it has
    not seen. None when `moved_on()` says newer answers came meanwhile."""
    labels = videos.video_labels  # (M,)
    per_label = np.bincount(labels, minlength=num_classes)
    folds = min(CV_FOLDS, int(per_label.max()))
    fold = np.zeros(len(labels), np.int64)  # (M,)
    rng = random.Random(SEED)
    for c in np.flatnonzero(per_label):
        members = [int(m) for m in np.flatnonzero(labels == c)]
        rng.shuffle(members)
        fold[members] = np.arange(len(members)) % folds
    correct = 0
    for f in range(folds):
        if moved_on():
            return None
        held = fold[videos.video] == f  # (N,) views of the held-out videos
        if held.all() or not held.any():
            continue
        train = Videos(videos.features[~held], videos.labels[~held], videos.video[~held])
        test = Videos(videos.features[held], videos.labels[held], np.unique(videos.video[held], return_inverse=True)[1])
        head = Fitter(train, num_classes).fit(LOOP_L2)
        correct += int((video_probs(head, test).argmax(axis=1) == test.video_labels).sum())
    return Accuracy(correct / len(labels), folds, len(labels))


def model_prior(
    weights: Callable[[], Mapping[str, object]], model_labels: list[str], labels: tuple[str, ...]
) -> Head | None:
    """The model's own classifier rows for `labels`, when every one of them is one of the model's (a Kinetics label,
    or a label of a model `vivit train` made); None otherwise."""
    from vivit_cli.learn.export import CLASSIFIER

    known = {unicodedata.normalize("NFC", name): i for i, name in enumerate(model_labels)}
    ids = [known.get(label) for label in labels]
    if not labels or None in ids:
        return None
    state = weights()
    weight, bias = state.get(CLASSIFIER + "weight"), state.get(CLASSIFIER + "bias")
    if weight is None or bias is None:
        return None
    w = np.asarray(weight.float().numpy())[ids]  # type: ignore[attr-defined]  # (L, D)
    b = np.asarray(bias.float().numpy())[ids]  # type: ignore[attr-defined]  # (L,)
    return Head(w.astype(np.float32), b.astype(np.float32), Fit(0.0, 0.0, 0.0, 0.0))

"""`vivit label`'s order against a random one, and the loop's speed at 10,000 videos.

    python benchmarks/bench_label.py --make DIR [--per-label 40]
    python benchmarks/bench_label.py DATA --model M [--seeds 5] [--cache-dir DIR] [--json]
    python benchmarks/bench_label.py --speed [--videos 10000] [--answers 1000] [--dim 768] [--labels 10]
                                     [--repeats 5] [--no-browser] [--json]

--make writes labelled videos whose labels have several looks (DIR/<label>/*.avi): per label one common look and two
rare ones, each of its own colours, texture and motion; the case where covering the collection should beat a random
order.

DATA (as `vivit train` reads it) simulates a person who answers every video with its folder's label. Every video is
embedded once, as `vivit label` embeds it (the shared cache, the loop's views). "all" is the 5-fold cross-validated
accuracy of the loop's head on every video; the target is all - 2 points. For each seed, two orders over a project
whose videos are shuffled by the seed: the loop's (after each answer the head re-trains, then the next video is the
one the loop would show) and a random one (the seed's permutation). After each answer, the head trained on the
answers is measured on the videos not yet answered; the figure is the first number of answers at which it reaches
the target (the number of videos when it never does). Medians over the seeds; aim: loop / random <= 0.5.

--speed times, on synthetic features (no model), what a person waits for: a re-train with the answers over every
video's features, cold and warm-started; the server's work between an answer and the next video; and, where
Playwright and Chromium are installed, a real page: its load (navigation to the video's path on screen) and an answer
key to the next video's path on screen, while the head re-trains in the background as in `vivit label`. Targets:
next on screen <= 100 ms, a re-train <= 1 s, the page's load <= 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_description, make_video  # noqa: E402

from vivit_cli.label import background, page  # noqa: E402
from vivit_cli.label.loop import Loop  # noqa: E402
from vivit_cli.label.project import VIEWS, Project  # noqa: E402
from vivit_cli.learn.head import Fitter, Head, Videos, video_probs  # noqa: E402

GAP = 0.02  # the target: within 2 points of the head trained on every video
NEXT_TARGET_S, TRAIN_TARGET_S, LOAD_TARGET_S = 0.1, 1.0, 1.0
CHROMIUM = os.environ.get("VIVIT_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 60_000  # the longest one browser step may take before the run fails
PAUSE_S = 1.0  # between two answers in the page: a quick person's pace; the head re-trains meanwhile

# The made data: per label three looks, (kind, colour, second colour), the first common and the others rare.
LOOKS = {
    "apple": [("square", (200, 30, 30), (20, 20, 20)), ("hstripes", (30, 220, 220), (250, 250, 250)),
              ("noise", (140, 40, 200), (0, 0, 0))],
    "berry": [("checker", (230, 220, 30), (10, 10, 10)), ("circle", (40, 200, 60), (120, 120, 120)),
              ("vstripes", (250, 140, 20), (20, 40, 200))],
    "cloud": [("gradient", (40, 80, 230), (250, 250, 250)), ("flicker", (250, 120, 200), (60, 0, 40)),
              ("square", (240, 240, 40), (20, 120, 20))],
    "dune": [("noise", (210, 180, 120), (90, 60, 30)), ("hstripes", (220, 30, 30), (0, 0, 0)),
             ("circle", (250, 250, 250), (200, 20, 200))],
}  # fmt: skip
LOOK_SHARES = (0.7, 0.2, 0.1)  # of a label's videos: its common look, then the rare ones
MEASURED = (
    "after each answer, the loop's head (L2 {l2}, warm-started, as `vivit label` re-trains it) on the answered "
    "videos, scored on the videos not yet answered (views' probabilities averaged); the figure is the first number "
    "of answers at which that reaches the target (the number of videos when never); medians over seeds"
)
STRATEGIES = ("loop", "random")
MADE_SIZE, MADE_FRAMES, MADE_FPS = (96, 64), 40, 20  # each made video: small, fast to decode, 2 s


# The data


def look_frames(kind: str, c1: np.ndarray, c2: np.ndarray, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """MADE_FRAMES RGB frames of one look, its phase, speed and texture drawn from `rng`."""
    w, h = MADE_SIZE
    y, x = np.mgrid[0:h, 0:w]
    phase, speed = rng.uniform(0, 100), rng.uniform(1.5, 3.0)
    texture = rng.random((h // 4 + 2, w // 4 + 2)) > 0.5  # (h/4, w/4): coarse noise, panned
    for t in range(MADE_FRAMES):
        s = phase + speed * t
        if kind == "square":
            mask = (abs(x - (s % w)) < 12) & (abs(y - h / 2 - 15 * np.sin(s / 10)) < 12)
        elif kind == "circle":
            mask = (x - w / 2 - 30 * np.cos(s / 8)) ** 2 + (y - h / 2 - 15 * np.sin(s / 8)) ** 2 < 14**2
        elif kind == "hstripes":
            mask = ((y + s) // 6) % 2 == 0
        elif kind == "vstripes":
            mask = ((x + s) // 8) % 2 == 0
        elif kind == "checker":
            mask = (((x + s) // 12) + (y // 12)) % 2 == 0
        elif kind == "noise":
            mask = np.kron(texture, np.ones((4, 4), bool))[int(s) % 8 : int(s) % 8 + h, :w]
        elif kind == "flicker":
            mask = rng.random((h, w)) < 0.5 + 0.4 * np.sin(s)
        else:  # gradient, pulsing
            mask = x / w + 0.3 * np.sin(s / 5) > y / h + 0.2
        yield np.where(mask[..., None], c1, c2).astype(np.uint8)


def make_data(root: Path, per_label: int, seed: int = 0) -> dict[str, list[int]]:
    """Videos in root/<label>/; each look's video count per label."""
    import cv2

    rng = np.random.default_rng(seed)
    made = {}
    for label, looks in LOOKS.items():
        counts = [max(1, round(per_label * share)) for share in LOOK_SHARES[1:]]
        counts.insert(0, max(1, per_label - sum(counts)))
        (root / label).mkdir(parents=True, exist_ok=True)
        for look, ((kind, c1, c2), count) in enumerate(zip(looks, counts, strict=True)):
            for n in range(count):
                jitter = rng.integers(-20, 21, 3)  # each video's own shade of its look's colours
                a, b = (np.clip(np.array(c) + jitter, 0, 255) for c in (c1, c2))
                path = root / label / f"look{look}-{n:03d}.avi"
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), MADE_FPS, MADE_SIZE)
                try:
                    for frame in look_frames(kind, a, b, rng):
                        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                finally:
                    writer.release()
        made[label] = counts
    return made


Embedded = tuple[list[str], list[str], list[np.ndarray], str]


def embed_data(data: str, model: str, cache_dir: Path | None, device: str, dtype: str) -> Embedded:
    """(paths, labels, features (V, D) per video, the model's dtype) of DATA's videos, embedded as `vivit label`
    embeds them: through the shared cache, with the loop's views. Videos that fail are left out, and said so."""
    from vivit_cli import hub
    from vivit_cli.batch.plan import DEFAULT_TIMEOUT_S, default_workers
    from vivit_cli.device import resolve_device, resolve_dtype
    from vivit_cli.learn.cache import open_cache
    from vivit_cli.learn.data import read_data
    from vivit_cli.learn.embed import embed_videos
    from vivit_cli.pipeline import load_model

    dataset = read_data(data)
    local = hub.fetch(hub.parse_model(model))
    dev = resolve_device(device)
    dtype_name = str(resolve_dtype(dtype, dev)).removeprefix("torch.")
    cache = open_cache(local, dtype_name, VIEWS, cache_dir)
    paths = [e.path for e in dataset.examples]
    started = time.perf_counter()
    done = [0, 0]  # videos, of which from the cache

    def on_video(path: str, result: object, from_cache: bool) -> None:
        done[0] += 1
        done[1] += from_cache
        if done[0] % 50 == 0 or done[0] == len(paths):
            print(f"embedded {done[0]}/{len(paths)} ({done[1]} cached)", file=sys.stderr)

    embedded = embed_videos(paths, cache, lambda: load_model(local.pinned, device=dev, dtype=dtype_name), VIEWS,
                            default_workers(dev.type), DEFAULT_TIMEOUT_S, None, on_video)  # fmt: skip
    print(f"embedding: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    for path, why in embedded.failed.items():
        print(f"left out {path}: {why}", file=sys.stderr)
    kept = [e for e in dataset.examples if e.path in embedded.features]
    return [e.path for e in kept], [e.label for e in kept], [embedded.features[e.path] for e in kept], dtype_name


# The simulated person


def answers_to_target(paths: list[str], truth: list[int], features: list[np.ndarray], labels: tuple[str, ...],
                      strategy: str, seed: int, target: float, folder: Path) -> int:
    """The first number of answers after which the head labels the videos not yet answered at `target` accuracy
    or better; len(paths) when it never does."""
    shuffled = list(range(len(paths)))
    random.Random(seed).shuffle(shuffled)  # the project's order: the loop's tie-breaks, the random order itself
    project = Project(folder, tuple(paths[k] for k in shuffled), labels, "bench")
    folder.mkdir(parents=True)
    project.save()
    loop = Loop(project)
    try:
        for i, k in enumerate(shuffled):
            loop.embedded(i, features[k])
        truth_of = np.asarray([truth[k] for k in shuffled])  # (N,)
        open_ = np.ones(len(paths), bool)
        fitter: Fitter | None = None
        for n in range(1, len(paths)):
            i = next_video(loop, strategy, n)
            loop.answer(i, labels[truth_of[i]])
            open_[i] = False
            _, fitter = background.train_once(loop, fitter, accuracy=False)
            rest = np.flatnonzero(open_)
            if rest_accuracy(loop.head, [loop.features[r] for r in rest], truth_of[rest], truth_of[~open_]) >= target:
                return n
        return len(paths)
    finally:
        loop.answers.close()


def next_video(loop: Loop, strategy: str, n: int) -> int:
    """The video the `n`-th answer is for."""
    if strategy == "random":
        return n - 1  # the project's order is the seed's permutation
    return loop.upcoming(None, 1)[0]  # what the page shows after an answer


def rest_accuracy(head: Head | None, features: list[np.ndarray], truth: np.ndarray, answered: np.ndarray) -> float:
    """The share of the videos not yet answered that `head` labels right (their views' probabilities averaged);
    before there is a head (answers of one label only), that of labelling them all with the label answered most."""
    if head is None:
        return float((truth == np.bincount(answered).argmax()).mean())
    probs = video_probs(head, Videos.stack(features, [0] * len(features)))  # (M, L)
    return float((probs.argmax(axis=1) == truth).mean())


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    paths, names, features, dtype = embed_data(args.data, args.model, args.cache_dir, args.device, args.dtype)
    labels = tuple(sorted(set(names)))
    truth = [labels.index(name) for name in names]
    everything = Videos.stack(features, truth)
    found = background.cross_validated(everything, len(labels), lambda: False)
    assert found is not None
    target = found.value - GAP
    runs: dict[str, list[int]] = {strategy: [] for strategy in STRATEGIES}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-label-") as tmp:
        for seed in range(args.seeds):
            for strategy, counts in runs.items():
                folder = Path(tmp) / f"{strategy}-{seed}"
                counts.append(answers_to_target(paths, truth, features, labels, strategy, seed, target, folder))
            print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]}" for k, v in runs.items()) + " answers", file=sys.stderr)
    median = {strategy: statistics.median(counts) for strategy, counts in runs.items()}
    return {
        "loop": median["loop"],
        "random": median["random"],
        "target": round(target, 4),
        "all": round(found.value, 4),
        "ratio": round(median["loop"] / median["random"], 3),
        **{f"{strategy}_runs": counts for strategy, counts in runs.items()},
        "seeds": args.seeds,
        "videos": len(paths),
        "labels": len(labels),
        "views": len(features[0]),
        "dim": int(features[0].shape[1]),
        "model": args.model,
        "dtype": dtype,
        "all_measured": f"{found.folds}-fold cross-validated accuracy of the loop's head (L2 {background.LOOP_L2}) "
        "on every video, each label spread over the folds",
        "measured": MEASURED.format(l2=background.LOOP_L2),
        "simulate_s": round(time.perf_counter() - started, 1),
        "cpu": cpu_description(),
    }


# The speed


def synthetic(videos: int, views: int, dim: int, labels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(videos, views, dim) float32 features, each label of three looks (cluster centres), and each video's label."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(labels, 3, dim)).astype(np.float32)  # (L, 3, D)
    truth = np.arange(videos) % labels  # (N,)
    look = rng.integers(0, 3, videos)  # (N,)
    noise = rng.normal(size=(videos, views, dim)).astype(np.float32) * 1.5
    return centres[truth, look][:, None, :] + noise, truth  # (N, V, D), (N,)


def speed_project(folder: Path, videos: int, answers: int, labels: int) -> tuple[Project, list[str]]:
    """A project of `videos` links to one small real video (the page shows and probes it), with `answers` answers
    already in its log, labelled as `synthetic` labels them."""
    files = folder / "videos"
    files.mkdir(parents=True)
    original = folder / "original.mp4"
    make_video(original, (320, 240), 30, 2)
    paths = []
    for i in range(videos):
        link = files / f"v{i:05d}.mp4"
        os.symlink(original, link)
        paths.append(str(link))
    names = tuple(f"label {c}" for c in range(labels))
    project = Project(folder / "project", tuple(paths), names, "bench/synthetic")
    project.folder.mkdir()
    project.save()
    with open(project.file("answers.jsonl"), "w", encoding="utf-8") as f:
        for i in range(answers):
            f.write(json.dumps({"time": "2025-01-01T00:00:00+0000", "video": paths[i], "label": names[i % labels]}))
            f.write("\n")
    return project, paths


def speed(args: argparse.Namespace) -> dict[str, Any]:
    features, truth = synthetic(args.videos, VIEWS.clips * VIEWS.crops, args.dim, args.labels)
    figures: dict[str, Any] = {"videos": args.videos, "answers": args.answers, "dim": args.dim,
                               "labels": args.labels, "views": features.shape[1], "repeats": args.repeats}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-label-speed-") as tmp:
        project, paths = speed_project(Path(tmp), args.videos, args.answers, args.labels)
        t = time.perf_counter()
        loop = Loop(project)
        for i in range(args.videos):
            loop.embedded(i, features[i])
        figures["features_in_s"] = round(time.perf_counter() - t, 3)
        try:
            figures.update(server_side(loop, truth, args.repeats))
        finally:
            loop.answers.close()
        if args.no_browser or not browser_available():
            figures["page"] = None
        else:
            figures["page"] = page_timings(project, features, args.repeats)
    figures["cpu"] = cpu_description()
    return figures


def spread(times: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4)}


def server_side(loop: Loop, truth: np.ndarray, repeats: int) -> dict[str, Any]:
    """Re-trains (cold, then warm-started after one more answer each), the new head's suggestions for every video
    (the part of a re-train that holds the loop's lock), the server's work from an answer to the next video's JSON,
    and the cross-validated accuracy the trainer computes after each re-train."""
    labels = loop.project.labels
    answered = len(loop.answers.state.current)
    cold, warm, next_s, accuracy_s, publish_s = [], [], [], [], []
    fitter = None
    for r in range(repeats):
        t = time.perf_counter()
        _, fitter = background.train_once(loop, None, accuracy=False)
        cold.append(time.perf_counter() - t)
        i = answered + r
        loop.answer(i, labels[truth[i]])  # one more answer, as between two re-trains
        t = time.perf_counter()
        _, fitter = background.train_once(loop, fitter, accuracy=False)
        warm.append(time.perf_counter() - t)
        t = time.perf_counter()
        loop.publish(loop.head, loop.head_labels)  # part of a re-train, under the loop's lock: answers wait for it
        publish_s.append(time.perf_counter() - t)
    for _ in range(repeats):
        shown = loop.upcoming(None, 1)[0]
        t = time.perf_counter()
        following = loop.answer(shown, labels[truth[shown]])  # POST /api/answer
        assert following is not None
        page.video(loop, following)  # the answer's reply carries the next video ...
        page.status(loop, following)  # ... and the status
        next_s.append(time.perf_counter() - t)
    _, features, answers = loop.training_set()
    videos = Videos.stack(features, [labels.index(a) for a in answers])
    for _ in range(max(1, repeats // 2)):
        t = time.perf_counter()
        background.cross_validated(videos, len(labels), lambda: False)
        accuracy_s.append(time.perf_counter() - t)
    return {"retrain_cold": spread(cold), "retrain_warm": spread(warm), "answer_to_next_json": spread(next_s),
            "cross_validated_accuracy": spread(accuracy_s), "publish": spread(publish_s),
            "answers_at_retrain": answered + 1}  # fmt: skip


def browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


@contextlib.contextmanager
def served(project: Project, features: np.ndarray) -> Iterator[tuple[str, Loop]]:
    """The page of a fresh loop over `project`, as `vivit label` serves it: its features given (as an embed file
    gives them), the trainer in the background; (the URL with its token, the loop)."""
    import uvicorn

    from vivit_cli.label.preview import Media
    from vivit_cli.label.server import Guard, make_app
    from vivit_cli.learn.cache import EmbeddingCache
    from vivit_cli.video.sources import path_key

    loop = Loop(project)
    given = {path_key(p): features[i] for i, p in enumerate(project.videos)}

    def no_model() -> object:
        raise AssertionError("every video's features are given")

    embedder = background.Embedder(EmbeddingCache(project.folder / "cache", {}), no_model, 1, 60.0, None, given,
                                   lambda: None)  # fmt: skip
    threads = background.start(loop, embedder)
    media = Media(project.videos, project.folder, project.views.sampling(32))
    port = free_port()
    guard = Guard.new("127.0.0.1", port)
    server = uvicorn.Server(uvicorn.Config(make_app(loop, media, guard), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        yield guard.url("127.0.0.1", port), loop
    finally:
        server.should_exit = True
        thread.join(30)
        loop.stopping.set()
        for t in threads:
            t.join(60)
        media.close()
        loop.answers.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settled(loop: Loop, timeout_s: float = 600.0) -> None:
    """Until every feature is in and the head (and its accuracy) is of the answers as they are now."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        with loop.lock:
            answered = len(loop.answers.state.current)
            done = loop.embedding.state == "done" and loop.accuracy is not None and loop.accuracy.answers == answered
        if done:
            return
        time.sleep(0.05)
    raise TimeoutError("the trainer did not catch up")


PATH_FILLED = "document.querySelector('[data-testid=path]').textContent.length > 0"
PATH_CHANGED = "(before) => document.querySelector('[data-testid=path]').textContent !== before"


def page_timings(project: Project, features: np.ndarray, repeats: int) -> dict[str, Any]:
    """In Chromium: the page's load (a fresh browser context each time: the token URL, its redirects, the page, its
    script and JSON, until the video's path is on screen), then answer keys to the next video's path on screen."""
    from playwright.sync_api import sync_playwright

    loads, nexts = [], []
    with served(project, features) as (url, loop), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            settled(loop)
            for _ in range(repeats + 1):  # the first warms the browser and the server: not counted
                context = browser.new_context()
                page = context.new_page()
                t = time.perf_counter()
                page.goto(url, wait_until="commit")
                page.wait_for_function(PATH_FILLED, timeout=WAIT_MS, polling="raf")
                loads.append(time.perf_counter() - t)
                context.close()
            loads = loads[1:]
            context = browser.new_context()
            page = context.new_page()
            page.goto(url)
            page.wait_for_function(PATH_FILLED, timeout=WAIT_MS)
            for _ in range(repeats):
                before = page.get_by_test_id("path").inner_text()
                t = time.perf_counter()
                page.keyboard.press("1")
                page.wait_for_function(PATH_CHANGED, arg=before, timeout=WAIT_MS, polling="raf")
                nexts.append(time.perf_counter() - t)
                time.sleep(PAUSE_S)
            context.close()
        finally:
            browser.close()
    return {"load": spread(loads), "answer_to_next_on_screen": spread(nexts), "pause_between_answers_s": PAUSE_S,
            "browser": "chromium (playwright)"}  # fmt: skip


# The command


def summary(figures: dict[str, Any]) -> str:
    if "loop" in figures:
        f = figures
        return "\n".join([
            f"CPU: {f['cpu']}; load average at the end {f['load_average']}",
            f"{f['videos']} videos, {f['labels']} labels, {f['views']} views x {f['dim']}-D "
            f"({f['model']}, {f['dtype']})",
            f"all: {f['all']:.3f} ({f['all_measured']}); target {f['target']:.3f}",
            f"answers to the target, median of {f['seeds']} seeds: loop {f['loop']:g} {f['loop_runs']}, "
            f"random {f['random']:g} {f['random_runs']}",
            f"loop / random = {f['ratio']:.2f} (aim <= 0.5, stretch <= 0.3)",
            f"measured: {f['measured']}",
        ])  # fmt: skip
    f = figures
    lines = [f"CPU: {f['cpu']}; load average at the end {f['load_average']}",
             f"{f['videos']} videos x {f['views']} views x {f['dim']}-D, {f['answers']} answers over {f['labels']} "
             f"labels; median / max of {f['repeats']}; features into the loop {f['features_in_s']:.2f} s"]  # fmt: skip
    rows = [("re-train, cold", f["retrain_cold"], TRAIN_TARGET_S),
            ("re-train, warm", f["retrain_warm"], TRAIN_TARGET_S),
            ("answer -> next video's JSON", f["answer_to_next_json"], NEXT_TARGET_S),
            ("every video's suggestions", f["publish"], None),
            ("cross-validated accuracy", f["cross_validated_accuracy"], None)]  # fmt: skip
    if f["page"]:
        rows += [("page load (Chromium)", f["page"]["load"], LOAD_TARGET_S),
                 ("answer key -> next on screen", f["page"]["answer_to_next_on_screen"], NEXT_TARGET_S)]  # fmt: skip
    for name, s, target in rows:
        verdict = "" if target is None else ("meets" if s["max_s"] <= target else "misses") + f" {target:g} s"
        lines.append(f"{name:<32}{s['median_s'] * 1000:>9.1f} ms {s['max_s'] * 1000:>9.1f} ms max  {verdict}")
    if not f["page"]:
        lines.append(f"page: not measured (--no-browser, or no Playwright or no browser at {CHROMIUM})")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", help="labelled videos, as vivit train reads them")
    ap.add_argument("--model", help="the backbone, as vivit label --model")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--cache-dir", type=Path, help="the features' cache [default: vivit's]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--make", type=Path, metavar="DIR", help="write videos whose labels have several looks, and stop")
    ap.add_argument("--per-label", type=int, default=40, help="with --make: videos per label")
    ap.add_argument("--speed", action="store_true", help="time the loop on synthetic features instead")
    ap.add_argument("--videos", type=int, default=10_000, help="with --speed")
    ap.add_argument("--answers", type=int, default=1_000, help="with --speed")
    ap.add_argument("--dim", type=int, default=768, help="with --speed: the features' size")
    ap.add_argument("--labels", type=int, default=10, help="with --speed")
    ap.add_argument("--repeats", type=int, default=5, help="with --speed: of each measurement")
    ap.add_argument("--no-browser", action="store_true", help="with --speed: skip the page")
    ap.add_argument("--threads", type=int, help="torch's threads [default: torch's]; 1 on a machine busy with "
                    "other work, where torch's thread pool waits for cores more than it computes")
    ap.add_argument("--json", action="store_true", help="one JSON line on stdout instead of a summary")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.make:
        made = make_data(args.make, args.per_label)
        print(json.dumps({"data": str(args.make), "videos_per_look": made}) if args.json else
              "\n".join(f"{label}: {counts} videos per look" for label, counts in made.items()))  # fmt: skip
        return
    if args.speed:
        if args.answers + 2 * args.repeats >= args.videos:
            ap.error("--answers (and the answers the timings add) must leave videos unanswered")
        figures = speed(args)
    else:
        if not args.data or not args.model:
            ap.error("give DATA and --model (or --make DIR, or --speed)")
        figures = simulate(args)
    figures["load_average"] = [round(x, 1) for x in os.getloadavg()]  # other work on the machine meanwhile
    print(json.dumps(figures) if args.json else summary(figures))


if __name__ == "__main__":
    main()

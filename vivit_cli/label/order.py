"""Which video to show next: the one whose answer teaches the model most. NumPy only: no model, no files.

Before two labels have answers there is nothing to be unsure about, so the loop covers the collection (the video
least like any answered one, farthest-point sampling over the embeddings) and offers "more like this" (the nearest
video to the one just answered, whose suggestion is then that answer: Enter confirms several at once). Then the
least sure first (the smallest margin between the two best labels), with every COVERAGE_EVERY-th video the least
covered one, so that a label's rarer looks are found and not only the border between the looks already seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# With a head: every 3rd video shown is the least covered one. Of 2, 3 and 4, 3 needed the fewest answers over the
# four data sets of `python benchmarks/bench_label.py` (docs/performance.md).
COVERAGE_EVERY = 3
NONE_ANSWERED = -2.0  # a video's closeness to the answered ones when there are none (cosine is >= -1)


@dataclass(frozen=True)
class Pool:
    """The videos as the order sees them; arrays of N rows, one per video of the project."""

    points: np.ndarray  # (N, D) float32: each video's mean embedding, unit length; zeros where not embedded
    have: np.ndarray  # (N,) bool: embedded
    open: np.ndarray  # (N,) bool: not answered and not skipped
    skipped: np.ndarray  # (N,) bool: skipped and not answered since
    closeness: np.ndarray  # (N,) float32: cosine similarity to the most similar answered video
    probs: np.ndarray | None  # (N, L) suggestions' probabilities, None before there is a head (or the model's own)
    last: int | None  # the video answered last: "more like this" is near it
    shown: int = 0  # answers so far: the rhythm of coverage and the rest runs over the videos shown one by one


def margins(probs: np.ndarray) -> np.ndarray:
    """(N, L) -> (N,): best minus second best probability; small is unsure."""
    if probs.shape[1] < 2:
        return np.ones(len(probs), dtype=probs.dtype)
    top2 = np.partition(probs, -2, axis=1)[:, -2:]  # (N, 2)
    return np.abs(top2[:, 1] - top2[:, 0])


def upcoming(pool: Pool, k: int, leave_out: int | None = None) -> list[int]:
    """The next `k` videos, best first; `leave_out` (the one on screen) is not among them. Videos not embedded yet
    follow in the list's order, skipped ones come last.

    The k-th of them is what would be shown after k more answers, so the rhythm (every other video "more like
    this" before a head, every COVERAGE_EVERY-th one coverage with it) counts from `pool.shown`: the page shows the
    first after each answer, and that first one takes its turn in the rhythm.
    """
    candidates = pool.open & pool.have
    if leave_out is not None:
        candidates[leave_out] = False
    picks: list[int] = []
    margin = None if pool.probs is None else np.where(candidates, margins(pool.probs), np.inf)
    near = _nearest_first(pool, candidates) if margin is None else []
    for turn in range(pool.shown, pool.shown + k):
        if not candidates.any():
            break
        pick = None
        if margin is not None and (turn + 1) % COVERAGE_EVERY:
            pick = int(np.argmin(np.where(candidates, margin, np.inf)))
        elif margin is None and turn % 2 == 1:
            pick = next((i for i in near if candidates[i]), None)
        if pick is None:  # coverage: the video least like anything answered or picked before it
            closeness = pool.closeness
            if picks:
                closeness = np.maximum(closeness, (pool.points @ pool.points[picks].T).max(axis=1))  # (N,)
            pick = int(np.argmin(np.where(candidates, closeness, np.inf)))
        picks.append(pick)
        candidates[pick] = False
    rest = [i for i in np.flatnonzero(pool.open & ~pool.have) if i != leave_out]
    rest += [i for i in np.flatnonzero(pool.skipped) if i != leave_out]
    return picks + [int(i) for i in rest[: k - len(picks)]]


def _nearest_first(pool: Pool, candidates: np.ndarray) -> list[int]:
    """Candidates by similarity to the video answered last, most similar first; none when there is no such video."""
    if pool.last is None or not pool.have[pool.last]:
        return []
    similarity = pool.points @ pool.points[pool.last]  # (N,)
    order = np.argsort(-similarity, kind="stable")
    return [int(i) for i in order if candidates[i]]


def unit(vectors: np.ndarray) -> np.ndarray:
    """(N, D) -> rows scaled to length one (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

"""The new head: multinomial logistic regression with L2 on standardised features, class-balanced, fitted full-batch
with L-BFGS; the strength picked on the validation videos; then folded back so that it reads raw features."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # tried strongest first, each warm-started from the last
MAX_ITER = 500  # L-BFGS iterations per strength; a few hundred parameters per class converge well before
MIN_STD = 1e-6  # features that never vary are divided by this, not by zero
PROB_FLOOR = 1e-12  # log-loss of a probability rounded to zero


@dataclass(frozen=True)
class Videos:
    """Videos' view features stacked: every view is a sample; `video` says whose."""

    features: np.ndarray  # (N, D) float32: N views over all videos
    labels: np.ndarray  # (N,) int64 class ids
    video: np.ndarray  # (N,) int64: which video, 0..M-1

    @classmethod
    def stack(cls, views: Sequence[np.ndarray], classes: Sequence[int]) -> Videos:
        """Per-video features (V, D) and class ids -> one sample per view."""
        counts = [len(v) for v in views]
        return cls(
            np.concatenate(views).astype(np.float32),  # (N, D)
            np.repeat(np.asarray(classes, np.int64), counts),  # (N,)
            np.repeat(np.arange(len(views)), counts),  # (N,)
        )

    @property
    def video_labels(self) -> np.ndarray:
        """(M,) each video's class id."""
        first = np.unique(self.video, return_index=True)[1]
        return self.labels[first]


@dataclass(frozen=True)
class Fit:
    """One L2 strength tried: figures per video, the clips' probabilities averaged as `classify --clips` does."""

    l2: float
    train_accuracy: float
    val_accuracy: float
    val_loss: float  # mean negative log-likelihood of the true label


@dataclass(frozen=True)
class Head:
    """The classifier layer for raw (unstandardised) features: logits = features @ weight.T + bias."""

    weight: np.ndarray  # (L, D) float32
    bias: np.ndarray  # (L,) float32
    fit: Fit  # the strength chosen, and its figures

    def probs(self, features: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, L) class probabilities."""
        logits = torch.from_numpy(features.astype(np.float32)) @ torch.from_numpy(self.weight).T  # (N, L)
        return (logits + torch.from_numpy(self.bias)).softmax(-1).numpy()


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) -> (N,) sample weights inversely proportional to their class's frequency, averaging one."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    per_class = len(labels) / (num_classes * np.maximum(counts, 1))
    return per_class[labels]


def train_head(
    train: Videos, val: Videos, num_classes: int, l2: float | None = None, on_fit: Callable[[Fit], None] | None = None
) -> Head:
    """Fit for each strength (`l2`, or L2_GRID), keep the one with the lowest validation loss (ties: accuracy)."""
    mean = train.features.mean(axis=0, dtype=np.float64)  # (D,)
    std = np.maximum(train.features.std(axis=0, dtype=np.float64), MIN_STD)  # (D,)
    x = torch.from_numpy((train.features - mean) / std)  # (N, D) float64
    y = torch.from_numpy(train.labels)  # (N,)
    w = torch.from_numpy(class_weights(train.labels, num_classes))  # (N,)
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)  # (L, D)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)  # (L,)
    best: Head | None = None
    for strength in sorted((l2,) if l2 is not None else L2_GRID, reverse=True):
        _minimise(x, y, w, weight, bias, strength)
        # Folded back: ((f - mean) / std) @ W.T + b == f @ (W / std).T + (b - (W / std) @ mean).
        folded = weight.detach().numpy() / std  # (L, D)
        head_bias = bias.detach().numpy() - folded @ mean  # (L,)
        head = Head(folded.astype(np.float32), head_bias.astype(np.float32), Fit(strength, 0.0, 0.0, 0.0))
        train_acc = accuracy(video_probs(head, train), train.video_labels)
        val_p = video_probs(head, val)
        fit = Fit(strength, train_acc, accuracy(val_p, val.video_labels), log_loss(val_p, val.video_labels))
        if on_fit:
            on_fit(fit)
        if best is None or (fit.val_loss, -fit.val_accuracy) < (best.fit.val_loss, -best.fit.val_accuracy):
            best = Head(head.weight, head.bias, fit)
    assert best is not None
    return best


def _minimise(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, l2: float
) -> None:
    """Weighted mean cross-entropy + l2/2 * |W|^2 (the bias is not penalised), in place, by L-BFGS."""
    optimiser = torch.optim.LBFGS(
        [weight, bias], max_iter=MAX_ITER, tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = x @ weight.T + bias  # (N, L)
        ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")  # (N,)
        loss = (ce * w).sum() / w.sum() + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)


def video_probs(head: Head, videos: Videos) -> np.ndarray:
    """(M, L): each video's class probabilities, its views' averaged (the ViViT test protocol)."""
    probs = head.probs(videos.features)  # (N, L)
    sums = np.zeros((int(videos.video.max(initial=-1)) + 1, probs.shape[1]))  # (M, L)
    np.add.at(sums, videos.video, probs)
    return sums / np.maximum(np.bincount(videos.video, minlength=len(sums)), 1)[:, None]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean()) if len(labels) else float("nan")


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    if not len(labels):
        return float("nan")
    return float(-np.log(np.maximum(probs[np.arange(len(labels)), labels], PROB_FLOOR)).mean())

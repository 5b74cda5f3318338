"""The new head: multinomial logistic regression with L2 on standardised features, class-balanced, fitted full-batch
with L-BFGS in torch (float64); the strength picked on the validation videos; then folded back so that it reads raw
features."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # tried strongest first, each warm-started from the last
MAX_ITER = 500  # L-BFGS iterations per strength; a few hundred parameters per class converge well before
HISTORY = 10  # L-BFGS's remembered steps
GRAD_TOL = 1e-6  # stop once no gradient component is larger
CHANGE_TOL = 1e-10  # or once a step lowers the loss by less than this (relative)
ARMIJO = 1e-4  # sufficient decrease of the line search
MIN_STEP = 1e-12  # the line search's shortest step
MIN_STD = 1e-6  # features that never vary are divided by this, not by zero
PROB_FLOOR = 1e-12  # log-loss of a probability rounded to zero
NEAR_BEST = 0.01  # validation accuracy: --full's head is the strongest L2 within a point of the best


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


class Fitter:
    """The training samples standardised once, then a head per L2 strength, each warm-started from the last."""

    def __init__(self, train: Videos, num_classes: int, theta: torch.Tensor | None = None) -> None:
        self.mean = train.features.mean(axis=0, dtype=np.float64)  # (D,)
        self.std = np.maximum(train.features.std(axis=0, dtype=np.float64), MIN_STD)  # (D,)
        self.x = torch.from_numpy((train.features - self.mean) / self.std)  # (N, D) float64
        self.y = torch.from_numpy(train.labels)  # (N,)
        self.w = torch.from_numpy(class_weights(train.labels, num_classes))  # (N,)
        self.num_classes = num_classes
        # W (L, D) then b (L,), flat, in standardised units: a caller may hand back the last one to start from.
        self.theta = torch.zeros(num_classes * (self.x.shape[1] + 1), dtype=torch.float64) if theta is None else theta

    def fit(self, l2: float) -> Head:
        """The head for one strength, its Fit figures not yet known (zeros)."""
        self.theta = _lbfgs(_objective(self.x, self.y, self.w, self.num_classes, l2), self.theta)
        n = self.num_classes
        weight, bias = self.theta[:-n].view(n, -1).numpy(), self.theta[-n:].numpy()
        # Folded back: ((f - mean) / std) @ W.T + b == f @ (W / std).T + (b - (W / std) @ mean).
        folded = weight / self.std  # (L, D)
        return Head(folded.astype(np.float32), (bias - folded @ self.mean).astype(np.float32), Fit(l2, 0, 0, 0))


def train_head(
    train: Videos,
    val: Videos,
    num_classes: int,
    l2: float | None,
    on_fit: Callable[[Fit], None],
    pick: Callable[[Sequence[Head]], Head] | None = None,
) -> Head:
    """Fit for each strength (`l2`, or L2_GRID) and keep the one `pick` chooses of them (strongest first): by
    default the lowest validation loss (ties: accuracy, then the stronger)."""
    fitter = Fitter(train, num_classes)
    heads = []
    for strength in sorted((l2,) if l2 is not None else L2_GRID, reverse=True):
        head = fitter.fit(strength)
        train_acc = accuracy(video_probs(head, train), train.video_labels)
        val_p = video_probs(head, val)
        fit = Fit(strength, train_acc, accuracy(val_p, val.video_labels), log_loss(val_p, val.video_labels))
        on_fit(fit)
        heads.append(Head(head.weight, head.bias, fit))
    return (pick or lowest_loss)(heads)


def lowest_loss(heads: Sequence[Head]) -> Head:
    """The head with the lowest validation loss (ties: the higher accuracy, then the first, the stronger)."""
    return min(heads, key=lambda h: (h.fit.val_loss, -h.fit.val_accuracy))


def strongest_near_best(heads: Sequence[Head]) -> Head:
    """The strongest L2 whose validation accuracy is within NEAR_BEST of the best: where `train --full` starts. A
    weak one fits the frozen features with large weights, whose gradients then pull the backbone hard at the start
    of fine-tuning; a strong one starts it from a small head that does as well."""
    best = max(h.fit.val_accuracy for h in heads)
    return max((h for h in heads if h.fit.val_accuracy >= best - NEAR_BEST), key=lambda h: h.fit.l2)


Objective = Callable[[torch.Tensor], tuple[float, torch.Tensor]]  # flat parameters -> (loss, gradient)


def _objective(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, num_classes: int, l2: float) -> Objective:
    """Weighted mean cross-entropy + l2/2 * |W|^2 (the bias is not penalised), and its gradient, in closed form."""
    onehot = torch.nn.functional.one_hot(y, num_classes).to(x.dtype)  # (N, L)
    share = w / w.sum()  # (N,)

    def f(theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        weight, bias = theta[:-num_classes].view(num_classes, -1), theta[-num_classes:]  # (L, D), (L,)
        logp = (x @ weight.T + bias).log_softmax(-1)  # (N, L)
        loss = -(share * (logp * onehot).sum(-1)).sum() + 0.5 * l2 * weight.square().sum()
        g = (logp.exp() - onehot) * share[:, None]  # (N, L): d loss / d logits
        grad = torch.cat([(g.T @ x + l2 * weight).flatten(), g.sum(0)])  # (L*D + L,)
        return float(loss), grad

    return f


def _lbfgs(f: Objective, theta: torch.Tensor) -> torch.Tensor:
    """Minimise a smooth convex f by L-BFGS with a backtracking (Armijo) line search. Written here rather than
    torch.optim.LBFGS: the first torch optimiser imports torch._dynamo, seconds that a cached run should not pay."""
    loss, grad = f(theta)
    history: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (s, y, 1 / y.s), oldest first
    for _ in range(MAX_ITER):
        if grad.abs().max() <= GRAD_TOL:
            break
        q, alphas = grad.clone(), []
        for s, yv, rho in reversed(history):  # the two-loop recursion: q becomes H @ grad
            a = rho * float(s @ q)
            q -= a * yv
            alphas.append(a)
        if history:
            s, yv, _ = history[-1]
            q *= float(s @ yv) / float(yv @ yv)
        for (s, yv, rho), a in zip(history, reversed(alphas), strict=True):
            q += (a - rho * float(yv @ q)) * s
        direction = -q
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction (rounding): start again from the gradient
            history.clear()
            direction, slope = -grad, -float(grad @ grad)
        step = 1.0 if history else min(1.0, 1.0 / float(grad.abs().sum()))
        while True:
            new = theta + step * direction
            new_loss, new_grad = f(new)
            if new_loss <= loss + ARMIJO * step * slope or step < MIN_STEP:
                break
            step *= 0.5
        s, yv = new - theta, new_grad - grad
        if float(yv @ s) > 1e-12:
            history = [*history[-(HISTORY - 1) :], (s, yv, 1.0 / float(yv @ s))]
        done = loss - new_loss <= CHANGE_TOL * max(1.0, abs(loss))
        theta, loss, grad = new, new_loss, new_grad
        if done:
            break
    return theta


def video_probs(head: Head, videos: Videos) -> np.ndarray:
    """(M, L): each video's class probabilities, its views' averaged (the ViViT test protocol)."""
    probs = head.probs(videos.features)  # (N, L)
    sums = np.zeros((int(videos.video.max()) + 1, probs.shape[1]))  # (M, L)
    np.add.at(sums, videos.video, probs)
    return sums / np.maximum(np.bincount(videos.video, minlength=len(sums)), 1)[:, None]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.maximum(probs[np.arange(len(labels)), labels], PROB_FLOOR)).mean())

"""The one scoring path: model string -> Classifier; views of many videos -> batches -> per-view scores -> results.

Every command scores through `ViewBatcher` (or `score_videos` when all its videos are at hand): classify, batch
(locally and on Ray), timeline and webcam. It returns class probabilities, or the features the head reads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vivit_cli import DEFAULT_MODEL, hub
from vivit_cli.checkpoint import load_checkpoint, read_config
from vivit_cli.device import resolve_device, resolve_dtype
from vivit_cli.errors import DeviceError, VivitError
from vivit_cli.labels import LabelSet
from vivit_cli.model import VivitForVideoClassification, VivitModel
from vivit_cli.results import ModelInfo, Prediction, VideoEmbedding, VideoResult
from vivit_cli.video.preprocess import PreprocessConfig
from vivit_cli.video.sampling import Views
from vivit_cli.video.views import PreparedVideo, prepare_video

Output = Literal["probs", "features"]  # class probabilities (L,) or the final CLS token the head reads (D,)


class Classifier:
    """A loaded checkpoint on a device: preprocessing, the model, labels and where they came from.

    `label_set` restricts predictions to some labels: probabilities are the softmax of those labels' logits alone
    (0 for the others), and predictions scoring below its min_score are left out of the top-k.
    """

    def __init__(
        self,
        model: VivitForVideoClassification | VivitModel,
        preprocess: PreprocessConfig,
        source: hub.LocalModel,
        device: torch.device,
        dtype: torch.dtype,
        label_set: LabelSet = LabelSet(),
    ) -> None:
        self.model, self.config, self.preprocess = model, model.config, preprocess
        self.source, self.device, self.dtype = source, device, dtype
        self.label_set = label_set
        self.class_ids = np.array(label_set.class_ids(self.config.labels), dtype=np.int64)  # the labels it may name
        self._mask: torch.Tensor | None = None  # (L,): 0 for those, -inf for the others; None: all of them
        if label_set.names:
            mask = torch.full((self.config.num_labels,), float("-inf"))
            mask[torch.from_numpy(self.class_ids)] = 0.0
            self._mask = mask.to(device)

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    @cached_property
    def info(self) -> ModelInfo:
        return ModelInfo(self.source.model_id, self.source.revision, str(self.device), self.dtype_name)

    def forward(self, pixel_values: torch.Tensor, output: Output = "probs") -> np.ndarray:
        """(B, T, C, S, S) -> probabilities (B, num_labels) or features (B, hidden_size), float32 numpy."""
        if output == "probs" and not (isinstance(self.model, VivitForVideoClassification) and self.config.num_labels):
            raise VivitError(f"{self.source.model_id} has no classification head (it is a bare VivitModel)")
        try:
            with torch.inference_mode():
                x = self._to_device(pixel_values)  # (B, T, C, S, S)
                if output == "features":
                    backbone = self.model.vivit if isinstance(self.model, VivitForVideoClassification) else self.model
                    out = backbone(x, cls_only=True).last_hidden_state[:, 0].float()  # (B, D)
                else:
                    logits = self.model(x).logits.float()  # (B, L)
                    if self._mask is not None:  # the subset's own softmax: its logits, not renormalised probabilities
                        logits = logits + self._mask
                    out = logits.softmax(dim=-1)  # (B, L)
                return out.cpu().numpy()  # the one wait for the device per batch
        except torch.OutOfMemoryError:
            if self.device.type == "cpu":
                raise
            fits = max(1, len(pixel_values) // 2)
            raise DeviceError(
                f"{self.device} ran out of memory on a batch of {len(pixel_values)} views in {self.dtype_name}: "
                f"try --batch-size {fits}" + ("" if len(pixel_values) > 1 else ", or another --dtype or device")
            ) from None

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs onto the model's device: on a GPU from pinned memory, without waiting, cast there."""
        if self.device.type != "cuda":
            return x.to(self.device, self.dtype)
        return x.pin_memory().to(self.device, non_blocking=True).to(self.dtype)

    def scores(self, pixel_values: torch.Tensor) -> np.ndarray:
        """(B, T, C, S, S) -> class probabilities (B, num_labels), float32 numpy."""
        return self.forward(pixel_values, "probs")

    def top_k(self, probs: np.ndarray, k: int) -> tuple[Prediction, ...]:
        """probs (L,) -> the k best predictions of the label set, best first (ties broken by class id), less those
        scoring below its min_score: none when the best one does."""
        ids = self.class_ids
        order = ids[np.argsort(-probs[ids], kind="stable")][: max(1, min(k, len(ids)))]
        top = (Prediction(self.labels[i], float(probs[i]), int(i)) for i in order)
        return tuple(p for p in top if p.score >= self.label_set.min_score)

    def result(self, prepared: PreparedVideo, view_probs: np.ndarray, k: int) -> VideoResult:
        """Average the views' probabilities (the ViViT / MMAction2 test protocol) into one result."""
        return VideoResult(predictions=self.top_k(view_probs.mean(axis=0), k), model=self.info, **prepared.described)

    def embedding(self, prepared: PreparedVideo, view_features: np.ndarray) -> VideoEmbedding:
        """Average the views' features (V, D) into the video's embedding (D,), float32."""
        vector = view_features.astype(np.float32).mean(axis=0, dtype=np.float32)  # (D,)
        return VideoEmbedding(vector=tuple(vector.tolist()), model=self.info, **prepared.described)

    def classify(self, path: str | Path, views: Views | None = None, k: int = 5) -> VideoResult:
        """One video, all its views (default: one centred clip) in one batch."""
        return self.classify_prepared(prepare_video(path, self.config.num_frames, self.preprocess, views or Views()), k)

    def classify_prepared(
        self,
        prepared: PreparedVideo,
        k: int = 5,
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> VideoResult:
        """classify() for a video already decoded and preprocessed (by a decode worker): its views `batch_size` at a
        time (default: all in one batch); `on_batch(views)` after each forward pass."""
        views = len(prepared.pixel_values)
        (probs,) = score_videos(self, [prepared.pixel_values], min(batch_size or views, views), on_batch=on_batch)
        return self.result(prepared, probs, k)


@dataclass(eq=False)
class _Entry:
    """A video whose views are going through the model, possibly over several batches."""

    key: Hashable
    views: torch.Tensor | np.ndarray  # (V, T, C, S, S)
    taken: int = 0  # views sent to the model so far
    scores: list[np.ndarray] = field(default_factory=list)

    @property
    def left(self) -> int:
        return len(self.views) - self.taken


class ViewBatcher:
    """Videos' views in, `batch_size` views per forward pass, each video's scores (V, ...) out once all are done.

    Views of several videos share a batch, and a video's views may span batches; only views of one shape go
    together (without a centre crop, frame sizes differ between videos). Videos complete in the order added.
    `on_batch(views)` hears of each forward pass as it ends: a progress bar's callback.
    """

    def __init__(
        self,
        classifier: Classifier,
        batch_size: int,
        output: Output = "probs",
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise VivitError(f"batch_size must be at least 1, got {batch_size}")
        self.classifier, self.batch_size, self.output, self.on_batch = classifier, batch_size, output, on_batch
        self._queue: deque[_Entry] = deque()

    @property
    def pending(self) -> int:
        """Views added and not yet through the model."""
        return sum(e.left for e in self._queue)

    def add(self, key: Hashable, views: torch.Tensor | np.ndarray) -> list[tuple[Hashable, np.ndarray]]:
        """Queue a video's views (V, T, C, S, S); run every full batch; return the videos that completed."""
        self._queue.append(_Entry(key, views))
        done = []
        while self.pending >= self.batch_size:
            done += self.step()
        return done

    def step(self) -> list[tuple[Hashable, np.ndarray]]:
        """One forward pass over up to batch_size views from the front of the queue; the videos it completed."""
        if not self._queue:
            return []
        shape = tuple(self._queue[0].views.shape[1:])
        parts: list[tuple[_Entry, int, int]] = []
        taken = 0
        for entry in self._queue:
            if taken == self.batch_size or tuple(entry.views.shape[1:]) != shape:
                break
            n = min(self.batch_size - taken, entry.left)
            parts.append((entry, entry.taken, entry.taken + n))
            entry.taken += n
            taken += n
        x = torch.cat([torch.as_tensor(e.views[a:b]) for e, a, b in parts])  # (B, T, C, S, S)
        out = self.classifier.forward(x, self.output)  # (B, L) or (B, D)
        if self.on_batch:
            self.on_batch(len(x))
        offset = 0
        for entry, a, b in parts:
            entry.scores.append(out[offset : offset + b - a])
            offset += b - a
        done = []
        while self._queue and self._queue[0].left == 0:  # views are taken front first: the done ones lead
            entry = self._queue.popleft()
            done.append((entry.key, np.concatenate(entry.scores)))  # (V, ...)
        return done

    def drain(self) -> list[tuple[Hashable, np.ndarray]]:
        """Run what is queued, whatever the batch's fill; every video's scores."""
        done = []
        while self._queue:
            done += self.step()
        return done


def score_videos(
    classifier: Classifier,
    videos: Sequence[torch.Tensor | np.ndarray],
    batch_size: int,
    output: Output = "probs",
    on_batch: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Each video's views (V, T, C, S, S) -> its scores (V, L) or features (V, D), batch_size views per pass;
    `on_batch(views)` after each pass."""
    batcher = ViewBatcher(classifier, batch_size, output, on_batch)
    found: dict[Hashable, np.ndarray] = {}
    for i, views in enumerate(videos):
        found.update(batcher.add(i, views))
    found.update(batcher.drain())
    return [found[i] for i in range(len(videos))]


def load_model(
    name_or_path: str | Path | hub.ModelRef = DEFAULT_MODEL,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    labels: LabelSet = LabelSet(),
) -> Classifier:
    """A Hub repo id (org/name[@revision]) or a checkpoint folder -> a Classifier on device, in eval mode, that
    predicts `labels` only. Unknown label names are refused before the weights are read."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    local = hub.fetch(name_or_path)
    if labels.names:
        labels.class_ids(read_config(local.folder)[0].labels)
    ckpt = load_checkpoint(local.folder, dev, dt)
    return Classifier(ckpt.model, ckpt.preprocess, local, dev, dt, labels)

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
        """Frames (B, T, S, S, C) uint8, normalised on the device, or pixel values (B, T, C, S, S) float -> class
        probabilities (B, num_labels) or features (B, hidden_size), float32 numpy."""
        if output == "probs" and not (isinstance(self.model, VivitForVideoClassification) and self.config.num_labels):
            raise VivitError(f"{self.source.model_id} has no classification head (it is a bare VivitModel)")
        try:
            with torch.inference_mode():
                x = self._to_device(torch.as_tensor(pixel_values))  # (B, T, C, S, S)
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
        """Inputs onto the model's device, normalised there in float32: the one rounding to the model's dtype last,
        as a float32 input would be."""
        return to_device(x, self.preprocess, self.device).to(self.dtype)

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
        views = len(prepared.frames)
        (probs,) = score_videos(self, [prepared.frames], min(batch_size or views, views), on_batch=on_batch)
        return self.result(prepared, probs, k)


def to_device(x: torch.Tensor, preprocess: PreprocessConfig, device: torch.device) -> torch.Tensor:
    """Frames (..., T, S, S, C) uint8 or pixel values (..., T, C, S, S) onto `device` (on a GPU from pinned memory,
    without waiting); uint8 frames are normalised there, into float32 (..., T, C, S, S)."""
    if device.type == "cuda":
        x = (x if x.is_pinned() else x.pin_memory()).to(device, non_blocking=True)
    x = x.to(device)
    return preprocess.normalise(x) if x.dtype == torch.uint8 else x


@dataclass(eq=False)
class _Entry:
    """A video whose views are going through the model, possibly over several batches."""

    key: Hashable
    views: int  # how many it has
    scores: list[np.ndarray] = field(default_factory=list)  # those scored so far, in order

    @property
    def done(self) -> bool:
        return sum(len(s) for s in self.scores) == self.views


class ViewBatcher:
    """Videos' views in, `batch_size` views per forward pass, each video's scores (V, ...) out once all are done.

    `add` copies a video's views into the next batch at once (on a GPU, pinned memory), so the caller may reuse
    their memory as soon as it returns: a decode pool's shared block. Views of several videos share a batch, and
    a video's views may span batches; only views of one shape and dtype go together (without a centre crop, frame
    sizes differ between videos). Videos complete in the order added. `on_batch(views)` hears of each forward
    pass as it ends: a progress bar's callback.
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
        self._queue: deque[_Entry] = deque()  # added and not yet complete, in order
        self._batch: torch.Tensor | None = None  # (batch_size, ...) the next batch, filled from the front
        self._owners: list[tuple[_Entry, int]] = []  # whose views the batch holds, and how many, in order

    @property
    def pending(self) -> int:
        """Views added and not yet through the model."""
        return sum(n for _, n in self._owners)

    def add(self, key: Hashable, views: torch.Tensor | np.ndarray) -> list[tuple[Hashable, np.ndarray]]:
        """Copy a video's views (V, ...) into the batch, running it each time it fills; the videos that completed."""
        entry = _Entry(key, len(views))
        self._queue.append(entry)
        x = torch.as_tensor(views)  # (V, ...) no copy
        done, taken = [], 0
        while taken < len(x):
            batch = self._batch
            if batch is None or batch.shape[1:] != x.shape[1:] or batch.dtype != x.dtype:
                done += self.step()  # what the batch holds goes first: results keep their order
                self._batch = batch = self._new_batch(x)
            filled = self.pending
            n = min(self.batch_size - filled, len(x) - taken)
            batch[filled : filled + n].copy_(x[taken : taken + n])
            self._owners.append((entry, n))
            taken += n
            if filled + n == self.batch_size:
                done += self.step()
        return done

    def _new_batch(self, x: torch.Tensor) -> torch.Tensor:
        # pinned, so that the copy to the GPU need not wait
        pinned = self.classifier.device.type == "cuda" and torch.cuda.is_available()
        return torch.empty((self.batch_size, *x.shape[1:]), dtype=x.dtype, pin_memory=pinned)  # (B, ...)

    def step(self) -> list[tuple[Hashable, np.ndarray]]:
        """One forward pass over the views the batch holds, whatever its fill; the videos it completed."""
        views = self.pending
        if views:
            assert self._batch is not None
            # forward waits for the device (its output comes back to the CPU), so the batch may be refilled after
            out = self.classifier.forward(self._batch[:views], self.output)  # (B, L) or (B, D)
            if self.on_batch:
                self.on_batch(views)
            offset = 0
            for entry, n in self._owners:
                entry.scores.append(out[offset : offset + n])
                offset += n
            self._owners = []
        done = []
        while self._queue and self._queue[0].done:  # views are scored front first: the done ones lead
            entry = self._queue.popleft()
            done.append((entry.key, np.concatenate(entry.scores)))  # (V, ...)
        return done

    def drain(self) -> list[tuple[Hashable, np.ndarray]]:
        """Run what is queued, whatever the batch's fill; every video's scores."""
        return self.step()


def score_videos(
    classifier: Classifier,
    videos: Sequence[torch.Tensor | np.ndarray],
    batch_size: int,
    output: Output = "probs",
    on_batch: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Each video's views, frames (V, T, S, S, C) uint8 or pixel values (V, T, C, S, S) -> its scores (V, L) or
    features (V, D), batch_size views per pass;
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

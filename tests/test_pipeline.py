"""The one scoring path: views of many videos batched through the model, whatever the batch size, and what a
device that runs out of memory says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.checkpoints import write_ours
from vivit_cli.errors import DeviceError
from vivit_cli.pipeline import ViewBatcher, load_model, score_videos

SCORE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory):
    return load_model(write_ours(tmp_path_factory.mktemp("m"), labels=["a", "b", "c"]), device="cpu", dtype="float32")


def views(classifier, n: int, seed: int) -> np.ndarray:
    shape = (classifier.config.num_frames, 3, *classifier.preprocess.crop_hw)
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed)).numpy()  # (V, T, C, S, S)


def test_features_are_the_final_cls_token_the_head_reads(classifier) -> None:
    x = torch.from_numpy(views(classifier, 3, 0))
    (features,) = score_videos(classifier, [x], batch_size=2, output="features")  # (V, D)
    with torch.inference_mode():
        cls = classifier.model.vivit(x).last_hidden_state[:, 0]
        logits = classifier.model.classifier(torch.from_numpy(features))
    np.testing.assert_allclose(features, cls.numpy(), atol=SCORE_TOLERANCE)
    np.testing.assert_allclose(logits.softmax(-1).numpy(), classifier.scores(x), atol=SCORE_TOLERANCE)


def test_videos_complete_in_order_and_as_soon_as_their_last_view_ran(classifier) -> None:
    batcher = ViewBatcher(classifier, batch_size=3)
    assert batcher.add("a", views(classifier, 2, 1)) == []  # 2 views: no full batch yet
    done = batcher.add("b", views(classifier, 2, 2))  # a full batch of 3: a done, one view of b run
    assert [key for key, _ in done] == ["a"] and batcher.pending == 1
    assert [key for key, scores in batcher.drain()] == ["b"] and batcher.pending == 0


def test_each_forward_pass_is_heard_of_and_a_videos_scores_do_not_depend_on_its_batches(classifier) -> None:
    x = views(classifier, 5, 4)
    passes: list[int] = []
    (one_by_one,) = score_videos(classifier, [x], batch_size=2, on_batch=passes.append)
    assert passes == [2, 2, 1]
    np.testing.assert_allclose(one_by_one, classifier.scores(torch.from_numpy(x)), atol=SCORE_TOLERANCE)


def test_views_of_other_sizes_never_share_a_batch(classifier) -> None:
    seen = []
    real = classifier.forward

    def spy(x, output="probs"):
        seen.append(tuple(x.shape))
        return real(x, output)

    classifier.forward = spy
    try:
        small = views(classifier, 2, 3)
        wide = np.concatenate([small, small], axis=-1)  # frames of another size (no centre crop)
        score_videos(classifier, [small, wide, small], batch_size=8)
    finally:
        del classifier.forward
    assert [s[-1] for s in seen] == [small.shape[-1], wide.shape[-1], small.shape[-1]]


def test_a_gpu_out_of_memory_says_which_batch_size_would_fit(classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    def oom(*_, **__):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(classifier, "device", torch.device("cuda", 0))
    monkeypatch.setattr(classifier, "_to_device", lambda x: x)
    monkeypatch.setattr(classifier.model, "forward", oom)
    with pytest.raises(
        DeviceError, match=r"cuda:0 ran out of memory on a batch of 8 views in float32: try --batch-size 4"
    ):
        classifier.forward(torch.from_numpy(views(classifier, 8, 4)))

"""`vivit classify` end to end against transformers' video-classification pipeline, in one process.

    pip install av   # transformers' pipeline decodes with PyAV
    python benchmarks/bench_classify.py [--repeats 2] [--seconds 10] [--views 4x3]

Both classify the same made video (H.264 640x272 at 30 fps through the ffmpeg that imageio-ffmpeg bundles,
else OpenCV's mp4v) with the same full-size ViViT-B (random weights) saved to a folder. "first call" includes
loading the checkpoint; "warm call" is one more call on the loaded model. Ratios below 1 mean we are faster.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, cpu_description, make_checkpoint, make_video  # noqa: E402

from vivit_cli.pipeline import Views, load_model  # noqa: E402

SIZE, FPS = (640, 272), 30  # a 2.35:1 film frame, as in the measurement quoted in the issue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--views", default="", help="also time ours with CLIPSxCROPS views, e.g. 4x3")
    args = ap.parse_args()
    import transformers

    transformers.utils.logging.set_verbosity_error()
    print(f"CPU: {cpu_description()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_checkpoint(Path(tmp) / "vivit-b")
        clip = Path(tmp) / "clip.mp4"
        codec = make_video(clip, SIZE, FPS, args.seconds)
        print(f"video: {args.seconds} s, {SIZE[0]}x{SIZE[1]} {codec} at {FPS} fps; model: ViViT-B, random weights\n")

        t = time.perf_counter()
        clf = load_model(str(folder), device="cpu")
        ours_result = clf.classify(clip)
        ours_first = time.perf_counter() - t
        ours_warm = best_time(lambda: clf.classify(clip), args.repeats)

        t = time.perf_counter()
        pipe = transformers.pipeline("video-classification", model=str(folder), device="cpu")
        theirs_result = pipe(str(clip))
        theirs_first = time.perf_counter() - t
        theirs_warm = best_time(lambda: pipe(str(clip)), args.repeats)

        # Time spent in each model alone on one clip, to show what is outside it.
        x = torch.randn(1, 32, 3, 224, 224)
        with torch.inference_mode():
            ours_model = best_time(lambda: clf.model(x), args.repeats)
            theirs_model = best_time(lambda: pipe.model(pixel_values=x), args.repeats)

        print(f"{'':<30}{'first call':>12}{'warm call':>12}{'model only':>12}")
        print(f"{'vivit classify':<30}{ours_first:>11.2f}s{ours_warm:>11.2f}s{ours_model:>11.2f}s")
        print(f"{'transformers pipeline':<30}{theirs_first:>11.2f}s{theirs_warm:>11.2f}s{theirs_model:>11.2f}s")
        print(f"{'ratio ours / theirs':<30}{ours_first / theirs_first:>12.2f}{ours_warm / theirs_warm:>12.2f}"
              f"{ours_model / theirs_model:>12.2f}")
        print(f"outside the model: ours {ours_warm - ours_model:.2f} s, theirs {theirs_warm - theirs_model:.2f} s")
        print(f"top-1: ours {ours_result.predictions[0].label!r}, theirs {theirs_result[0]['label']!r} "
              "(they sample different frames: the pipeline takes the first 32, we centre a stride-2 clip)")
        if args.views:
            clips, crops = (int(v) for v in args.views.split("x"))
            t = best_time(lambda: clf.classify(clip, Views(clips=clips, crops=crops)), 1)
            print(f"\n--clips {clips} --crops {crops}: {t:.2f} s = {t / ours_model:.1f} model passes of one clip "
                  f"({clips * crops} views)")


if __name__ == "__main__":
    main()

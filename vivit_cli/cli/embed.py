"""`vivit embed`: every video of SOURCES -> its embedding, one row per video, as `vivit batch` writes labels."""

from __future__ import annotations

from typing import Any

import click

from vivit_cli.batch.rows import Embeddings
from vivit_cli.cli.batch import run_files, run_options
from vivit_cli.cli.options import sampling_options
from vivit_cli.video.sampling import Views
from vivit_cli.writers.embeddings import EMBED


@click.command("embed")
@run_options(EMBED, sampling_options)
def embed_command(ctx: click.Context, views: Views, **_: Any) -> None:
    """Embed every video in SOURCES into one Parquet, JSONL or JSON file: a row per video, ok or error.

    A row's `embedding` is the model's final LayerNorm CLS token (what its classifier reads), averaged over the
    views (--clips x --crops), as float32: in Parquet a fixed-size list column. The sources, workers, --resume,
    --ray, progress and exit codes are `vivit batch`'s: 0 all embedded, 4 some videos failed (see their rows),
    3 model or checkpoint problem, 2 bad usage or device, 130 Ctrl-C or 143 SIGTERM (finish with --resume).
    """
    run_files(ctx, views, Embeddings())

"""Each video's view features on disk, so that a second `vivit train` on the same videos runs no model.

An entry is one .npy of (V, D) float32 per video, under a folder per setting (model and its weights, dtype, views,
preprocessing). A video's key is its absolute path, size and modification time: an edited file is embedded again.
Every entry is written alone and atomically (temp file, then os.replace): a run stopped halfway keeps what it did.
No torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from vivit_cli.errors import SourceError
from vivit_cli.results import shown_path

if TYPE_CHECKING:
    from vivit_cli.hub import LocalModel
    from vivit_cli.video.preprocess import PreprocessConfig
    from vivit_cli.video.sampling import Views

CACHE_ENV = "VIVIT_CACHE"  # the cache's root; embeddings go under it
CACHE_FORMAT = 1  # bumped when what an entry holds changes, so old entries are never read as new ones
SETTINGS_FILE = "settings.json"  # what the entries of a settings folder were made with, for people reading it
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")  # a local folder's files whose change changes the features


def default_cache_dir() -> Path:
    """$VIVIT_CACHE, else $XDG_CACHE_HOME/vivit, else ~/.cache/vivit; embeddings in its `embeddings` folder."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "vivit"
    )
    return Path(root) / "embeddings"


def settings(
    local: LocalModel, dtype: str, num_frames: int, views: Views, preprocess: PreprocessConfig
) -> dict[str, Any]:
    """Everything besides the file that decides its features; the model's weights named by their Hub commit, or by
    the sizes and times of a local folder's files."""
    if local.revision:
        model = {"model": local.model_id, "revision": local.revision}
    else:
        folder = local.folder.resolve()
        stats = {name: os.stat(folder / name) for name in sorted(os.listdir(folder)) if name.endswith(WEIGHT_SUFFIXES)}
        model = {"model": str(folder), "files": {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()}}
    return {
        "format": CACHE_FORMAT,
        **model,
        "dtype": dtype,
        "num_frames": num_frames,
        "views": asdict(views),
        "preprocess": preprocess.to_dict(),
    }


def open_cache(local: LocalModel, dtype: str, views: Views, root: Path | None = None) -> EmbeddingCache:
    """The cache of `local`'s features in `dtype` for `views`, under `root` (default_cache_dir() when None)."""
    from vivit_cli.checkpoint import read_config, read_preprocess

    config, _ = read_config(local.folder)
    found = settings(local, dtype, config.num_frames, views, read_preprocess(local.folder))
    return EmbeddingCache(root or default_cache_dir(), found)


def _digest(value: Any, length: int) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class EmbeddingCache:
    """The entries of one setting: `root`/<hash of the settings>/<hash of the file>.npy."""

    root: Path
    settings: dict[str, Any]

    @cached_property
    def folder(self) -> Path:
        return self.root / _digest(self.settings, 24)

    def entry(self, path: str) -> Path | None:
        """Where `path`'s features are kept; None when it cannot be stat'ed (decoding then says why)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        return self.folder / f"{_digest([os.path.abspath(path), st.st_size, st.st_mtime_ns], 32)}.npy"

    def check_writable(self) -> None:
        """Our error, before any video is embedded, when the cache's folder cannot be made or written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            why = e.strerror or str(e)
        else:
            if os.access(self.folder, os.W_OK):
                return
            why = "no permission to write"
        raise SourceError(f"the cache {shown_path(self.folder)} cannot be written ({why}): give another --cache-dir")

    def get(self, path: str) -> np.ndarray | None:
        """The features (V, D) kept for this very file, or None; a missing or unreadable entry counts as none."""
        entry = self.entry(path)
        if entry is None:
            return None
        try:
            return np.load(entry, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None

    def put(self, path: str, features: np.ndarray) -> None:
        """Keep `path`'s features (V, D) as float32; the entry appears whole or not at all."""
        entry = self.entry(path)
        if entry is None:
            return
        if not (self.folder / SETTINGS_FILE).is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self.settings, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
            _write_atomic(self.folder / SETTINGS_FILE, lambda f: f.write(text.encode("utf-8")))
        _write_atomic(entry, lambda f: np.save(f, np.ascontiguousarray(features, dtype=np.float32)))


def _write_atomic(target: Path, write: Callable[[BinaryIO], Any]) -> None:
    """A file that appears whole or not at all: written beside `target`, then renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""The user's model string -> a local checkpoint folder, through the Hugging Face cache transformers uses.

huggingface_hub (and httpx2 under it) costs about 0.4 s to import, so only the functions that talk to the Hub
or read its cache import it: a local folder never pays for it.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vivit_cli.checkpoint import CONFIG_FILE, PICKLE_FILE, PREPROCESSOR_FILE, SAFETENSORS_FILE, SAFETENSORS_INDEX
from vivit_cli.errors import CheckpointError, HubAuthError, ModelNotFoundError, VivitError

if TYPE_CHECKING:  # pragma: no cover
    from huggingface_hub.errors import HfHubHTTPError

FORMS = "a Hub repo id (org/name), org/name@revision (a branch, tag or commit) or a local checkpoint folder"
LOGIN = "set HF_TOKEN or run `hf auth login`"

# The Hub's own rules for a repo id (huggingface_hub's validate_repo_id), plus a required org.
_REPO = re.compile(r"(?P<repo>\w(?:[\w.-]*\w)?/(?P<name>\w(?:[\w.-]*\w)?))(?:@(?P<revision>[\w./+-]+))?", re.ASCII)
_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class ModelRef:
    """A model string, parsed: a Hub repo (with an optional revision) or a local folder."""

    repo_id: str | None  # "org/name" for the Hub
    revision: str | None  # branch, tag or commit after '@'; None is the default branch ("main")
    folder: Path | None  # set for a local folder

    def __post_init__(self) -> None:
        assert (self.repo_id is None) != (self.folder is None), "a model is either a repo or a folder"

    def __str__(self) -> str:
        if self.folder is not None:
            return str(self.folder)
        return f"{self.repo_id}@{self.revision}" if self.revision else str(self.repo_id)


@dataclass(frozen=True)
class LocalModel:
    """Where a model's files are on disk, and what answered: the repo id and the commit."""

    folder: Path  # config.json, model.safetensors or pytorch_model.bin, maybe preprocessor_config.json
    model_id: str  # repo id, or the folder path as given
    revision: str | None  # resolved commit hash (40 hex) for Hub models; None for folders
    note: str | None = None  # one line for the user (e.g. served from the cache while offline)

    @property
    def pinned(self) -> str:
        """A model string for this very commit (a folder as given): fetching it again asks the Hub nothing."""
        return f"{self.model_id}@{self.revision}" if self.revision else self.model_id


def parse_model(spec: str) -> ModelRef:
    """A model string -> an existing folder, else org/name[@revision] for the Hub."""
    text = spec.strip()
    path = Path(text).expanduser()
    # A folder wins over a repo id of the same name, as in transformers' from_pretrained.
    if text and path.is_dir():
        return ModelRef(None, None, path)
    if text and path.exists():
        raise ModelNotFoundError(f"{spec} is a file: give the checkpoint folder that holds config.json")
    m = _REPO.fullmatch(text)
    if m and "--" not in m["repo"] and ".." not in m["repo"] and len(m["name"]) <= 96:
        return ModelRef(m["repo"], m["revision"], None)
    if text.startswith((".", "~", os.sep)) or os.sep in text or (os.altsep and os.altsep in text):
        raise ModelNotFoundError(f"no such folder: {spec} (a model is {FORMS})")
    raise ModelNotFoundError(f"{spec!r} is not a model: use {FORMS}")


def fetch(ref: ModelRef | str | Path, *, token: str | None = None, weights: bool = True) -> LocalModel:
    """A model (parsed, a string or a path) -> a local folder: a folder as it is, a Hub repo through the cache.

    Only config.json, preprocessor_config.json (when the repo has one) and one set of weights are fetched;
    weights=False skips the weights (enough to read the labels). token=None uses HF_TOKEN or the saved login.
    """
    ref = ref if isinstance(ref, ModelRef) else parse_model(str(ref))
    if ref.folder is not None:
        return LocalModel(ref.folder, str(ref.folder), None)
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    assert ref.repo_id is not None
    revision = ref.revision or constants.DEFAULT_REVISION
    if _COMMIT.fullmatch(revision):
        # A commit never changes, so a complete cached copy needs no request, online or not.
        cached = _cached_folder(ref.repo_id, revision, weights)
        if cached is not None:
            return LocalModel(cached, ref.repo_id, revision)
    if constants.is_offline_mode():
        return _from_cache(ref, weights, "offline (HF_HUB_OFFLINE is set)")
    try:
        info = HfApi().model_info(ref.repo_id, revision=revision, token=token, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except _unreachable() as e:
        return _from_cache(ref, weights, f"Hub unreachable ({type(e).__name__})")
    except HfHubHTTPError as e:
        if e.response.status_code >= 500:
            return _from_cache(ref, weights, f"Hub unavailable (HTTP {e.response.status_code})")
        raise _hub_error(e, ref, token) from None
    if not info.sha:
        raise ModelNotFoundError(f"the Hub at {constants.ENDPOINT} named no commit for {ref}")
    sha = info.sha
    wanted = _files_to_fetch(ref, {s.rfilename for s in info.siblings or ()}, weights)
    # Every file from the commit just resolved, even if the branch moves meanwhile; cached ones cost nothing.
    folder = _download(ref, sha, wanted[0], token).parent
    for name in wanted[1:]:
        _download(ref, sha, name, token)
    if SAFETENSORS_INDEX in wanted:
        for shard in _shards(folder / SAFETENSORS_INDEX):
            _download(ref, sha, shard, token)
    _remember_revision(ref.repo_id, revision, sha)
    return LocalModel(folder, ref.repo_id, sha)


def _files_to_fetch(ref: ModelRef, names: set[str], weights: bool) -> list[str]:
    """The repo's file names -> the few we need, config.json first; a pickle only without safetensors."""
    if CONFIG_FILE not in names:
        raise CheckpointError(f"{ref} has no {CONFIG_FILE}: it is not a transformers checkpoint")
    wanted = [CONFIG_FILE] + ([PREPROCESSOR_FILE] if PREPROCESSOR_FILE in names else [])
    if not weights:
        return wanted
    for candidate in (SAFETENSORS_FILE, SAFETENSORS_INDEX, PICKLE_FILE):
        if candidate in names:
            return [*wanted, candidate]
    raise CheckpointError(f"{ref} has no weights: expected {SAFETENSORS_FILE} or {PICKLE_FILE}")


def _download(ref: ModelRef, sha: str, name: str, token: str | None) -> Path:
    """One file of one commit into the cache (progress bar on stderr) -> its path in the snapshot folder."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RemoteEntryNotFoundError

    assert ref.repo_id is not None
    try:
        return Path(hf_hub_download(ref.repo_id, name, revision=sha, token=token))
    except RemoteEntryNotFoundError:
        raise ModelNotFoundError(f"{ref} lists {name}, but the Hub does not serve it") from None
    except (LocalEntryNotFoundError, *_unreachable()) as e:
        raise ModelNotFoundError(
            f"lost the Hub while downloading {name} of {ref} ({type(e).__name__}): try again"
        ) from None
    except HfHubHTTPError as e:
        raise _hub_error(e, ref, token) from None
    except OSError as e:  # after the Hub's errors, which are OSErrors too: here, the disk (full, read-only)
        raise VivitError(f"cannot write {name} of {ref} into {constants.HF_HUB_CACHE}: {e.strerror or e}") from None


def _unreachable() -> tuple[type[Exception], ...]:
    """The Hub could not be asked at all: fall back to the cache. OfflineModeIsEnabled is a ConnectionError."""
    import httpx2

    return (httpx2.TransportError, ConnectionError, TimeoutError)


def _shards(index: Path) -> list[str]:
    """The weight files a model.safetensors.index.json names."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{index} is not a valid safetensors index: {e}") from None


def _has_weights(folder: Path) -> bool:
    if (folder / SAFETENSORS_FILE).is_file() or (folder / PICKLE_FILE).is_file():
        return True
    index = folder / SAFETENSORS_INDEX
    return index.is_file() and all((folder / shard).is_file() for shard in _shards(index))


def _cached_folder(repo_id: str, revision: str, weights: bool) -> Path | None:
    """The cached snapshot folder of a branch, tag or commit, if it holds what we need; no request."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, CONFIG_FILE, revision=revision)
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return folder if not weights or _has_weights(folder) else None


def _from_cache(ref: ModelRef, weights: bool, reason: str) -> LocalModel:
    """The Hub cannot be asked: use the cached copy and say so, or explain how to get the model."""
    from huggingface_hub import constants

    assert ref.repo_id is not None
    folder = _cached_folder(ref.repo_id, ref.revision or constants.DEFAULT_REVISION, weights)
    if folder is None:
        raise ModelNotFoundError(
            f"{ref} is not in the cache ({constants.HF_HUB_CACHE}) and cannot be fetched: {reason}. Run "
            f"`vivit download {ref}` on a connected machine (same HF_HOME), or use a local checkpoint folder"
        )
    return LocalModel(folder, ref.repo_id, folder.name, f"{reason}: using cached {ref} at {folder.name[:7]}")


def _remember_revision(repo_id: str, revision: str, sha: str) -> None:
    """Record branch/tag -> commit in the cache's refs/: offline lookups by name need it.

    hf_hub_download writes no ref when it is given a commit, which is how we pin every file to one commit.
    """
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    if revision == sha:
        return
    ref_file = Path(constants.HF_HUB_CACHE).expanduser() / repo_folder_name(repo_id=repo_id, repo_type="model")
    ref_file = ref_file / "refs" / revision
    try:
        if ref_file.is_file() and ref_file.read_text() == sha:
            return
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref_file.with_name(f"{ref_file.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(sha)
        os.replace(tmp, ref_file)  # atomic: a reader never sees half a hash
    except OSError:
        pass  # a read-only cache still serves this run; only a later offline lookup by name needs the ref


def _hub_error(e: HfHubHTTPError, ref: ModelRef, token: str | None) -> VivitError:
    """An answer from the Hub that is not the model -> one line that says what to do."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    status = e.response.status_code
    logged_in = bool(token or get_token())
    if isinstance(e, RevisionNotFoundError):
        revision = ref.revision or constants.DEFAULT_REVISION
        return ModelNotFoundError(f"{ref.repo_id} has no revision {revision!r} (a branch, tag or commit)")
    if isinstance(e, GatedRepoError):
        return HubAuthError(
            f"{ref.repo_id} is gated: accept its terms on {constants.ENDPOINT}/{ref.repo_id} and log in ({LOGIN})"
        )
    if isinstance(e, RepositoryNotFoundError):
        if status == 401 and not logged_in:
            # The Hub answers 401 for both missing and private repos to anyone not logged in.
            return HubAuthError(
                f"{ref.repo_id} is not on the Hub, or it is private or gated: check the name or log in ({LOGIN})"
            )
        extra = ", or your token may not read it" if logged_in else ""
        return ModelNotFoundError(f"no model {ref.repo_id} on the Hub{extra} (and no local folder of that name)")
    if status == 401:
        return HubAuthError(f"the Hub refused the token while fetching {ref}: log in again ({LOGIN})")
    if status == 403:
        return HubAuthError(f"your token may not read {ref}: use a token with read access ({LOGIN})")
    return ModelNotFoundError(f"the Hub could not serve {ref} (HTTP {status})")

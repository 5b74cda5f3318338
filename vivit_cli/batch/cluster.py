"""`vivit batch --ray`: the same job on Ray Data. Decoding runs as CPU tasks, the model in a pool of actors that
each load the checkpoint once; the rows stream back to this process, which writes each file's row once."""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vivit_cli import hub
from vivit_cli.batch import plan as batch
from vivit_cli.batch import worker
from vivit_cli.batch.actors import DecodeJob, Ledger, ModelWorker, decode_row
from vivit_cli.batch.rows import Kind
from vivit_cli.batch.session import connect as connect  # re-exported: to the command, a run on Ray is cluster.*
from vivit_cli.batch.session import require_ray as require_ray
from vivit_cli.batch.session import split_address as split_address
from vivit_cli.batch.worker import DecodeSpec, one_line
from vivit_cli.errors import ClusterError, VivitError
from vivit_cli.labels import LabelSet
from vivit_cli.results import ModelInfo
from vivit_cli.video.preprocess import PreprocessConfig
from vivit_cli.video.sampling import Views
from vivit_cli.video.sources import path_key
from vivit_cli.writers.formats import RecordWriter

MAX_DECODE_BLOCKS = 10_000  # one file per decode task up to this many files, so a crash costs one file's work
MAX_MESSAGE_CHARS = 300  # of a Ray failure, in our one-line error
RAY_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")  # the --device values a Ray worker takes (checked on the driver)
GPU_WORKER_CPUS = 1  # CPUs a model worker on a GPU reserves (for its feeding); one on a CPU device reserves none
# Set on the driver, these reach the workers too: which Hugging Face cache and Hub to use.
FORWARDED_ENV = ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_ENDPOINT", "VIVIT_DEVICE")


@dataclass(frozen=True)
class ClusterModel:
    """The model as the driver resolved it once: what the workers load, and what the rows say."""

    load_ref: str  # org/name@<commit>, or the folder's absolute path: every worker loads the same weights
    info: ModelInfo  # the model string as a local run reports it
    num_frames: int
    preprocess: PreprocessConfig
    note: str | None  # hub's note (offline, from the cache) for stderr
    hidden_size: int = 0  # the embedding's size
    labels: LabelSet = LabelSet()  # what the workers predict, checked against the checkpoint's labels


def resolve_model(model: str | hub.ModelRef, labels: LabelSet = LabelSet()) -> ClusterModel:
    """Fetch the model here (a Hub name becomes a commit), refuse unknown `labels`, read what decoding needs."""
    from vivit_cli.checkpoint import read_config, read_preprocess

    local = hub.fetch(model)
    config, _ = read_config(local.folder)
    labels.class_ids(config.labels)
    load_ref = os.path.abspath(local.folder) if local.revision is None else f"{local.model_id}@{local.revision}"
    return ClusterModel(
        load_ref,
        ModelInfo(local.model_id, local.revision),
        config.num_frames,
        read_preprocess(local.folder),
        local.note,
        config.hidden_size,
        labels,
    )


@dataclass(frozen=True)
class WorkerSizes:
    """How many model workers, what each reserves and uses, and how many decode tasks run at once."""

    workers: int
    gpus_per_worker: float
    device: str
    cpus_per_worker: float
    threads: int | None  # torch threads per worker on a CPU device
    decoders: int | None  # decode tasks at once; None: as many as the cluster's CPUs allow


def size_workers(device: str, workers: int | None, gpus_per_worker: float | None) -> WorkerSizes:
    """Defaults from the cluster: a worker per GPU when there are GPUs (and the device is not cpu), else one per
    node using its cores, with decoding held to the share of the cores a local run gives it."""
    import ray

    if not RAY_DEVICE.fullmatch(device):
        raise ClusterError(f"--device {device} under --ray: the workers run on auto, cpu, cuda or cuda:N")
    # Nodes that can run tasks: a head started with --num-cpus 0 (a common setup) is left out.
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
    if not nodes:
        raise ClusterError("the Ray cluster has no node with CPUs to decode on")
    gpus = sum(n.get("GPU", 0) for n in nodes)
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if gpus and device != "cpu" else 0.0
    if gpus_per_worker > max(n.get("GPU", 0) for n in nodes):
        raise ClusterError(
            f"--gpus-per-worker {gpus_per_worker:g}: no node of the cluster has that many GPUs (it has {gpus:g} in all)"
        )
    if gpus_per_worker:
        workers = workers or max(1, int(gpus // gpus_per_worker))
        device = "cuda" if device == "auto" else device
        return WorkerSizes(workers, gpus_per_worker, device, GPU_WORKER_CPUS, None, None)
    if device.startswith("cuda"):
        raise ClusterError(f"--device {device} under --ray needs --gpus-per-worker above 0")
    workers = workers or len(nodes)
    cores = int(min(n["CPU"] for n in nodes))
    threads = max(1, cores // math.ceil(workers / len(nodes)))
    decoders = sum(batch.default_workers("cpu", int(n["CPU"])) for n in nodes)
    # The model's cores are its threads, not reserved in Ray: on a small node they would leave none to decoding
    # (2 cores: one decode task and the model on both, as a local run has them).
    return WorkerSizes(workers, 0.0, "cpu" if device == "auto" else device, 0.0, threads, decoders)


def run(
    paths: Sequence[str],
    model: ClusterModel,
    sizes: WorkerSizes,
    writer: RecordWriter,
    views: Views,
    kind: Kind,
    dtype: str = "auto",
    batch_size: int | None = None,
    timeout_s: float = batch.DEFAULT_TIMEOUT_S,
    tally: batch.Tally | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> batch.Tally:
    """Score `paths` on the connected cluster and write one row per file (`kind`), in completion order. `batch_size`
    None picks it by the workers' device (batch.default_batch_size)."""
    import json

    import ray

    from vivit_cli.device import slow_dtype_warning

    slow = slow_dtype_warning(dtype, sizes.device)  # judged by this machine's CPU: the workers' say stays in Ray's logs
    if slow:
        warnings.warn(slow, stacklevel=2)
    batch_size = batch_size or batch.default_batch_size(sizes.device)
    tally = tally or batch.Tally()
    rows = batch.Rows(writer, tally, on_row)
    written: set[str] = set()

    def emit(record: dict[str, Any]) -> None:
        key = path_key(str(record["path"]))
        if key in written:  # a retried task can send its rows again
            return
        written.add(key)
        rows.write(record)

    ledger = ray.remote(num_cpus=0)(Ledger).remote()
    try:
        job = DecodeJob(DecodeSpec(model.num_frames, model.preprocess, views), timeout_s, ledger, worker.decode)
        dataset = _dataset(paths, job, model, sizes, views, kind, dtype, batch_size)
        for row in _rows(dataset):
            emit(json.loads(row["record"]))
    finally:
        ray.kill(ledger)
    for path in paths:  # never expected: every file has a row whatever happened to its tasks
        if path_key(path) not in written:
            emit(kind.error(path, "no answer from the Ray cluster", model.info))
    return tally


def _dataset(
    paths: Sequence[str],
    job: DecodeJob,
    model: ClusterModel,
    sizes: WorkerSizes,
    views: Views,
    kind: Kind,
    dtype: str,
    batch_size: int,
) -> Any:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI shows its own bar, counted in videos as a local run's
    context.print_on_execution_start = False
    context.raise_original_map_exception = True  # a worker's VivitError reaches us as itself, not as Ray's wrapper
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled"
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    # The same environment for decode tasks and model workers, so that both can take the workers Ray has already
    # started (a new runtime_env means a new worker process: seconds of start-up on a small node).
    runtime_env = {"env_vars": env} if env else None
    items = [{"path": p, "where": os.path.abspath(p)} for p in paths]
    per_video = views.clips * views.crops
    return (
        ray.data.from_items(items, override_num_blocks=min(len(items), MAX_DECODE_BLOCKS))
        .map(
            decode_row,
            fn_kwargs={"job": job},
            num_cpus=1,
            runtime_env=runtime_env,
            compute=ray.data.TaskPoolStrategy(size=sizes.decoders),
        )
        .map_batches(
            ModelWorker,
            fn_constructor_args=(model, sizes, dtype, kind, batch_size),
            batch_size=max(1, batch_size // per_video),  # videos per call: --batch-size counts views
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=sizes.workers),
            num_cpus=sizes.cpus_per_worker,
            num_gpus=sizes.gpus_per_worker or None,
            runtime_env=runtime_env,
        )
    )


def _rows(dataset: Any) -> Iterator[dict[str, Any]]:
    """The dataset's rows; a failure of the job becomes our error (the workers' own, when it was one of ours)."""
    rows = iter(dataset.iter_rows())
    try:
        yield from rows
    except Exception as e:  # Ray wraps what a task raised (as a subclass of it, too), and adds its own failures
        ours = _our_error(e)
        if ours is not None:
            raise ours from e
        raise ClusterError(f"the Ray job failed: {_root_line(str(e))} (--debug shows Ray's traceback)") from e


def _our_error(e: BaseException | None) -> VivitError | None:
    """The VivitError a worker raised, found inside Ray's wrappers, with the lines Ray added to it cut off."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        # Ray's RayTaskError(VivitError) is a VivitError too, with a traceback for a message: skip to its cause.
        if isinstance(e, VivitError) and type(e).__module__.startswith("vivit_cli"):
            return type(e)(str(e).splitlines()[0] if str(e) else "")
        e = getattr(e, "cause", None) or e.__cause__ or e.__context__
    return None


def _root_line(message: str) -> str:
    """The line of Ray's long message that names the error at the bottom of it ('ImportError: ...')."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception)\b.*: ", line)]
    return one_line((named or lines or ["(no message)"])[-1])[:MAX_MESSAGE_CHARS]

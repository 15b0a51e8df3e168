"""Run a study grid: every run is prune -> features on the initialization -> train -> accuracy,
stored in the SQLite results file as soon as it finishes (see ``store``). A dynamic sparse
training run starts from its method's random initial mask, records its topology at every mask
update (``RunRecord.trajectory``), and its features describe the mask it finished training with
on the initial weights (the weights do not come from training: features describe topology).

Backends: ``local`` runs sequentially (``workers=1``) or in a pool of ``workers`` processes;
``ray`` submits every run as a Ray task (``max_retries=2`` on worker failure) to a cluster
(``ray_address``) or to a local Ray instance with ``workers`` CPUs. In every case only this
(driver) process writes the results file, one transaction per finished run, so a crash loses
only the runs in flight, and running the same study again skips the complete runs.

Threads: a pool or Ray worker runs with ``cpu_count // workers`` (Ray: 1) torch and BLAS
threads, since oversubscribed cores slow small CPU kernels down several times. On a Ray
cluster every node needs sparsetopo installed and, for file-based datasets, the data at the
configured ``data_dir``; tasks take one CPU each.

GPUs (``gpus_per_run``, fractional packs several runs on one GPU; default 1 when the machine or
cluster has a GPU, else 0): a Ray task asks for ``num_gpus=gpus_per_run`` (Ray then sets its
``CUDA_VISIBLE_DEVICES``), and a Ray instance started here declares the GPUs torch sees. The
local backend runs at most :func:`gpu_slots` runs at once and gives pool worker ``k`` the
``k``-th GPU round-robin through ``CUDA_VISIBLE_DEVICES`` (set by the pool initializer, before
torch touches CUDA); with ``gpus_per_run=0`` the workers see no GPU. A request that cannot be
scheduled (GPUs asked, none visible or none in the cluster) is a :class:`ResourceError` before
any run starts, never a wait. A run trains on ``cuda`` when it asked for a GPU and torch sees one
in its process (else on CPU, recorded as such): data on the device, crop + flip there, pruning
always on CPU so that the masks are the same whatever the device. A run trains on one GPU: a
whole ``gpus_per_run`` above 1 only reserves the others. Ray gives every GPU task a fresh worker
process (its default ``max_calls=1`` for GPU tasks), so a run never inherits a CUDA context
made for another run's GPU. Every record keeps its device, GPU ids, peak accelerator memory and
images/s in ``RunRecord.resources``.
"""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context

import torch
from tqdm.auto import tqdm

from sparsetopo import data, models
from sparsetopo.errors import ConfigError, InputError, ResourceError, StudyError, UsageError
from sparsetopo.io import show_progress
from sparsetopo.study.config import RunSpec, StudyConfig, expand_runs
from sparsetopo.study.store import ResultsStore, RunRecord
from sparsetopo.study.vocabulary import DENSE

BACKENDS = ("local", "ray")
SUBSET_SEED = 0  # the same training/test subset for every run of a study
RAY_MAX_RETRIES = 2
VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


@dataclass
class StudySummary:
    """Counts of a :func:`run_study` call.

    Parameters
    ----------
    results_path : str
        The results file.
    total : int
        Runs of the grid (or of the runs given).
    skipped : int
        Runs already complete in the results file.
    ok : int
        Runs that finished in this call.
    failed : int
        Runs that failed in this call.
    failures : list of str
        ``"<label>: <first line of the error>"`` of each failure.
    gpus_per_run : float
        The resolved GPU request of every run.
    placement : str
        Where the runs went (workers, GPUs).
    cpu_fallbacks : int
        Runs that asked for a GPU but saw none and trained on CPU.
    """

    results_path: str
    total: int
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    gpus_per_run: float = 0.0
    placement: str = ""
    cpu_fallbacks: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------- GPUs


def check_gpus_per_run(gpus_per_run: float | None) -> float | None:
    """``gpus_per_run`` as a float (None: decide from the GPUs there are); it must be 0, a
    fraction in (0, 1] or a whole number (what Ray can schedule)."""
    if gpus_per_run is None:
        return None
    bad = isinstance(gpus_per_run, bool) or not isinstance(gpus_per_run, int | float)
    if bad or not math.isfinite(gpus_per_run) or gpus_per_run < 0 or (
            gpus_per_run > 1 and not float(gpus_per_run).is_integer()):
        raise UsageError(f"--gpus-per-run must be 0, a fraction in (0, 1] (e.g. 0.25: four "
                         f"runs per GPU) or a whole number of GPUs, got {gpus_per_run!r}")
    return float(gpus_per_run)


def gpu_slots(n_gpus: int, gpus_per_run: float) -> int:
    """How many runs of ``gpus_per_run`` GPUs each fit at once on ``n_gpus`` GPUs of one
    machine: ``n_gpus * floor(1 / g)`` for a fraction ``g`` (a run never spans two GPUs),
    ``n_gpus // g`` for whole ``g``."""
    if gpus_per_run <= 0:
        raise ValueError("gpu_slots needs gpus_per_run > 0")
    if gpus_per_run <= 1:
        return int(n_gpus) * math.floor(1 / gpus_per_run + 1e-9)
    return int(n_gpus) // math.ceil(gpus_per_run)


def visible_gpu_ids(n_gpus: int) -> list[str]:
    """The ids that name this process's ``n_gpus`` GPUs in ``CUDA_VISIBLE_DEVICES`` (its own
    value when set, so that a worker's id means the same GPU as it does here)."""
    listed = [d.strip() for d in os.environ.get(VISIBLE_DEVICES, "").split(",") if d.strip()]
    if VISIBLE_DEVICES in os.environ and len(listed) >= n_gpus:
        return listed[:n_gpus]
    return [str(i) for i in range(n_gpus)]


def worker_devices(gpu_ids: list[str], gpus_per_run: float, workers: int) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` of each local pool worker: none (``""``) when
    ``gpus_per_run`` is 0; else ``min(workers, gpu_slots)`` workers, worker ``k`` on GPU
    ``gpu_ids[k % len(gpu_ids)]`` (round-robin, so packed runs spread evenly), or on its own
    block of ``gpus_per_run`` GPUs when that is a whole number above 1."""
    if gpus_per_run <= 0:
        return [""] * workers
    count = min(workers, gpu_slots(len(gpu_ids), gpus_per_run))
    if gpus_per_run <= 1:
        return [gpu_ids[k % len(gpu_ids)] for k in range(count)]
    per = math.ceil(gpus_per_run)
    return [",".join(gpu_ids[k * per:(k + 1) * per]) for k in range(count)]


@dataclass(frozen=True)
class _GpuCapacity:
    """GPUs where the runs go: in all and on the largest machine, and how that was seen."""

    total: float
    largest: float
    where: str


def _torch_capacity() -> _GpuCapacity:
    n = torch.cuda.device_count()
    shown = os.environ.get(VISIBLE_DEVICES)
    env = f", {VISIBLE_DEVICES}={shown!r}" if shown is not None else ""
    return _GpuCapacity(n, n, f"torch sees {n} (torch.cuda.device_count() == {n}{env})")


def _ray_capacity(ray) -> _GpuCapacity:
    total = float(ray.cluster_resources().get("GPU", 0))
    largest = max((float(n.get("Resources", {}).get("GPU", 0)) for n in ray.nodes()
                   if n.get("Alive", True)), default=0.0)
    return _GpuCapacity(total, largest, f"the Ray cluster has {total:g} (ray.cluster_resources()"
                                        f"['GPU'] == {total:g})")


def _resolve_gpus(gpus_per_run: float | None, capacity: _GpuCapacity) -> float:
    """The default (1 with GPUs, else 0) or the request, refused when it cannot be scheduled."""
    if gpus_per_run is None:
        return 1.0 if capacity.total >= 1 else 0.0
    if gpus_per_run == 0:
        return 0.0
    if capacity.total <= 0:
        where = capacity.where.replace(" sees 0 ", " sees none ").replace(" has 0 ", " has none ")
        raise ResourceError(f"--gpus-per-run {gpus_per_run:g} asks for GPUs but {where}; use "
                            "--gpus-per-run 0 to train on CPU")
    if gpus_per_run > capacity.largest:
        raise ResourceError(f"--gpus-per-run {gpus_per_run:g} asks for {gpus_per_run:g} GPUs "
                            f"per run but no machine has that many ({capacity.where}, at most "
                            f"{capacity.largest:g} on one machine); ask for fewer")
    return gpus_per_run


def training_device(gpus_per_run: float | None) -> torch.device:
    """Where a run trains: ``cuda`` (the first GPU this process sees) when it asked for a GPU
    (None: whenever there is one) and torch sees one, else ``cpu``."""
    if (gpus_per_run is None or gpus_per_run > 0) and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _image_shape(info) -> tuple[int, int, int]:
    return tuple(int(d) for d in info.input_shape)


def _data_options(spec: RunSpec) -> dict:
    return {"data_dir": spec.data.data_dir, "quiet": True, "image_size": spec.data.image_size}


def dataset_info(spec: RunSpec):
    """``data.dataset_info`` of the run's dataset, with the configured image size."""
    return data.dataset_info(spec.dataset, image_size=spec.data.image_size)


def _build_model(spec: RunSpec, info):
    return models.build(spec.model, num_classes=int(info.num_classes),
                        in_channels=int(info.in_channels), seed=spec.seed,
                        image_size=_image_shape(info)[1])


def _loaders(spec: RunSpec, device: torch.device | None = None):
    """(prune, train, test) loaders over fixed subsets (``data.train_subset``/``test_subset``).
    The pruning loader is the training subset without augmentation, in an order seeded by the
    run seed, on the CPU; the training loader is augmented when ``training.augment``; the
    training and test loaders hold their data on ``device`` (same batches as on CPU)."""
    options = _data_options(spec)
    n_train = len(data.get_dataset(spec.dataset, "train", **options))
    n_test = len(data.get_dataset(spec.dataset, "test", **options))
    train_idx = data.subset_indices(n_train, spec.data.train_subset, SUBSET_SEED)
    test_idx = data.subset_indices(n_test, spec.data.test_subset, SUBSET_SEED)
    batch = spec.training.batch_size

    def loader(split, indices, batch_size, shuffle, augment, seed, on=None):
        return data.make_loader(spec.dataset, split, batch_size, shuffle=shuffle,
                                augment=augment, seed=seed, indices=indices, device=on,
                                **options)

    return (
        loader("train", train_idx, batch, True, False, spec.seed),
        loader("train", train_idx, batch, True, spec.training.augment, spec.seed, device),
        loader("test", test_idx, max(batch, 256), False, False, 0, device),
    )


def pruned_network(spec: RunSpec, progress: bool = False) -> tuple[torch.nn.Module, tuple]:
    """``(model, input shape)`` of a run before training: ``models.create`` (seeded by the
    run seed) for the run's dataset and image size, pruned at initialization with the run's
    method, sparsity, seed and pruning data (the training subset, without augmentation, in an
    order seeded by the run seed); no pruning for ``dense``; a dynamic sparse training method's
    initial random mask (``training.sparse_init``). ``sparsetopo predict`` rebuilds a study's
    networks with it."""
    from sparsetopo import pruning, training

    info = dataset_info(spec)
    model = _build_model(spec, info)
    if training.is_dst(spec.method):
        training.sparse_init(model, spec.method, spec.sparsity, seed=spec.seed, config=spec.dst)
    elif spec.method != DENSE:
        prune_loader = _loaders(spec)[0]
        pruning.prune(model, spec.method, spec.sparsity, data=prune_loader, seed=spec.seed,
                      progress=progress)
    return model, _image_shape(info)


def execute_run(spec: RunSpec, progress: bool = False, gpus_per_run: float | None = None
                ) -> RunRecord:
    """Run one grid point: prune, compute its features, train, measure its accuracy.

    Steps: :func:`pruned_network` -> features on the pruned initialization (none for dense
    baselines; ``study.features.network_features``) -> ``training.train`` on
    :func:`training_device` -> test accuracy. A dynamic sparse training run trains with its
    method (``training.DynamicSparsity``, topology recorded at every update: the record's
    ``trajectory``), then its features are computed on its initial weights (the run's model
    rebuilt from its seed) under the mask it finished with: features describe topology, not
    training.

    Parameters
    ----------
    spec : RunSpec
        The run.
    progress : bool
        Show progress bars.
    gpus_per_run : float, optional
        GPUs the run asked for; ``None``: a GPU when there is one (:func:`run_study` always
        passes the resolved request).

    Returns
    -------
    RunRecord
        ``status="ok"`` with the accuracy, features, timings and ``resources`` (where it
        trained and how fast); ``status="failed"`` with the error and its traceback if anything
        raised (this function itself never raises an ``Exception``).
    """
    from sparsetopo.pruning.masks import apply_masks, get_masks
    from sparsetopo.study.features import timed_network_features
    from sparsetopo.training import DynamicSparsity, is_dst, train

    started, t0 = _now(), time.perf_counter()
    timings: dict[str, float] = {}
    features: dict[str, float] = {}
    device = training_device(gpus_per_run)
    resources: dict = {"device": str(device), "gpus_per_run": gpus_per_run,
                       "cuda_visible_devices": os.environ.get(VISIBLE_DEVICES),
                       "torch_threads": torch.get_num_threads()}
    dynamic = is_dst(spec.method)

    def features_of(model: torch.nn.Module, input_shape: tuple) -> None:
        found, feature_times = timed_network_features(
            model, input_shape, seed=spec.seed, identity_skips=spec.metrics.identity_skips,
            progress=progress)
        features.update(found)
        timings["features"] = sum(feature_times.values())
        timings.update({f"features.{k}": v for k, v in feature_times.items()})

    try:
        model, input_shape = pruned_network(spec, progress)
        timings["prune"] = time.perf_counter() - t0
        if spec.method != DENSE and not dynamic:
            features_of(model, input_shape)
        _, train_loader, test_loader = _loaders(spec, device)
        sparse = DynamicSparsity(spec.method, spec.dst, input_shape) if dynamic else None
        result = train(model, train_loader, test_loader, spec.training, device=device,
                       seed=spec.seed, progress=progress, dst=sparse)
        timings["train"] = result.seconds
        if dynamic:
            timings["mask_update"] = result.mask_update_seconds
            timings["trajectory"] = result.record_seconds
            initial = _build_model(spec, dataset_info(spec))
            apply_masks(initial, {k: m.cpu() for k, m in get_masks(model).items()})
            features_of(initial, input_shape)
        timings["total"] = time.perf_counter() - t0
        resources.update(device=result.device, device_name=result.device_name,
                         peak_accelerator_memory_mb=result.peak_memory_mb,
                         images_per_second=result.images_per_second,
                         train_images=result.images, train_loop_seconds=result.train_seconds)
        return RunRecord(spec.run_id, spec.to_dict(), "ok", None, result.test_accuracy, features,
                         timings, started, _now(), socket.gethostname(), resources,
                         trajectory=result.trajectory)
    except Exception as exc:
        timings["total"] = time.perf_counter() - t0
        message = f"{type(exc).__name__}: {exc}".strip()
        error = f"{message}\n\n{traceback.format_exc()}"
        return RunRecord(spec.run_id, spec.to_dict(), "failed", error, None, {}, timings,
                         started, _now(), socket.gethostname(), resources)


def limit_threads(threads: int) -> None:
    """At most ``threads`` threads for torch and for every BLAS/OpenMP pool of the process:
    parallel workers on a shared machine otherwise oversubscribe the cores, and spinning
    threads then slow everything down several times (measured)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def execute_run_dict(config: dict, threads: int | None = None, gpus_per_run: float = 0.0
                     ) -> RunRecord:
    """:func:`execute_run` from a plain configuration dict (what worker processes receive),
    with :func:`limit_threads` first when ``threads`` is given."""
    if threads:
        limit_threads(threads)
    return execute_run(RunSpec.from_dict(config), progress=False, gpus_per_run=gpus_per_run)


def _ray_task(config: dict, threads: int, gpus_per_run: float) -> RunRecord:
    """A Ray task: :func:`execute_run_dict`, plus the GPU ids Ray assigned to it."""
    import ray

    record = execute_run_dict(config, threads, gpus_per_run)
    record.resources["gpu_ids"] = [str(i) for i in ray.get_gpu_ids()]
    return record


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def init_worker(threads: int, devices) -> None:
    """Pool initializer: this worker's ``CUDA_VISIBLE_DEVICES`` (the next one from the
    ``devices`` queue; before anything initialises CUDA, which reads it once) and
    :func:`limit_threads`."""
    os.environ[VISIBLE_DEVICES] = devices.get()
    limit_threads(threads)


def worker_pool(devices: list[str]) -> ProcessPoolExecutor:
    """A spawn process pool of ``len(devices)`` workers, worker ``k`` started with
    ``CUDA_VISIBLE_DEVICES=devices[k]`` and ``cpu_count // workers`` threads."""
    context = get_context("spawn")
    queue = context.SimpleQueue()
    for device in devices:
        queue.put(device)
    return ProcessPoolExecutor(max_workers=len(devices), mp_context=context,
                               initializer=init_worker,
                               initargs=(_threads_per_worker(len(devices)), queue))


def _run_local_pool(pending: list[RunSpec], devices: list[str], gpus_per_run: float,
                    on_result: Callable[[RunRecord], None]) -> None:
    with worker_pool(devices) as pool:
        futures = [pool.submit(execute_run_dict, spec.to_dict(), None, gpus_per_run)
                   for spec in pending]
        try:
            for future in as_completed(futures):
                on_result(future.result())
        except BrokenProcessPool:
            raise StudyError(
                "a worker process died (out of memory?); the finished runs are stored: run the "
                "same command again to continue, perhaps with fewer --workers") from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install 'sparsetopo[ray]'") from None
    return ray


def _run_ray(pending: list[RunSpec], workers: int, ray_address: str | None,
             gpus_per_run: float | None, on_result: Callable[[RunRecord], None],
             summary: StudySummary) -> None:
    """Run ``pending`` as Ray tasks of one CPU and ``gpus_per_run`` GPUs each, on the Ray
    instance already initialised in this process, the cluster at ``ray_address`` or a local
    instance of ``workers`` CPUs and the GPUs torch sees; ``gpus_per_run`` is resolved against
    the cluster's GPUs before any task is submitted."""
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        if ray_address:
            try:
                ray.init(address=ray_address, log_to_driver=False)
            except ConnectionError as exc:
                raise ResourceError(f"cannot reach the Ray cluster at {ray_address!r}: "
                                    f"{exc}") from None
        else:
            ray.init(num_cpus=workers, num_gpus=torch.cuda.device_count(),
                     include_dashboard=False, log_to_driver=False)
        started_here = True
    try:
        gpus_per_run = _resolve_gpus(gpus_per_run, _ray_capacity(ray))
        summary.gpus_per_run = gpus_per_run
        cluster = ray.cluster_resources()
        summary.placement = (f"ray: {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} "
                             f"GPUs; each run 1 CPU and {gpus_per_run:g} GPU")
        task = ray.remote(num_cpus=1, num_gpus=gpus_per_run,
                          max_retries=RAY_MAX_RETRIES)(_ray_task)
        in_flight = {task.remote(spec.to_dict(), 1, gpus_per_run): spec for spec in pending}
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            spec = in_flight.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # worker lost after all retries
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                record = RunRecord(spec.run_id, spec.to_dict(), "failed",
                                   f"{type(exc).__name__}: {first}", finished=_now(),
                                   resources={"gpus_per_run": gpus_per_run})
            on_result(record)
    finally:
        if started_here:
            ray.shutdown()


def _local_placement(devices: list[str], gpus_per_run: float) -> str:
    workers = max(1, len(devices))
    if gpus_per_run <= 0:
        return f"local: {workers} worker{'s' * (workers > 1)} on CPU"
    if len(devices) <= 1:
        shown = os.environ.get(VISIBLE_DEVICES)
        return (f"local: 1 worker on GPU {devices[0] if devices else '0'} ({gpus_per_run:g} GPU "
                f"per run" + (f", {VISIBLE_DEVICES}={shown}" if shown is not None else "") + ")")
    return (f"local: {workers} workers, {gpus_per_run:g} GPU per run, "
            f"{VISIBLE_DEVICES} per worker: {' '.join(devices)}")


def _preflight(runs: list[RunSpec], check_data: bool) -> None:
    """Fail before running anything when a dataset cannot be loaded (e.g. missing data_dir) or
    a model cannot be built for a dataset (e.g. conv6 on an image size not divisible by 8)."""
    seen = set()
    for spec in runs:
        key = (spec.model, spec.dataset, spec.data)
        if key in seen:
            continue
        seen.add(key)
        if check_data:
            data.get_dataset(spec.dataset, "train", **_data_options(spec))
        info = dataset_info(spec)
        try:
            _build_model(spec, info)
        except InputError as exc:
            raise ConfigError(f"cannot build {spec.model} for {spec.dataset} images of shape "
                             f"{tuple(info.input_shape)}: {exc}") from None


def run_study(
    config: StudyConfig,
    results_path: str | os.PathLike,
    backend: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    runs: Iterable[RunSpec] | None = None,
    gpus_per_run: float | None = None,
) -> StudySummary:
    """Run every run of a study not yet complete in its results file.

    Each run (:func:`execute_run`) prunes a network at initialization (or, for a dynamic sparse
    training method, draws its random initial mask), computes the topological features of its
    mask on the initial weights, trains it with the paper's settings and stores its test
    accuracy; the results file gets one transaction per finished run, so an interrupted study
    resumes where it stopped (the protocol: ``docs/study.md``).

    Parameters
    ----------
    config : StudyConfig
        The study.
    results_path : str or path-like
        The SQLite results file (created when absent).
    backend : {"local", "ray"}
        ``local``: in this process or a pool of ``workers`` processes; ``ray``: Ray tasks.
    workers : int
        Processes of the local pool, or CPUs of a local Ray instance.
    ray_address : str, optional
        Address of a Ray cluster (``backend="ray"`` only).
    retry_failed : bool
        Run again the runs stored as failed (by default they are skipped).
    progress : bool
        A progress bar and one line per finished run.
    runs : iterable of RunSpec, optional
        The runs to do instead of the whole grid (:func:`expand_runs`).
    gpus_per_run : float, optional
        GPUs per run: 0, a fraction in (0, 1] (several runs share a GPU) or a whole number;
        ``None``: 1 when there is a GPU, else 0. Checked against the GPUs torch sees (local
        backend, or a Ray instance started here) or the Ray cluster's before any run starts.

    Returns
    -------
    StudySummary
        The counts of this call.

    Raises
    ------
    UsageError
        An unknown backend, a bad number of workers, ``ray_address`` without Ray's backend,
        or the Ray backend without Ray installed.
    ResourceError
        GPUs asked for where there are none, or an unreachable Ray cluster.
    ConfigError
        A model that cannot be built for its dataset's images (checked before any run).
    DataError
        A dataset that cannot be read (checked before any run).
    StoreError
        A results file that is not one of sparsetopo's.
    StudyError
        A worker process that died.

    References
    ----------
    Cunegatti, E., Farina, L. L., Bucur, D., Iacca, G. (2024). Understanding Sparse Neural
    Networks from their Topology via Multipartite Graph Representations. *Transactions on
    Machine Learning Research*.
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; supported: {', '.join(BACKENDS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers must be a positive integer, got {workers!r}")
    if ray_address and backend != "ray":
        raise UsageError("--ray-address needs --backend ray")
    gpus_per_run = check_gpus_per_run(gpus_per_run)
    devices: list[str] = []
    if backend == "local":
        gpus_per_run = _resolve_gpus(gpus_per_run, _torch_capacity())
        if workers > 1 or gpus_per_run > 0:
            ids = visible_gpu_ids(torch.cuda.device_count()) if gpus_per_run > 0 else []
            devices = worker_devices(ids, gpus_per_run, workers)
    else:
        ray = _import_ray()  # before anything is written: without Ray, one line naming the extra
    if backend == "ray" and not ray_address:  # a Ray instance of this process: GPUs known now
        capacity = _ray_capacity(ray) if ray.is_initialized() else _torch_capacity()
        gpus_per_run = _resolve_gpus(gpus_per_run, capacity)
    runs = list(runs) if runs is not None else expand_runs(config)
    with ResultsStore(results_path) as store:
        done = store.statuses()
        skip = {"ok", "failed"} - ({"failed"} if retry_failed else set())
        pending = [r for r in runs if done.get(r.run_id) not in skip]
        summary = StudySummary(os.fspath(results_path), len(runs), skipped=len(runs) - len(pending),
                               gpus_per_run=gpus_per_run or 0.0)
        if backend == "local":
            summary.placement = _local_placement(devices, gpus_per_run)
        if not pending:
            return summary
        _preflight(pending, check_data=not (backend == "ray" and ray_address))
        bar = tqdm(total=len(pending), desc=f"study {config.name}", unit="run",
                   disable=not show_progress(progress))
        labels = {r.run_id: r.label for r in pending}

        def on_result(record: RunRecord) -> None:
            store.write(record)
            label = labels.get(record.run_id, record.run_id[:12])
            asked = record.resources.get("gpus_per_run") or 0
            if asked > 0 and record.resources.get("device") == "cpu":
                summary.cpu_fallbacks += 1
            if record.status == "ok":
                summary.ok += 1
                line = f"ok     {label}  accuracy={record.accuracy:.4f}"
            else:
                summary.failed += 1
                first = (record.error or "").splitlines()[0] if record.error else ""
                summary.failures.append(f"{label}: {first}")
                line = f"FAILED {label}  {first}"
            if progress:
                bar.write(f"{line}  ({record.timings.get('total', float('nan')):.1f}s)")
            bar.update(1)

        try:
            if backend == "ray":
                _run_ray(pending, workers, ray_address, gpus_per_run, on_result, summary)
            elif len(devices) <= 1:  # in this process (with its own CUDA_VISIBLE_DEVICES)
                for spec in pending:
                    bar.set_postfix_str(spec.label)
                    on_result(execute_run(spec, progress=progress, gpus_per_run=gpus_per_run))
            else:
                _run_local_pool(pending, devices, gpus_per_run, on_result)
        finally:
            bar.close()
    return summary

"""Run a study grid: every run is prune -> features on the initialization -> train -> accuracy,
stored in the SQLite results file as soon as it finishes (see ``store``).

Backends: ``local`` runs sequentially (``workers=1``) or in a pool of ``workers`` processes;
``ray`` submits every run as a Ray task (``max_retries=2`` on worker failure) to a cluster
(``ray_address``) or to a local Ray instance with ``workers`` CPUs. In every case only this
(driver) process writes the results file, one transaction per finished run, so a crash loses
only the runs in flight, and running the same study again skips the complete runs.

Threads: a pool or Ray worker runs with ``cpu_count // workers`` (Ray: 1) torch and BLAS
threads, since oversubscribed cores slow small CPU kernels down several times. On a Ray
cluster every node needs sparsetopo installed and, for file-based datasets, the data at the
configured ``data_dir``; tasks run on CPU (one CPU each).
"""

from __future__ import annotations

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
from sparsetopo.errors import StudyError
from sparsetopo.io import show_progress
from sparsetopo.study.config import RunSpec, StudyConfig, expand_runs
from sparsetopo.study.store import ResultsStore, RunRecord
from sparsetopo.study.vocabulary import DENSE

BACKENDS = ("local", "ray")
SUBSET_SEED = 0  # the same training/test subset for every run of a study
RAY_MAX_RETRIES = 2




@dataclass
class StudySummary:
    """Counts of a :func:`run_study` call."""

    results_path: str
    total: int
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _image_shape(info) -> tuple[int, int, int]:
    return tuple(int(d) for d in info.input_shape)


def _data_options(spec: RunSpec) -> dict:
    return {"data_dir": spec.data.data_dir, "quiet": True, "image_size": spec.data.image_size}


def dataset_info(spec: RunSpec):
    """``data.dataset_info`` of the run's dataset, with the configured image size."""
    return data.dataset_info(spec.dataset, image_size=spec.data.image_size)


def _build_model(spec: RunSpec, info):
    return models.create(spec.model, num_classes=int(info.num_classes),
                         in_channels=int(info.in_channels), seed=spec.seed,
                         image_size=_image_shape(info)[1])


def _loaders(spec: RunSpec):
    """(prune, train, test) loaders over fixed subsets (``data.train_subset``/``test_subset``).
    The pruning loader is the training subset without augmentation, in an order seeded by the
    run seed; the training loader is augmented when ``training.augment``."""
    options = _data_options(spec)
    n_train = len(data.get_dataset(spec.dataset, "train", **options))
    n_test = len(data.get_dataset(spec.dataset, "test", **options))
    train_idx = data.subset_indices(n_train, spec.data.train_subset, SUBSET_SEED)
    test_idx = data.subset_indices(n_test, spec.data.test_subset, SUBSET_SEED)
    batch = spec.training.batch_size

    def loader(split, indices, batch_size, shuffle, augment, seed):
        return data.make_loader(spec.dataset, split, batch_size, shuffle=shuffle,
                                augment=augment, seed=seed, indices=indices, **options)

    return (
        loader("train", train_idx, batch, True, False, spec.seed),
        loader("train", train_idx, batch, True, spec.training.augment, spec.seed),
        loader("test", test_idx, max(batch, 256), False, False, 0),
    )


def pruned_network(spec: RunSpec, progress: bool = False) -> tuple[torch.nn.Module, tuple]:
    """``(model, input shape)`` of a run before training: ``models.create`` (seeded by the
    run seed) for the run's dataset and image size, pruned at initialization with the run's
    method, sparsity, seed and pruning data (the training subset, without augmentation, in an
    order seeded by the run seed); no pruning for ``dense``. ``sparsetopo predict`` rebuilds
    a study's networks with it."""
    from sparsetopo import pruning

    torch.manual_seed(spec.seed)
    info = dataset_info(spec)
    model = _build_model(spec, info)
    if spec.method != DENSE:
        prune_loader = _loaders(spec)[0]
        pruning.prune(model, spec.method, spec.sparsity, data=prune_loader, seed=spec.seed,
                      progress=progress)
    return model, _image_shape(info)


def execute_run(spec: RunSpec, progress: bool = False) -> RunRecord:
    """Run one grid point and return its record (``status="failed"`` with the error and its
    traceback if anything raises; this function itself never raises an ``Exception``).

    Steps: :func:`pruned_network` -> features on the pruned initialization (none for dense
    baselines) -> ``training.train`` -> test accuracy.
    """
    from sparsetopo.study.features import timed_network_features
    from sparsetopo.training import train

    started, t0 = _now(), time.perf_counter()
    timings: dict[str, float] = {}
    features: dict[str, float] = {}
    try:
        model, input_shape = pruned_network(spec, progress)
        timings["prune"] = time.perf_counter() - t0
        if spec.method != DENSE:
            features, feature_times = timed_network_features(
                model, input_shape, seed=spec.seed,
                identity_skips=spec.metrics.identity_skips, progress=progress)
            timings["features"] = sum(feature_times.values())
            timings.update({f"features.{k}": v for k, v in feature_times.items()})
        _, train_loader, test_loader = _loaders(spec)
        result = train(model, train_loader, test_loader, spec.training, seed=spec.seed,
                       progress=progress)
        timings["train"] = result.seconds
        timings["total"] = time.perf_counter() - t0
        return RunRecord(spec.run_id, spec.to_dict(), "ok", None, result.test_accuracy, features,
                         timings, started, _now(), socket.gethostname())
    except Exception as exc:
        timings["total"] = time.perf_counter() - t0
        message = f"{type(exc).__name__}: {exc}".strip()
        error = f"{message}\n\n{traceback.format_exc()}"
        return RunRecord(spec.run_id, spec.to_dict(), "failed", error, None, {}, timings,
                         started, _now(), socket.gethostname())


def limit_threads(threads: int) -> None:
    """At most ``threads`` threads for torch and for every BLAS/OpenMP pool of the process:
    parallel workers on a shared machine otherwise oversubscribe the cores, and spinning
    threads then slow everything down several times (measured)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def execute_run_dict(config: dict, threads: int | None = None) -> RunRecord:
    """:func:`execute_run` from a plain configuration dict (what worker processes receive),
    with :func:`limit_threads` first when ``threads`` is given."""
    if threads:
        limit_threads(threads)
    return execute_run(RunSpec.from_dict(config), progress=False)


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _run_local_pool(pending: list[RunSpec], workers: int, on_result: Callable[[RunRecord], None]
                    ) -> None:
    threads = _threads_per_worker(workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=limit_threads, initargs=(threads,)) as pool:
        futures = [pool.submit(execute_run_dict, spec.to_dict()) for spec in pending]
        try:
            for future in as_completed(futures):
                on_result(future.result())
        except BrokenProcessPool:
            raise StudyError(
                "a worker process died (out of memory?); the finished runs are stored: run the "
                "same command again to continue, perhaps with fewer --workers") from None


def _run_ray(pending: list[RunSpec], workers: int, ray_address: str | None,
             on_result: Callable[[RunRecord], None]) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("the ray backend needs the 'ray' package (pip install ray)") from None
    started_here = False
    if not ray.is_initialized():
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started_here = True
    try:
        task = ray.remote(num_cpus=1, max_retries=RAY_MAX_RETRIES)(execute_run_dict)
        in_flight = {task.remote(spec.to_dict(), 1): spec for spec in pending}
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            spec = in_flight.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # worker lost after all retries
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                record = RunRecord(spec.run_id, spec.to_dict(), "failed",
                                   f"{type(exc).__name__}: {first}", finished=_now())
            on_result(record)
    finally:
        if started_here:
            ray.shutdown()


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
        except ValueError as exc:
            raise ValueError(f"cannot build {spec.model} for {spec.dataset} images of shape "
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
) -> StudySummary:
    """Run every run of ``config`` (or the given ``runs``) not yet complete in
    ``results_path``; failed runs are re-run only with ``retry_failed``. Returns the counts."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; supported: {', '.join(BACKENDS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if ray_address and backend != "ray":
        raise ValueError("--ray-address needs --backend ray")
    runs = list(runs) if runs is not None else expand_runs(config)
    with ResultsStore(results_path) as store:
        done = store.statuses()
        skip = {"ok", "failed"} - ({"failed"} if retry_failed else set())
        pending = [r for r in runs if done.get(r.run_id) not in skip]
        summary = StudySummary(os.fspath(results_path), len(runs), skipped=len(runs) - len(pending))
        if not pending:
            return summary
        _preflight(pending, check_data=not (backend == "ray" and ray_address))
        bar = tqdm(total=len(pending), desc=f"study {config.name}", unit="run",
                   disable=not show_progress(progress))
        labels = {r.run_id: r.label for r in pending}

        def on_result(record: RunRecord) -> None:
            store.write(record)
            label = labels.get(record.run_id, record.run_id[:12])
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
                _run_ray(pending, workers, ray_address, on_result)
            elif workers == 1:
                for spec in pending:
                    bar.set_postfix_str(spec.label)
                    on_result(execute_run(spec, progress=progress))
            else:
                _run_local_pool(pending, workers, on_result)
        finally:
            bar.close()
    return summary

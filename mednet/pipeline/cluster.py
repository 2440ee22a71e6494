"""A cohort across the CPUs and GPUs of a Ray cluster (``mednet predict --ray [ADDRESS]``).

The cohort is cut into as many shards as there are workers (every N-th case from the
K-th, :func:`mednet.pipeline.summary.shard_cases`: interleaved, so that a cohort sorted by
size spreads evenly), and each shard runs as one Ray task: :func:`predict_cohort` with
``shard=(K, N)``, its predictors built once for its cases, its device the GPU Ray gives
it (or the CPUs), reading ahead and writing behind as one process does. Every task writes
its case folders into the one ``OUT`` (on a cluster: a file system every node mounts at
the same path, as the inputs must be); the summary, report and metrics are then written
from the case folders (:func:`report_cohort`), exactly those of a single run. A case that
fails is recorded and the others go on; a shard whose worker dies leaves its cases not
done, and the same command again does only those.

Ray is an optional extra (``pip install "mednet[ray]"``); without ``address`` a local Ray
instance is started on this machine for the run and stopped after it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mednet.pipeline.cohort import _output_folder, load_cases, predict_cohort
from mednet.pipeline.diseases import disease_spec
from mednet.pipeline.summary import report_cohort, shard_cases

__all__ = ["predict_ray"]

#: Settings of the driver's environment every worker gets too (the thread policy ``mednet`` sets, see
#: :mod:`mednet.cli.main`, or the user's own), so that remote workers run as the local process does.
_WORKER_ENV_KEYS = ("OMP_WAIT_POLICY",)


def _import_ray():
    try:
        import ray
    except ImportError as error:
        raise ValueError('--ray needs Ray, an optional extra: pip install "mednet[ray]"') from error
    return ray


def _workers(ray, cases: int, workers: int | None, cpus: float, gpus: float) -> int:
    """How many shards: ``workers``, else as many as the cluster's GPUs (or CPUs) hold; never more than cases."""
    if workers is not None:
        if workers < 1:
            raise ValueError(f"--workers: expected at least 1, found {workers}")
        return max(1, min(workers, cases))
    resources = ray.cluster_resources()
    if gpus > 0:
        fit = int(resources.get("GPU", 0) // gpus)
        if fit < 1:
            raise ValueError(f"the Ray cluster has {resources.get('GPU', 0):g} GPU(s): none for a worker asking for "
                             f"{gpus:g}; use --device cpu")  # fmt: skip
    else:
        fit = int(resources.get("CPU", 1) // cpus)
    return max(1, min(fit, cases))


def predict_ray(
    source: os.PathLike | str,
    disease: str,
    out: os.PathLike | str,
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1,
    device: str = "auto",
    bundles: os.PathLike | str | None = None,
    partition: str = "testing",
    progress=None,
    ray_init: Mapping | None = None,
    **options,
) -> dict:
    """Run :func:`predict_cohort` on every case, the shards as Ray tasks; write the summary, report and metrics.

    Args:
        source: a folder, a datalist JSON or one image file, at a path every worker can read.
        disease: ``glioma``, ``cpa`` or ``neuroblastoma``.
        out: the output folder, at a path every worker can write.
        address: a Ray cluster's address (``auto``: the one this machine belongs to; ``ray://``
            for a Ray client); None starts a local Ray instance for the run.
        workers: how many shards run at once (default: as many as the cluster's GPUs hold,
            or with ``device="cpu"`` or no GPU its CPUs, ``cpus_per_worker`` each).
        cpus_per_worker: CPUs (and torch threads) per worker.
        device: ``auto`` (one GPU per worker when the cluster has GPUs, else CPUs), ``cpu``
            or ``cuda``.
        bundles: folder of the bundles (default: mednet's own), at a path every worker can read.
        partition: for a datalist: the partition to predict.
        progress: called with each line of the driver (the workers' lines reach the driver's
            console through Ray's log forwarding).
        ray_init: more arguments for ``ray.init`` (e.g. ``num_cpus`` of a local instance).
        **options: more :func:`predict_cohort` arguments (``models``, ``settings``,
            ``clinicians``, ``overwrite``, ``verbosity``).

    Returns:
        As :func:`predict_cohort` (counts over every shard, ``case_status`` in the cohort's
        order), with ``workers``.

    Raises:
        ValueError: Ray not installed, no GPU for a worker asked to use one, and every refusal
            of :func:`predict_cohort`, all before any work.
    """
    say = progress or (lambda line: print(line, flush=True))
    ray = _import_ray()
    spec = disease_spec(disease, bundles)
    source = Path(source).resolve()
    cohort = load_cases(source, partition, spec.sequences, spec.name)  # refused here, before any worker starts
    out = _output_folder(out)
    bundles = str(Path(bundles).resolve()) if bundles else None
    started = not ray.is_initialized()
    if started:
        env = {k: os.environ[k] for k in _WORKER_ENV_KEYS if k in os.environ}
        ray.init(address=address, include_dashboard=False, log_to_driver=True, runtime_env={"env_vars": env},
                 **dict(ray_init or {}))  # fmt: skip
    try:
        gpus = 0.0 if device == "cpu" else 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        if device.startswith("cuda") and not gpus:
            raise ValueError(f"device {device!r} asked for, but the Ray cluster has no GPU; use --device cpu or auto")
        n = _workers(ray, len(cohort), workers, cpus_per_worker, gpus)
        say(f"{spec.name}: {len(cohort)} cases in {n} shard(s) on Ray "
            f"({cpus_per_worker:g} CPU{'s' if cpus_per_worker != 1 else ''}"
            f"{' and 1 GPU' if gpus else ''} each)")  # fmt: skip
        task = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus, max_retries=0)(_shard)
        pending = [task.remote(str(source), disease, str(out), (k, n), "cuda" if gpus else "cpu", bundles, partition,
                               int(cpus_per_worker), options)
                   for k in range(1, n + 1)]  # fmt: skip
        results, causes = [], []
        try:
            for ref in pending:
                try:
                    results.append(ray.get(ref))
                except ray.exceptions.RayError as error:  # a shard refused, or its worker died
                    causes.append(getattr(error, "cause", None) or error)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)
            causes.append(KeyboardInterrupt("interrupted"))
    finally:
        if started:
            ray.shutdown()
    refused = [c for c in causes if isinstance(c, (ValueError, FileNotFoundError))]
    if refused and not results:  # every shard refused the run (another disease's OUT, weights missing, ...)
        raise refused[0]
    errors = [f"{type(c).__name__}: {(str(c).strip().splitlines() or [''])[-1]}" for c in causes]
    interrupted = "; ".join(errors) if errors else None
    if interrupted:
        say(f"mednet predict --ray: {len(errors)} of {n} shard(s) did not finish ({interrupted}); "
            "run the same command again to do their cases")  # fmt: skip
    report = report_cohort(out, bundles=bundles, notes=[interrupted or ""], metrics=not interrupted)
    order = {str(c["case_id"]): i for i, c in enumerate(cohort)}
    status = sorted((s for r in results for s in r["case_status"]), key=lambda s: order.get(s["case_id"], 0))
    done = {s["case_id"] for s in status}
    status += [{"case_id": str(c["case_id"]), "status": "not run", "call": None, "error": None, "folder": None}
               for c in cohort if str(c["case_id"]) not in done]  # fmt: skip
    total = {k: sum(r[k] for r in results) for k in ("ok", "failed", "skipped")}
    return {"cases": len(cohort), **total, "pending": report["pending"], "kept": 0, "summary": report["summary"],
            "report": report["report"], "metrics": report["metrics"],
            "log": out / (f"predict.shard-*-of-{n}.log" if n > 1 else "predict.log"), "interrupted": interrupted,
            "device": "cuda" if gpus else "cpu", "partition": partition, "case_status": status, "workers": n,
            "shards": [len(shard_cases(cohort, (k, n))) for k in range(1, n + 1)]}  # fmt: skip


def _shard(source: str, disease: str, out: str, shard: tuple[int, int], device: str, bundles: str | None,
           partition: str, threads: int, options: dict) -> dict:  # fmt: skip
    """One Ray task: shard K/N of the cohort through :func:`predict_cohort` (run in a worker process)."""
    import torch

    torch.set_num_threads(max(1, threads))
    return predict_cohort(source, disease, out, device=device, bundles=bundles, partition=partition, shard=shard,
                          bar=False, **options)  # fmt: skip

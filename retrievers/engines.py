"""Who encodes a corpus's missing shards (``retriever.engine``): this process, a Ray cluster, or a SLURM job array.

The shards and their cache entries are decided once (:mod:`retrievers.shards`); an engine only runs
:func:`encode_one` for each missing shard, wherever it runs, writing the shard's entry into the shared
``cache.dir``. The dense retriever then joins the shards. So every engine gives the same embeddings, an
interrupted run resumes from the shards present, and engines can be mixed (a SLURM array finishes what a
laptop started).

* ``local``: in this process, one shard after another.
* ``ray``: one Ray actor per worker (``engine_workers``; each with ``engine_gpus`` GPUs, or one CPU), fed
  the missing shards two at a time (the passages of the others are not copied into Ray's object store). ``engine_address`` (or ``$RAY_ADDRESS``) reaches an existing
  cluster; without one a local Ray is started, so the same command runs on a laptop. A worker killed
  mid-shard is restarted by Ray and the shard retried (``max_restarts``/``max_task_retries``); only that shard
  is redone.
* ``slurm``: a submitit job array, one job per missing shard (``slurm_array_parallelism`` at a time), its
  log folder under ``<cache.dir>/submitit``; ``slurm_cluster=local`` runs the same array as local processes
  (submitit's local executor), ``debug`` in this process. The run waits for the array, then joins.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from chunkers.types import Chunk
from retrievers.cache import Cache
from retrievers.infrastructure.errors import RetrieverError
from retrievers.infrastructure.progress import Progress
from retrievers import shards as sh

ENGINES = ("local", "ray", "slurm")
SLURM_CLUSTERS = (None, "slurm", "local", "debug")


def encode_one(cache_dir: str, shard: sh.Shard, texts: Sequence[str], ids: Sequence[str], encoder: Any,
               identity: Any, step: int) -> tuple[int, int, float]:
    """Encode one shard and publish its cache entry (what every engine runs, wherever): (index, rows, seconds).
    A shard already present (another worker, an earlier run) is not encoded again."""
    t0 = time.perf_counter()
    cache = Cache(cache_dir, "use")
    if not sh.present(cache, shard):
        with cache.claim(sh.KIND, shard.key):
            if not sh.present(cache, shard):
                sh.write_shard(cache, shard, texts, ids, lambda t: encoder.encode(t, kind="doc"), identity, step=step)
    return shard.index, len(shard), time.perf_counter() - t0


def _inputs(chunks: Sequence[Chunk], shard: sh.Shard) -> tuple[list[str], list[str]]:
    part = chunks[shard.start:shard.stop]
    return [c.indexed_text for c in part], [c.id for c in part]


class LocalEngine:
    """In this process (``engine=local``, the default)."""

    name = "local"

    def run(self, todo: Sequence[sh.Shard], chunks: Sequence[Chunk], *, cache: Cache, encode: Callable, encoder: Any,
            identity: Any, step: int) -> None:
        with Progress(sum(len(s) for s in todo), "dense: encode corpus", "passages") as bar:
            for shard in todo:
                texts, ids = _inputs(chunks, shard)
                sh.write_shard(cache, shard, texts, ids, encode, identity, step=step, on_step=bar.update)


class RayEngine:
    """Ray actors over the missing shards (``engine=ray``)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, gpus: float = 0.0) -> None:
        self.address, self.workers, self.gpus = address or os.environ.get("RAY_ADDRESS") or None, workers, float(gpus or 0)

    def run(self, todo: Sequence[sh.Shard], chunks: Sequence[Chunk], *, cache: Cache, encode: Callable, encoder: Any,
            identity: Any, step: int) -> None:
        try:
            import ray
        except ImportError:
            raise RetrieverError("retriever.engine=ray needs Ray: pip install 'retrieval-bench[cluster]'") from None
        started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"address": self.address, "include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
            if self.address is None and self.workers:  # a local Ray sized for the workers asked for
                kw["num_cpus"] = max(int(self.workers), 1)
            unreachable = _unreachable(self.address)
            if unreachable:  # Ray itself retries a dead address for minutes
                raise RetrieverError(f"retriever.engine_address: cannot reach Ray at {self.address} ({unreachable})")
            try:
                ray.init(**kw)
            except Exception as err:  # noqa: BLE001 - a cluster that cannot be reached: say where
                raise RetrieverError(f"retriever.engine_address: cannot reach Ray at {self.address or 'a new local Ray'}"
                                     f" ({type(err).__name__}: {str(err)[:200]})") from None
            started = True
        try:
            n = int(self.workers or max(1, int(ray.cluster_resources().get("GPU" if self.gpus else "CPU", 1) //
                                                 max(self.gpus, 1))))
            n = max(1, min(n, len(todo)))
            actor = ray.remote(num_cpus=0 if self.gpus else 1, num_gpus=self.gpus, max_restarts=3,
                               max_task_retries=3)(_ShardWorker)
            # the encoder goes to the object store once, and this reference is held until every shard is done:
            # a restarted actor is created again from it (an argument Ray stored and then released could not be
            # read back: ray-project/ray#53727)
            encoder_ref = ray.put(encoder)
            actors = [actor.remote(str(cache.dir), encoder_ref, identity, step) for _ in range(n)]
            # at most two shards queued per actor: the passages of the rest stay where they are (the corpus is
            # not copied into the object store whole)
            pending = iter(todo)
            inflight: dict[Any, Any] = {}

            def feed(worker: Any) -> None:
                shard = next(pending, None)
                if shard is not None:
                    inflight[worker.encode.remote(shard, *_inputs(chunks, shard))] = (worker, shard)

            for worker in actors:
                feed(worker)
                feed(worker)
            label = f"dense: encode corpus on Ray ({len(todo)} shards, {n} workers)"
            with Progress(sum(len(s) for s in todo), label, "passages") as bar:
                while inflight:
                    (ready,), _ = ray.wait(list(inflight), num_returns=1)
                    worker, shard = inflight.pop(ready)
                    ray.get(ready)  # a shard that failed after Ray's retries raises here
                    bar.update(len(shard))
                    feed(worker)
            del encoder_ref
        finally:
            if started:
                ray.shutdown()


class _ShardWorker:
    """A Ray actor: loads the encoder once, encodes the shards it is given."""

    def __init__(self, cache_dir: str, encoder: Any, identity: Any, step: int) -> None:
        self.cache_dir, self.encoder, self.identity, self.step = cache_dir, encoder, identity, step

    def encode(self, shard: sh.Shard, texts: Sequence[str], ids: Sequence[str]) -> tuple[int, int, float]:
        return encode_one(self.cache_dir, shard, texts, ids, self.encoder, self.identity, self.step)


class SlurmEngine:
    """A submitit job array over the missing shards (``engine=slurm``)."""

    name = "slurm"

    def __init__(self, cluster: str | None = None, partition: str | None = None, timeout_min: int = 120,
                 array_parallelism: int = 64, gpus: int = 0, cpus: int = 4) -> None:
        self.cluster, self.partition, self.timeout_min = cluster, partition, int(timeout_min)
        self.array_parallelism, self.gpus, self.cpus = int(array_parallelism), int(gpus or 0), int(cpus)

    def run(self, todo: Sequence[sh.Shard], chunks: Sequence[Chunk], *, cache: Cache, encode: Callable, encoder: Any,
            identity: Any, step: int) -> None:
        try:
            import submitit
        except ImportError:
            raise RetrieverError("retriever.engine=slurm needs submitit: pip install 'retrieval-bench[cluster]'") from None
        folder = Path(cache.dir) / "submitit" / "%j"
        if self.cluster == "slurm" and shutil.which("srun") is None and shutil.which("sbatch") is None:
            raise RetrieverError("retriever.engine=slurm: no SLURM here (neither srun nor sbatch is on the PATH); run on a "
                                 "SLURM login node, or try the job array locally with retriever.slurm_cluster=local")
        executor = submitit.AutoExecutor(folder=str(folder), cluster=self.cluster)
        params: dict[str, Any] = {"timeout_min": self.timeout_min, "cpus_per_task": self.cpus}
        if executor.cluster == "slurm":
            params.update({"slurm_array_parallelism": self.array_parallelism, "gpus_per_node": self.gpus})
            if self.partition:
                params["slurm_partition"] = self.partition
        executor.update_parameters(**params)
        args = [(str(cache.dir), s, *_inputs(chunks, s), encoder, identity, step) for s in todo]
        jobs = executor.map_array(encode_one, *zip(*args))
        print(f"rbench: dense: {len(jobs)} shard jobs submitted ({executor.cluster}; logs in {folder.parent})",
              file=sys.stderr, flush=True)
        with Progress(sum(len(s) for s in todo), f"dense: encode corpus on {executor.cluster} ({len(todo)} shard jobs)",
                      "passages") as bar:
            pending = list(zip(jobs, todo))
            while pending:
                still = []
                for job, shard in pending:
                    if job.done():
                        try:
                            job.result()
                        except Exception as err:  # noqa: BLE001 - the job's own error, with its log folder
                            raise RetrieverError(f"shard {shard.index} failed in job {job.job_id} ({type(err).__name__}: "
                                                 f"{str(err)[-300:]}); the shards finished so far are kept, the same "
                                                 "command resumes") from None
                        bar.update(len(shard))
                    else:
                        still.append((job, shard))
                pending = still
                if pending:
                    time.sleep(0.5)


def _unreachable(address: str | None, timeout: float = 5.0) -> str | None:
    """Why a Ray address (``host:port``, ``ray://host:port``) does not accept a connection within ``timeout`` seconds;
    None when it does, or for ``auto``/no address (a local Ray)."""
    import socket
    from urllib.parse import urlsplit

    if not address or address in ("auto", "local"):
        return None
    parsed = urlsplit(address if "://" in address else f"ray://{address}")
    if not parsed.hostname:
        return f"no host in {address!r}"
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 6379), timeout=timeout):
            return None
    except OSError as err:
        return f"nothing answers at {parsed.hostname}:{parsed.port or 6379} within {timeout:g} s ({type(err).__name__})"


def make_engine(engine: str = "local", *, address: str | None = None, workers: int | None = None, gpus: float = 0,
                slurm_cluster: str | None = None, slurm_partition: str | None = None, slurm_timeout_min: int = 120,
                slurm_array_parallelism: int = 64) -> Any:
    if engine == "local":
        return LocalEngine()
    if engine == "ray":
        return RayEngine(address, workers, gpus)
    if engine == "slurm":
        return SlurmEngine(slurm_cluster, slurm_partition, slurm_timeout_min, slurm_array_parallelism, int(gpus or 0))
    raise RetrieverError(f"retriever.engine must be one of {'|'.join(ENGINES)}, got {engine!r}")

"""Who encodes a corpus's missing shards: this process, a Ray cluster, or a SLURM job array. An engine is a config
node of its own (the ``engine`` group: ``conf/engine/{local,ray,slurm}.yaml``, each with its ``_target_``) that every
stage which encodes a corpus takes as its ``engine`` (dense retrieval, SPLADE, the bi-encoder reranker).

The shards and their cache entries are decided once (:mod:`retrievers.shards`); an engine only runs
:func:`encode_one` for each missing shard, wherever it runs, writing the shard's entry (of the stage's
:class:`~retrievers.shards.ShardStore`: dense embeddings, SPLADE vectors) into the shared ``cache.dir``. The stage
then joins the shards. So every engine gives the same embeddings, an
interrupted run resumes from the shards present, and engines can be mixed (a SLURM array finishes what a
laptop started).

* ``engine=local``: in this process, one shard after another.
* ``engine=ray``: one Ray actor per worker (``engine.workers``; each with ``engine.gpus`` GPUs, or one CPU), fed
  the missing shards two at a time (the passages of the others are not copied into Ray's object store). ``engine.address`` (or ``$RAY_ADDRESS``) reaches an existing
  cluster; without one a local Ray is started, so the same command runs on a laptop. A worker killed
  mid-shard is restarted by Ray and the shard retried (``max_restarts``/``max_task_retries``); only that shard
  is redone.
* ``engine=slurm``: a submitit job array, one job per missing shard (``engine.array_parallelism`` at a time), its
  log folder under ``<cache.dir>/submitit``; ``engine.cluster=local`` runs the same array as local processes
  (submitit's local executor), ``debug`` in this process. The run waits for the array, then joins.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from chunkers.types import Chunk
from retrievers.cache import Cache
from retrievers.infrastructure.errors import RetrieverError
from retrievers.infrastructure.progress import Progress
from chunkers.options import Options, integer, number, one_of, optional, string
from retrievers import shards as sh

SLURM_CLUSTERS = (None, "slurm", "local", "debug")


def encode_one(cache_dir: str, shard: sh.Shard, texts: Sequence[str], ids: Sequence[str], encoder: Any,
               identity: Any, step: int, store: sh.ShardStore = sh.EMBEDDINGS) -> tuple[int, int, float]:
    """Encode one shard and publish its cache entry (what every engine runs, wherever): (index, rows, seconds).
    A shard already present (another worker, an earlier run) is not encoded again."""
    t0 = time.perf_counter()
    cache = Cache(cache_dir, "use")
    if not sh.present(cache, shard, store):
        with cache.claim(store.kind, shard.key):
            if not sh.present(cache, shard, store):
                store.write(cache, shard, texts, ids, lambda t: encoder.encode(t, kind="doc"), identity, step=step)
    return shard.index, len(shard), time.perf_counter() - t0


def _inputs(chunks: Sequence[Chunk], shard: sh.Shard) -> tuple[list[str], list[str]]:
    part = chunks[shard.start:shard.stop]
    return [c.indexed_text for c in part], [c.id for c in part]


class LocalEngine:
    """In this process (``engine=local``, the default)."""

    name = "local"
    OPTIONS: ClassVar[Options] = {}

    def run(self, todo: Sequence[sh.Shard], chunks: Sequence[Chunk], *, cache: Cache, encode: Callable, encoder: Any,
            identity: Any, step: int, store: sh.ShardStore = sh.EMBEDDINGS, label: str = "dense") -> None:
        with Progress(sum(len(s) for s in todo), f"{label}: encode corpus", "passages") as bar:
            for shard in todo:
                texts, ids = _inputs(chunks, shard)
                store.write(cache, shard, texts, ids, encode, identity, step=step, on_step=bar.update)


class RayEngine:
    """Ray actors over the missing shards (``engine=ray``)."""

    name = "ray"
    OPTIONS: ClassVar[Options] = {"address": optional(string), "workers": optional(integer(1)), "gpus": number(0)}
    REQUIRES: ClassVar[tuple[str, ...]] = ("ray",)

    def __init__(self, address: str | None = None, workers: int | None = None, gpus: float = 0.0) -> None:
        self.address, self.workers, self.gpus = address or os.environ.get("RAY_ADDRESS") or None, workers, float(gpus or 0)

    def run(self, todo: Sequence[sh.Shard], chunks: Sequence[Chunk], *, cache: Cache, encode: Callable, encoder: Any,
            identity: Any, step: int, store: sh.ShardStore = sh.EMBEDDINGS, label: str = "dense") -> None:
        try:
            import ray
        except ImportError:
            raise RetrieverError("engine=ray needs Ray: pip install 'retrieval-bench[cluster]'") from None
        started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"address": self.address, "include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
            if self.address is None and self.workers:  # a local Ray sized for the workers asked for
                kw["num_cpus"] = max(int(self.workers), 1)
            unreachable = _unreachable(self.address)
            if unreachable:  # Ray itself retries a dead address for minutes
                raise RetrieverError(f"engine.address: cannot reach Ray at {self.address} ({unreachable})")
            try:
                ray.init(**kw)
            except Exception as err:  # noqa: BLE001 - a cluster that cannot be reached: say where
                raise RetrieverError(f"engine.address: cannot reach Ray at {self.address or 'a new local Ray'}"
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
            actors = [actor.remote(str(cache.dir), encoder_ref, identity, step, store) for _ in range(n)]
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
            label = f"{label}: encode corpus on Ray ({len(todo)} shards, {n} workers)"
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

    def __init__(self, cache_dir: str, encoder: Any, identity: Any, step: int, store: sh.ShardStore) -> None:
        self.cache_dir, self.encoder, self.identity, self.step, self.store = cache_dir, encoder, identity, step, store

    def encode(self, shard: sh.Shard, texts: Sequence[str], ids: Sequence[str]) -> tuple[int, int, float]:
        return encode_one(self.cache_dir, shard, texts, ids, self.encoder, self.identity, self.step, self.store)


class SlurmEngine:
    """A submitit job array over the missing shards (``engine=slurm``)."""

    name = "slurm"
    OPTIONS: ClassVar[Options] = {"cluster": one_of(*SLURM_CLUSTERS), "partition": optional(string),
                                  "timeout_min": integer(1), "array_parallelism": integer(1), "gpus": integer(0),
                                  "cpus": integer(1)}
    REQUIRES: ClassVar[tuple[str, ...]] = ("submitit",)

    def __init__(self, cluster: str | None = None, partition: str | None = None, timeout_min: int = 120,
                 array_parallelism: int = 64, gpus: int = 0, cpus: int = 4) -> None:
        self.cluster, self.partition, self.timeout_min = cluster, partition, int(timeout_min)
        self.array_parallelism, self.gpus, self.cpus = int(array_parallelism), int(gpus or 0), int(cpus)

    def run(self, todo: Sequence[sh.Shard], chunks: Sequence[Chunk], *, cache: Cache, encode: Callable, encoder: Any,
            identity: Any, step: int, store: sh.ShardStore = sh.EMBEDDINGS, label: str = "dense") -> None:
        try:
            import submitit
        except ImportError:
            raise RetrieverError("engine=slurm needs submitit: pip install 'retrieval-bench[cluster]'") from None
        folder = Path(cache.dir) / "submitit" / "%j"
        if self.cluster == "slurm" and shutil.which("srun") is None and shutil.which("sbatch") is None:
            raise RetrieverError("engine=slurm: no SLURM here (neither srun nor sbatch is on the PATH); run on a "
                                 "SLURM login node, or try the job array locally with engine.cluster=local")
        executor = submitit.AutoExecutor(folder=str(folder), cluster=self.cluster)
        params: dict[str, Any] = {"timeout_min": self.timeout_min, "cpus_per_task": self.cpus}
        if executor.cluster == "slurm":
            params.update({"slurm_array_parallelism": self.array_parallelism, "gpus_per_node": self.gpus})
            if self.partition:
                params["slurm_partition"] = self.partition
        executor.update_parameters(**params)
        args = [(str(cache.dir), s, *_inputs(chunks, s), encoder, identity, step, store) for s in todo]
        jobs = executor.map_array(encode_one, *zip(*args))
        print(f"rbench: {label}: {len(jobs)} shard jobs submitted ({executor.cluster}; logs in {folder.parent})",
              file=sys.stderr, flush=True)
        with Progress(sum(len(s) for s in todo), f"{label}: encode corpus on {executor.cluster} ({len(todo)} shard jobs)",
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


#: what a stage takes as its ``engine``: one of the classes above (or anything with ``name`` and ``run``)
Engine = Any


def checked_engine(engine: Any, cache: Cache) -> Any:
    """The engine a stage encodes with (``None``: this process). An engine other than ``local`` writes each shard to
    ``cache.dir`` for the stage to join, so it needs ``cache.mode=use``."""
    if engine is None or engine == "local":  # "local": the flat key of configs logged before the engine group
        engine = LocalEngine()
    if not callable(getattr(engine, "run", None)):
        raise RetrieverError(f"engine: expected an engine (engine=local|ray|slurm), got {type(engine).__name__}")
    if getattr(engine, "name", "local") != "local" and cache.mode != "use":
        raise RetrieverError(f"engine={engine.name} writes each encoded shard to cache.dir for the run to join: "
                             f"it needs cache.mode=use (got {cache.mode})")
    return engine


def note_interrupted(err: BaseException, cache: Cache, plan: Sequence[sh.Shard], store: sh.ShardStore, label: str) -> None:
    """On Ctrl-C or SIGTERM during an encode: what the next run will find, said truly (``err.rbench_resume``, printed
    by the console): the shards finished and kept, or that nothing is kept (one shard, or none finished)."""
    try:
        done = len(plan) - len(sh.missing(cache, plan, store))
    except Exception:  # noqa: BLE001 - the note is a courtesy; the interrupt goes on either way
        return
    if done:
        err.rbench_resume = (f"{label}: {done} of {len(plan)} encoded shards are kept in the cache; the same command "
                             "resumes from them")
    else:
        err.rbench_resume = (f"{label}: no shard of the corpus was finished ({len(plan)} shard{'s' if len(plan) != 1 else ''}"
                             f"{', the whole corpus' if len(plan) == 1 else ''}), so nothing encoded is kept; the same "
                             "command encodes it again")

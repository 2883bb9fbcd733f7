"""Faster encoders for the same sentence-transformers model: ONNX Runtime and OpenVINO.

``retriever.encoder.backend=onnx|openvino`` runs the model's transformer through an exported graph; the
tokenizer and the pooling / normalisation modules stay the sentence-transformers model's own, so the
vectors are the model's (fp32: equal to torch's to ~1e-6). Exports are made offline, in seconds, from the
weights already loaded, and cached content-addressed beside the embeddings
(``<cache.dir>/models/<key>/``, key = weights identity + backend + precision + library versions); the
embeddings' cache key includes backend and precision.

Precisions (``retriever.encoder.precision``):

* ``onnx``: ``fp32``, or ``int8`` — dynamic quantisation of the weights (``onnxruntime.quantization.
  quantize_dynamic``); activations are quantised at run time, so there is nothing to calibrate and
  nothing is fetched;
* ``openvino``: ``fp32`` (``INFERENCE_PRECISION_HINT=f32``), ``bf16`` (only on CPUs that report BF16, e.g.
  AMX / AVX512-BF16; elsewhere a config error), ``fp16`` on an OpenVINO GPU device, or ``int8`` — static
  quantisation of weights and activations with NNCF (``nncf.quantize``, transformer preset: SmoothQuant and
  bias correction), calibrated on up to 300 passages of the corpus being indexed (a seeded sample; nothing
  is fetched). The sample's fingerprint is part of the export's key and of the embeddings' key, so a corpus's
  passages and its queries always go through the same quantised model. Fast where the CPU has VNNI / AMX.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from retrievers.infrastructure.errors import RetrieverError
from retrievers.infrastructure.extras import installed, need
from retrievers.infrastructure.progress import Progress

BACKENDS = ("torch", "onnx", "openvino")
#: ``backend`` values: a backend, or ``auto`` (with ``precision=auto``: the fastest within tolerance)
BACKEND_OPTIONS = ("auto", *BACKENDS)
PRECISIONS = {"torch": ("fp32", "bf16", "fp16"), "onnx": ("fp32", "int8"), "openvino": ("fp32", "bf16", "fp16", "int8")}
#: where a dense retriever's encoder sits in the config (``conf/encoder/``, chosen per dense retriever); every
#: message about an encoder's backend, precision, device or model names its keys from here
ENCODER_KEY = "retriever.encoder"
#: every precision some backend takes (``retriever.encoder.precision``; ``auto`` besides)
ALL_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8", "fp16")
#: passages an OpenVINO int8 export is calibrated on (a seeded sample of the corpus), in batches of CALIBRATION_BATCH
CALIBRATION_SIZE, CALIBRATION_BATCH = 300, 8


#: the documented tolerance a setting ``precision=auto`` may choose must meet against the model's own fp32
#: vectors (torch), measured by ``benchmarks/scripts/encode_speed.py`` (``results/encode_speed.md``): mean cosine
#: of the passage vectors, and the change in nDCG@10 of an end-to-end run
AUTO_TOLERANCE = {"mean_cosine": 0.999, "ndcg_at_10": 0.002}

#: what ``precision=auto`` may choose on a CPU, fastest first: (backend, precision, CPU flags it needs (any one),
#: what was measured on an AMD EPYC with AVX512-BF16, 2 threads, all-MiniLM-L6-v2, ``results/encode_speed.md``).
#: Each stayed within AUTO_TOLERANCE there. With the default ``backend=torch`` it is torch bf16 (no
#: export, no extra); ``backend=auto`` takes OpenVINO bf16 where installed. Left out: int8 (ONNX
#: dynamic: mean cosine 0.93; OpenVINO static: 3.2x but mean cosine 0.998, cranfield nDCG@10 -0.003, and a
#: calibration pass per corpus), and bf16 on CPUs without native BF16 (emulated: 0.32x torch fp32 on a Xeon
#: with AVX-512 but no BF16).
AUTO_CPU = (
    ("openvino", "bf16", ("amx_bf16", "avx512_bf16"), "2.3-2.5x torch fp32, mean cosine 0.99999 to its vectors"),
    ("torch", "bf16", ("amx_bf16", "avx512_bf16"), "1.8-2.3x torch fp32, mean cosine 0.99995, nDCG@10 +0.0005"),
)


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; ``$RBENCH_CPU_FLAGS``, comma-separated, overrides them)."""
    fake = os.environ.get("RBENCH_CPU_FLAGS")
    if fake is not None:
        return frozenset(f.strip() for f in fake.split(",") if f.strip())
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def available(backend: str, precision: str) -> bool:
    """Whether the modules ``backend`` at ``precision`` runs on are installed (found, not imported)."""
    return all(installed(m) for m in modules_needed(backend, precision))


def auto_setting(backend: str, flags: frozenset[str] | None = None) -> tuple[str, str, str]:
    """``(backend, precision, why)`` for ``precision=auto`` on the CPU: the fastest setting of :data:`AUTO_CPU`
    whose CPU flags are present and whose modules are installed, for ``backend`` ``backend`` (``auto``:
    any backend); otherwise fp32 (exact), on ``backend`` (``auto``: torch)."""
    flags = cpu_flags() if flags is None else flags
    for b, precision, needs, measured in AUTO_CPU:
        if backend not in ("auto", b):
            continue
        have = sorted(set(needs) & flags)
        if have and available(b, precision):
            return b, precision, f"the CPU has {have[0]}: {measured}"
    fallback = "torch" if backend == "auto" else backend
    return fallback, "fp32", "no faster setting within tolerance for this CPU (flags: " + \
        (", ".join(sorted(f for f in flags if "bf16" in f or "vnni" in f or "amx" in f)) or "no BF16/AMX/VNNI") + ")"


def modules_needed(backend: str, precision: str) -> list[str]:
    """The optional modules an encoder backend (and precision) runs on (``retrievers.infrastructure.extras`` names the extra)."""
    modules = {"onnx": ["onnxruntime", "onnx"], "openvino": ["openvino"]}.get(backend, [])
    if (backend, precision) == ("openvino", "int8"):
        modules.append("nncf")  # static quantisation, calibrated on the corpus
    return modules


def precision_problem(backend: str, precision: str) -> str | None:
    """The one backend/precision compatibility rule: why ``precision`` cannot run on ``backend``, e.g. ``bf16 is
    not available with backend=onnx (choose fp32|int8)``; None when it can (or is ``auto``)."""
    if backend == "torch" and precision == "int8":
        return "int8 needs backend=onnx or openvino"
    if backend in PRECISIONS and precision != "auto" and precision not in PRECISIONS[backend]:
        return f"{precision} is not available with backend={backend} (choose {'|'.join(PRECISIONS[backend])})"
    return None


def requirements(backend: str, precision: str) -> tuple[list[str], list[tuple[str, str]]]:
    """What an encoder backend at a precision needs, as the validator reads it from a component's declaration:
    (optional modules, problems as ``(key, message)``)."""
    problem = precision_problem(backend, precision)
    return modules_needed(backend, precision), ([("precision", problem)] if problem else [])


def check(backend: str, precision: str) -> None:
    if backend not in BACKENDS:  # resolved: ``auto`` never gets here
        raise RetrieverError(f"{ENCODER_KEY}.backend must be one of {'|'.join(BACKENDS)}, got {backend!r}")
    problem = precision_problem(backend, precision)
    if problem:
        raise RetrieverError(f"{ENCODER_KEY}.precision={problem}")

    need(f"{ENCODER_KEY}.backend={backend}" + (f" precision={precision}" if precision == "int8" else ""),
         *modules_needed(backend, precision))


def calibration_sample(texts: Sequence[str], size: int = CALIBRATION_SIZE) -> list[str]:
    """The passages an int8 export is calibrated on: all of them up to ``size``, else a seeded sample in corpus
    order (the same corpus gives the same sample, so the same quantised model)."""
    import random

    if len(texts) <= size:
        return list(texts)
    return [texts[i] for i in sorted(random.Random(0).sample(range(len(texts)), size))]


def token_embedding_module(auto_model: Any, names: Sequence[str]) -> Any:
    """The transformer as a module of its tokenizer's inputs (positional, in ``names`` order) returning token
    embeddings: the graph both exporters trace."""
    import torch

    class Module(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = auto_model

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args))).last_hidden_state

    return Module().eval()


class ExportedEncoder:
    """Runs an exported copy of a loaded :class:`sentence_transformers.SentenceTransformer`'s transformer."""

    def __init__(self, st_model: Any, *, backend: str, precision: str, folder: Path, threads: int | None = None,
                 device: str = "cpu", calibration: Sequence[str] = ()) -> None:
        check(backend, precision)
        self.st, self.backend, self.precision, self.folder = st_model, backend, precision, Path(folder)
        self.calibration = list(calibration)
        if (backend, precision) == ("openvino", "int8") and not self.calibration:  # before anything is exported
            raise RetrieverError(f"{ENCODER_KEY}.precision=int8 with backend=openvino is calibrated on the corpus "
                                 "being indexed: index the corpus (or call the encoder's calibrate(passages)) first")
        self.threads = int(threads) if threads else None
        self.device = device
        first = st_model[0]
        self.tokenizer = first.tokenizer
        self.max_length = int(getattr(st_model, "max_seq_length", None) or getattr(first, "max_seq_length", 512) or 512)
        probe = self.tokenizer(["a b", "c"], padding=True, return_tensors="pt")
        self.names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in probe]
        self._run = self._load_onnx(probe) if backend == "onnx" else self._load_openvino(probe)

    # ------------------------------------------------------------------ export
    def _export_onnx(self, probe: Any, path: Path) -> None:
        import torch

        import warnings

        module = token_embedding_module(self.st[0].auto_model, self.names)
        axes = {n: {0: "batch", 1: "tokens"} for n in self.names}
        axes["token_embeddings"] = {0: "batch", 1: "tokens"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent branches (the graph is checked in tests)
            torch.onnx.export(module, tuple(probe[n] for n in self.names), str(path), input_names=self.names,
                              output_names=["token_embeddings"], dynamic_axes=axes, opset_version=17, dynamo=False)

    def _cached(self, name: str, make: Any) -> Path:
        """A file of the export folder, made once (atomically: a temp name, then a rename)."""
        path = self.folder / name
        if not path.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".tmp-{os.getpid()}-{name}"
            make(tmp)
            os.replace(tmp, path)
        return path

    def _load_onnx(self, probe: Any) -> Any:
        import onnxruntime as ort

        fp32 = self._cached("model.onnx", lambda p: self._export_onnx(probe, p))
        path = fp32
        if self.precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            import logging

            logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its "run pre-processing" hint
            path = self._cached("model.int8.onnx", lambda p: quantize_dynamic(str(fp32), str(p), weight_type=QuantType.QInt8))
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        wanted = {i.name for i in session.get_inputs()}

        def run(batch: dict[str, np.ndarray]) -> np.ndarray:
            return session.run(None, {k: v.astype(np.int64) for k, v in batch.items() if k in wanted})[0]

        return run

    def _load_openvino(self, probe: Any) -> Any:
        import openvino as ov

        core = ov.Core()
        target = "GPU" if self.device.startswith("cuda") or self.device.upper().startswith("GPU") else "CPU"
        if self.precision == "bf16" and target == "CPU" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise RetrieverError(f"{ENCODER_KEY}.precision=bf16 with backend=openvino needs a CPU with BF16 "
                                 f"(AMX or AVX512-BF16); this one reports {core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}")

        def export(path: Path) -> None:
            import warnings

            module = token_embedding_module(self.st[0].auto_model, self.names)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = ov.convert_model(module, example_input=tuple(probe[n] for n in self.names))
            for port, name in zip(model.inputs, self.names):
                port.get_tensor().set_names({name})
            ov.save_model(model, str(path.with_suffix(".xml")), compress_to_fp16=False)
            os.replace(path.with_suffix(".bin"), self.folder / "model.bin")
            os.replace(path.with_suffix(".xml"), path)

        xml = self._cached("model.xml", export)
        weights = self.folder / "model.bin"
        if self.precision == "int8":
            xml, weights = self._quantized_openvino(core, xml), self.folder / "model.int8.bin"
        config = {"INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}[self.precision]}
        if self.threads and target == "CPU":
            config["INFERENCE_NUM_THREADS"] = self.threads
        compiled = core.compile_model(core.read_model(str(xml), str(weights)), target, config)
        request = compiled.create_infer_request()

        def run(batch: dict[str, np.ndarray]) -> np.ndarray:
            out = request.infer({n: batch[n] for n in self.names})
            return np.asarray(next(iter(out.values())))

        return run

    def _quantized_openvino(self, core: Any, fp32_xml: Path) -> Path:
        """The int8 model (NNCF static quantisation of the fp32 export, calibrated on ``self.calibration``)."""
        import openvino as ov

        def quantize(path: Path) -> None:
            import contextlib
            import io
            import logging
            import warnings

            with warnings.catch_warnings():  # its imports' deprecation notes (matplotlib, pyparsing) on older sets
                warnings.simplefilter("ignore")
                import nncf


            model = core.read_model(str(fp32_xml), str(self.folder / "model.bin"))
            items = []
            for i in range(0, len(self.calibration), CALIBRATION_BATCH):
                batch = self.tokenizer(self.calibration[i:i + CALIBRATION_BATCH], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="np")
                items.append({n: np.asarray(batch[n]) for n in self.names})
            with Progress(None, f"openvino: int8 calibration on {len(self.calibration)} passages",
                          "passages run") as bar:

                class Counted:  # NNCF runs the calibration set once per statistics pass; each pass shows here
                    def __len__(self) -> int:
                        return len(items)

                    def __iter__(self):
                        for item in items:
                            yield item
                            bar.update(int(item["input_ids"].shape[0]))

                nncf.set_log_level(logging.ERROR)
                with contextlib.redirect_stdout(io.StringIO()):  # NNCF's own rich bars (stdout); ours are above
                    quantized = nncf.quantize(model, nncf.Dataset(Counted()), model_type=nncf.ModelType.TRANSFORMER,
                                              subset_size=len(items))
            ov.save_model(quantized, str(path.with_suffix(".xml")), compress_to_fp16=False)
            os.replace(path.with_suffix(".bin"), self.folder / "model.int8.bin")
            os.replace(path.with_suffix(".xml"), path)

        return self._cached("model.int8.xml", quantize)

    # ------------------------------------------------------------------ encode
    def encode(self, texts: Sequence[str], *, batch_size: int, normalize: bool) -> np.ndarray:
        import torch

        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="np")
            tokens = self._run({k: np.asarray(v) for k, v in batch.items()})
            features = {"token_embeddings": torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.float32)),
                        "attention_mask": torch.from_numpy(np.asarray(batch["attention_mask"]))}
            with torch.no_grad():
                for module in list(self.st)[1:]:  # pooling (and dense / normalize layers) as the model defines them
                    features = module(features)
            vectors = features["sentence_embedding"].numpy()
            if normalize:
                vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            for row, i in enumerate(idx):
                out[i] = vectors[row]
        return np.ascontiguousarray(np.stack(out), dtype=np.float32) if texts else np.zeros((0, 0), np.float32)

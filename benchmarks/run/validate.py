"""Check the whole resolved config before any data is loaded, encoded or logged.

Every problem is reported at once, each naming its dotted key, what it got and what is allowed; the CLI
turns the :class:`~benchmarks.errors.ConfigError` into exit 2. Rules are keyed by a node's ``_target_``
(so a BM25 config is checked the same at ``retriever``, ``retriever.retrievers.bm25`` or
``router.routes.simple.retriever``) and by top-level key.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from benchmarks.datasets.limits import RANGES as LIMIT_RANGES
from benchmarks.errors import ConfigError

Check = Callable[[Any], "str | None"]  # None when fine, else what is wrong ("expected ..., got ...")


def _show(v: Any) -> str:
    return "null" if v is None else repr(v)


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"expected an integer, got {_show(v)}"
        if lo is not None and v < lo or hi is not None and v > hi:
            return f"expected an integer {'>= ' + str(lo) if hi is None else f'in [{lo}, {hi}]'}, got {v}"
        return None
    return check


def number(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            return f"expected a number, got {_show(v)}"
        if lo is not None and (v <= lo if open_lo else v < lo) or hi is not None and v > hi:
            rng = f"{'>' if open_lo else '>='} {lo}" if hi is None else f"in [{lo}, {hi}]"
            return f"expected a number {rng}, got {v}"
        return None
    return check


def one_of(*options: Any) -> Check:
    def check(v: Any) -> str | None:
        return None if v in options else f"expected one of {'|'.join(str(o) for o in options)}, got {_show(v)}"
    return check


def optional(inner: Check) -> Check:
    return lambda v: None if v is None else inner(v)


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"expected true|false, got {_show(v)}"


def string(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else f"expected a non-empty string, got {_show(v)}"


def int_list(lo: int = 1) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or not v:
            return f"expected a non-empty list of integers >= {lo}, e.g. [1,5,10], got {_show(v)}"
        bad = [x for x in v if isinstance(x, bool) or not isinstance(x, int) or x < lo]
        return f"expected integers >= {lo}, got {', '.join(_show(x) for x in bad)}" if bad else None
    return check


def device(v: Any) -> str | None:
    ok = isinstance(v, str) and (v in ("cpu", "cuda", "auto", "mps") or v.startswith("cuda:"))
    return None if ok else f"expected cpu|cuda|cuda:N|auto, got {_show(v)}"


def _fusion_methods() -> tuple[str, ...]:
    from retrievers.fusion import METHODS

    return tuple(METHODS)


def _norms() -> tuple[str, ...]:
    from retrievers.fusion import NORMS

    return tuple(NORMS)


def lazy_one_of(options: Callable[[], tuple[str, ...]], *extra: Any) -> Check:
    return lambda v: one_of(*options(), *extra)(v)


BM25 = {"backend": one_of("bm25s", "rank_bm25"), "k1": number(0), "b": number(0, 1),
        "variant": one_of("lucene", "robertson", "atire", "bm25l", "bm25+"),
        "stemmer": optional(string), "stopwords": optional(string), "bm25s_backend": one_of("numpy", "numba"),
        "cache_mode": one_of("use", "refresh", "off")}
DENSE = {"model": string, "batch_size": integer(1), "device": device, "index": one_of("flat", "hnsw", "ivf"),
         "hnsw_m": integer(2), "hnsw_ef_construction": integer(1), "hnsw_ef_search": integer(1),
         "ivf_nlist": optional(integer(1)), "ivf_nprobe": integer(1), "normalize": one_of("auto", True, False, "true", "false"),
         "max_seq_length": optional(integer(1)), "cache_mode": one_of("use", "refresh", "off"),
         "encoder_backend": one_of("torch", "onnx", "openvino"), "precision": one_of("auto", "fp32", "bf16", "int8", "fp16"),
         "threads": optional(integer(1)), "processes": optional(integer(1))}
CHUNKER = {"aggregate": one_of("max", "sum", "first"), "size": integer(1), "overlap": integer(0)}
DECOMPOSER = {"fusion": one_of("rrf", "max", "sum"), "rrf_k": integer(1), "hops": integer(1), "m": integer(1),
              "follow": one_of("title", "links"), "links": integer(1), "depth": integer(1), "min_clause_words": integer(1),
              "max_subqueries": integer(1), "temperature": number(0), "timeout_s": number(0, open_lo=True),
              "retries": integer(0)}
RULES: dict[str, dict[str, Check]] = {
    "retrievers.bm25.BM25Retriever": BM25,
    "retrievers.dense.DenseRetriever": DENSE,
    "retrievers.hybrid.HybridRetriever": {"fusion": lazy_one_of(_fusion_methods), "norm": lazy_one_of(_norms, None),
                                          "rrf_k": integer(1), "aggregate": CHUNKER["aggregate"]},
    "retrievers.routing.QueryRouter": {"default": one_of("simple", "exact_term", "multi_hop"),
                                       "force": one_of(None, "simple", "exact_term", "multi_hop"),
                                       "min_clause_words": integer(1), "min_entities": integer(1),
                                       "long_query_words": optional(integer(1))},
    "retrievers.versions.versions": {"mode": one_of("ignore", "filter", "decay"), "superseded_factor": number(0, 1),
                                     "deprecated_factor": number(0, 1),
                                     "half_life_days": optional(number(0, open_lo=True))},
    "retrievers.splade.SpladeRetriever": {"model": string, "batch_size": integer(1), "device": device,
                                          "max_seq_length": optional(integer(1)), "threads": optional(integer(1))},
    "retrievers.custom.FunctionRetriever": {"function": string, "batch_size": integer(1)},
    "retrievers.rerank.CrossEncoderReranker": {"model": string, "top_n": integer(1), "batch_size": integer(1),
                                               "max_length": optional(integer(1)), "device": device},
    "retrievers.rerank.BiEncoderReranker": {"model": string, "top_n": integer(1), "batch_size": integer(1),
                                            "max_length": optional(integer(1)), "device": device},
}
TOP: dict[str, Check] = {
    "top_k": integer(1), "metrics.k": int_list(1), "metrics.budget": integer(1), "rerun": boolean,
    "cache.mode": one_of("use", "refresh", "off"), "cache.dir": string, "tracking.uri": string,
    "tracking.experiment": string, "dataset.split": string, "dataset.limit": optional(integer(1)),
    "dataset.strict": boolean, "dataset.tune_split": optional(string), "dataset.seed": integer(0),
    **{f"limits.{key}": (integer(int(lo), None if hi is None else int(hi)) if key in ("json_depth", "yaml_values")
                         else number(lo, hi)) for key, (lo, hi) in LIMIT_RANGES.items()},
}
#: the optional modules a component needs (retrievers/extras.py names the extra that installs each)
NEEDS: dict[str, tuple[str, ...]] = {
    "retrievers.dense.DenseRetriever": ("faiss", "numpy"),
    "retrievers.splade.SpladeRetriever": ("sentence_transformers", "torch"),
    "retrievers.encoders.StaticModelEncoder": ("model2vec",),
    "retrievers.rerank.CrossEncoderReranker": ("sentence_transformers", "torch"),
    "retrievers.rerank.BiEncoderReranker": ("sentence_transformers", "torch"),
}
PREFIX_RULES = {"chunkers.": CHUNKER, "retrievers.decomposition.": DECOMPOSER, "retrievers.llm.": DECOMPOSER}


def _get(tree: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _walk(node: Any, path: str, problems: list[str]) -> None:
    if isinstance(node, Mapping):
        target = node.get("_target_")
        if isinstance(target, str):
            needs = list(NEEDS.get(target, ()))
            if target == "retrievers.dense.DenseRetriever" and not isinstance(node.get("encoder"), Mapping):
                needs += ["sentence_transformers", "torch"]  # the default encoder (a static one needs model2vec only)
                from retrievers.backends import modules_needed, precision_problem

                backend, precision = str(node.get("encoder_backend", "torch")), str(node.get("precision", "auto"))
                needs += modules_needed(backend, precision)
                problem = precision_problem(backend, precision)
                if problem:
                    problems.append(f"{path}.precision: {problem}")
            if needs:
                from retrievers.extras import message

                what = f"{path or 'config'} ({target.rsplit('.', 1)[-1]})"
                err = message(what, *needs)
                if err:
                    problems.append(err)
            rules = dict(RULES.get(target, {}))
            for prefix, extra in PREFIX_RULES.items():
                if target.startswith(prefix):
                    rules = {**extra, **rules}
            for key, check in rules.items():
                if key in node:
                    err = check(node[key])
                    if err:
                        problems.append(f"{path}.{key}: {err}" if path else f"{key}: {err}")
            if target == "retrievers.hybrid.HybridRetriever":
                bases = node.get("retrievers") or {}
                weights = node.get("weights")
                if weights is not None and (not isinstance(weights, list) or len(weights) != len(bases)
                                            or any(number(0)(w) for w in weights) or not any(w > 0 for w in weights)):
                    problems.append(f"{path}.weights: expected {len(bases)} numbers >= 0, not all 0 (one per retriever: "
                                    f"{', '.join(bases)}), got {_show(weights)}")
            if isinstance(node.get("size"), int) and isinstance(node.get("overlap"), int) and node["overlap"] >= node["size"] > 0:
                problems.append(f"{path}.overlap: must be smaller than {path}.size ({node['size']}), got {node['overlap']}")
        for key, value in node.items():
            _walk(value, f"{path}.{key}" if path else str(key), problems)


def problems(cfg: Any) -> list[str]:
    """Every problem of a config (a DictConfig or plain mapping), as ``key: what is wrong`` lines."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        try:
            tree = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except Exception as err:  # an interpolation that cannot resolve, a mandatory value (???) not given
            key = getattr(err, "full_key", "") or "config"
            what = "a value is required here (it is ??? in the config)" if type(err).__name__ == "MissingMandatoryValue" \
                else str(err).split("\n")[0]
            return [f"{key}: {what}"]
    else:
        tree = cfg
    out: list[str] = []
    for key, check in TOP.items():
        present, value = _get(tree, key)
        if present:
            err = check(value)
            if err:
                out.append(f"{key}: {err}")
    ks = _get(tree, "metrics.k")[1]
    top_k = _get(tree, "top_k")[1]
    if not int_list(1)(ks or None) and isinstance(top_k, int) and top_k < max(ks):
        out.append(f"top_k: must be >= the largest metrics.k ({max(ks)}), got {top_k}")
    router_set = bool((_get(tree, "router._target_")[1]))
    dec = str(_get(tree, "decomposer._target_")[1] or "")
    if router_set and dec and not dec.endswith("NoDecomposer"):
        out.append("decomposer: with a router, decomposition is set per route (router.routes.<route>.decomposer); "
                   "leave decomposer=none")
    pipeline = _get(tree, "pipeline")[1]
    if pipeline is not None:
        if not isinstance(pipeline, list) or any(not isinstance(g, str) or g not in tree for g in pipeline):
            out.append(f"pipeline: expected a list of config groups (e.g. [decomposer, versions, reranker]), got {_show(pipeline)}")
    _walk(tree, "", out)
    return out


def validate(cfg: Any) -> None:
    """Raise one ConfigError listing every problem (nothing is loaded or computed before this)."""
    found = problems(cfg)
    if found:
        head = "invalid config" if len(found) > 1 else "invalid config value"
        raise ConfigError(f"{head}:\n  " + "\n  ".join(found))


def arg_type(kind: Callable[[str], Any], check: Check) -> Callable[[str], Any]:
    """An argparse ``type=`` from a rule: ``--k -5`` is ``error: argument --k: expected an integer >= 1, got
    -5`` (exit 2), with the same wording as the config's keys."""
    import argparse

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        problem = check(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    convert.__name__ = kind.__name__
    return convert

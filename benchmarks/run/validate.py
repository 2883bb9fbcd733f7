"""Check the whole resolved config before any data is loaded, encoded or logged.

Every problem is reported at once, each naming its dotted key, what it got and what is allowed; the CLI
turns the :class:`~benchmarks.errors.ConfigError` into exit 2. Rules are keyed by a node's ``_target_``
(so a BM25 config is checked the same at ``retriever``, ``retriever.retrievers.bm25`` or
``router.routes.simple.retriever``) and by top-level key.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any, Mapping

from benchmarks.datasets.limits import RANGES as LIMIT_RANGES
from benchmarks.errors import ConfigError
from chunkers.options import Check, boolean, int_list, integer, number, one_of, optional, show, string
from retrievers.cache import CACHE_MODES
from retrievers.pipeline import DEFAULT_PIPELINE, router_rule
from retrievers.backends import ALL_PRECISIONS
from benchmarks.paths import CONF_DIR
from retrievers.infrastructure.extras import message

TOP: dict[str, Check] = {
    "top_k": integer(1), "encoder_precision": one_of("auto", *ALL_PRECISIONS), "metrics.k": int_list(1), "metrics.headline_k": optional(integer(1)), "metrics.budget": integer(1), "rerun": boolean,
    "cache.mode": one_of(*CACHE_MODES), "cache.dir": string, "tracking.uri": string,
    "tracking.experiment": string, "dataset.split": string, "dataset.limit": optional(integer(1)),
    "dataset.strict": boolean, "dataset.tune_split": optional(string), "dataset.seed": integer(0),
    **{f"limits.{key}": (integer(int(lo), None if hi is None else int(hi)) if key in ("json_depth", "yaml_values")
                         else number(lo, hi)) for key, (lo, hi) in LIMIT_RANGES.items()},
}


def declared(target: str) -> tuple[dict[str, Check], tuple[str, ...], Any]:
    """The ``OPTIONS`` (merged along the class's MRO, base first), ``REQUIRES`` and ``requirements`` (a function of
    the settings: the modules they need and what cannot work, as ``(key, message)``) a ``_target_`` declares next to
    its class; nothing for a target that is not one of the project's modules or cannot be imported (its
    instantiation then names the problem)."""
    module, _, name = target.rpartition(".")
    if not module.startswith(("chunkers.", "retrievers.", "benchmarks.")):
        return {}, (), None
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return {}, (), None
    options: dict[str, Check] = {}
    for cls in reversed(getattr(obj, "__mro__", (obj,))):
        options.update(getattr(cls, "OPTIONS", None) or {})
    rule = getattr(obj, "requirements", None)
    return options, tuple(getattr(obj, "REQUIRES", ())), rule if callable(rule) else None


def unaccepted(target: str, node: Mapping[str, Any]) -> list[str]:
    """The keys of a config node that its project component does not take (no such parameter, and no ``**kwargs``):
    nothing would read them. Hydra's own keys (``_target_``, ``_partial_``, ...) are not the component's."""
    import inspect

    module, _, name = target.rpartition(".")
    if not module.startswith(("chunkers.", "retrievers.", "benchmarks.")):
        return []
    try:
        obj = getattr(importlib.import_module(module), name)
        params = inspect.signature(obj).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return sorted(str(k) for k in node if not str(k).startswith("_") and str(k) not in params)


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
            rules, requires, settings_rule = declared(target)
            for key in unaccepted(target, node):  # '+decomposer.hops=3' with decomposer=none: read by nothing
                problems.append(f"{path + '.' if path else ''}{key}: not an option of {target.rsplit('.', 1)[-1]}, the "
                                f"{path or 'component'} chosen: nothing would read it")
            needs = list(requires)
            if settings_rule is not None:  # what the component says its settings need (and what cannot work)
                modules, said = settings_rule(node)
                needs += modules
                problems += [f"{path}.{key}: {msg}" if path else f"{key}: {msg}" for key, msg in said]
            if needs:

                what = f"{path or 'config'} ({target.rsplit('.', 1)[-1]})"
                err = message(what, *needs)
                if err:
                    problems.append(err)
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
                                    f"{', '.join(bases)}), got {show(weights)}")
            if isinstance(node.get("size"), int) and isinstance(node.get("overlap"), int) and node["overlap"] >= node["size"] > 0:
                problems.append(f"{path}.overlap: must be smaller than {path}.size ({node['size']}), got {node['overlap']}")
        for key, value in node.items():
            _walk(value, f"{path}.{key}" if path else str(key), problems)


@lru_cache(maxsize=1)
def declared_top_keys() -> frozenset[str]:
    """Every top-level key some config file declares: ``config.yaml``'s, the groups its defaults list places at the
    top (not ``encoder``, whose options are placed inside a dense retriever), and the keys the ``@package _global_``
    groups add (the locations of ``paths``, the experiment presets)."""
    import yaml

    keys = {"hydra", "defaults"}
    for path in [CONF_DIR / "config.yaml", *sorted((CONF_DIR / "paths").glob("*.yaml")),
                 *sorted((CONF_DIR / "experiment").glob("*.yaml"))]:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        keys |= {str(k) for k in data} if isinstance(data, dict) else set()
        if path.name == "config.yaml":  # "- dataset: enterprise", "- optional experiment: null"
            keys |= {str(k).split()[-1].split("@")[0] for entry in data.get("defaults", []) if isinstance(entry, dict)
                     for k in entry}
    return frozenset(keys)


def unread_top_keys(tree: Mapping[str, Any]) -> list[str]:
    """A top-level key that no config file declares is read by nothing (``+retreiver.k1=0.9``: a misspelt group,
    with the ``+`` Hydra suggests): a problem naming it, with the close name."""
    import difflib

    known = declared_top_keys()
    out = []
    for key in tree:
        if str(key) not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            out.append(f"{key}: no component reads this key" + (f"; did you mean {close[0]}?" if close else ""))
    return out


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
    out: list[str] = unread_top_keys(tree)
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
    head_k = _get(tree, "metrics.headline_k")[1]
    if not int_list(1)(ks or None) and isinstance(head_k, int) and head_k not in ks:
        out.append(f"metrics.headline_k: must be one of metrics.k ({', '.join(map(str, ks))}), got {head_k}")
    problem = router_rule(_get(tree, "router._target_")[1], _get(tree, "decomposer._target_")[1])
    if problem:
        out.append(problem)
    pipeline = _get(tree, "pipeline")[1]
    if pipeline is not None:
        if not isinstance(pipeline, list) or any(not isinstance(g, str) or g not in tree for g in pipeline):
            out.append(f"pipeline: expected a list of config groups (e.g. [{', '.join(DEFAULT_PIPELINE)}]), got {show(pipeline)}")
    _walk(tree, "", out)
    return out


def validate(cfg: Any) -> None:
    """Raise one ConfigError listing every problem (nothing is loaded or computed before this)."""
    found = problems(cfg)
    if found:
        head = "invalid config" if len(found) > 1 else "invalid config value"
        raise ConfigError(f"{head}:\n  " + "\n  ".join(found))



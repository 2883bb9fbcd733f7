"""Which option of each config group a run used: logged as params (``retriever=bm25``) so that reports
select runs by option, never by parsing settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from benchmarks.paths import CONF_DIR

#: the config groups whose chosen option a run logs as a param (``retriever=bm25``)
GROUPS = ("dataset", "chunker", "retriever", "decomposer", "router", "versions", "reranker", "experiment")


def group_choices(cfg: Any) -> dict[str, str]:
    """Which option of each config group this run used (``{"retriever": "bm25", ...}``).

    Taken from Hydra's runtime choices when running under ``@hydra.main``; otherwise (configs composed in
    tests or notebooks) the option whose ``_target_`` matches, found among ``conf/<group>/*.yaml``.
    """
    choices: dict[str, str] = {}
    try:
        from hydra.core.hydra_config import HydraConfig

        runtime = HydraConfig.get().runtime.choices
        choices = {g: str(runtime[g]) for g in GROUPS if runtime.get(g) not in (None, "null")}
    except (ValueError, ImportError):
        for group in GROUPS:
            node = cfg.get(group) if hasattr(cfg, "get") else None
            if hasattr(node, "get") and node.get("_target_"):
                name = _option_for(group, node)
                if name:
                    choices[group] = name
    return choices


def _option_spec(path: Path) -> dict[str, Any]:
    """An option file's own keys merged over the options it extends (same-group ``defaults`` entries)."""
    import yaml

    spec = yaml.safe_load(path.read_text()) or {}
    merged: dict[str, Any] = {}
    for entry in spec.pop("defaults", []) or []:
        if isinstance(entry, str) and entry != "_self_" and not entry.startswith("/"):
            merged.update(_option_spec(path.parent / f"{entry}.yaml"))
    merged.update(spec)
    return merged


def _option_for(group: str, node: Any) -> str | None:
    """The option of ``conf/<group>`` whose scalar keys all equal the composed node's (most keys wins)."""
    best, best_n = None, -1
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        spec = _option_spec(path)
        if spec.get("_target_") != node.get("_target_"):
            continue
        keys = [k for k, v in spec.items() if not isinstance(v, (dict, list)) and not (isinstance(v, str) and "${" in v)]
        if all(node.get(k) == spec[k] for k in keys) and len(keys) > best_n:
            best, best_n = path.stem, len(keys)
    return best


#: each stage group's option that changes nothing (left out of a pipeline's description)
NEUTRAL = {"chunker": "none", "decomposer": "none", "router": "none", "versions": "ignore", "reranker": "none"}


def describe(choices: Mapping[str, str]) -> str:
    """The pipeline a run's group options make, as a person names it: ``chunker=sections + router=rules`` or
    ``chunker=fixed_tokens + retriever=dense + versions=decay`` (options that change nothing left out; a router
    replaces the retriever and decomposer, which its routes choose)."""
    routed = choices.get("router", "none") not in ("none", "None", "null", "")
    first = ("router",) if routed else ("retriever", "decomposer")
    parts = [f"{g}={choices[g]}" for g in ("chunker", *first, "versions", "reranker")
             if choices.get(g) not in (None, "None", "null", "") and (g in first[:1] or choices[g] != NEUTRAL.get(g))]
    return " + ".join(parts) or "?"


def routes(resolved: Mapping[str, Any]) -> str:
    """A routed run's routes as a person reads them: ``simple→dense; exact_term→hybrid;
    multi_hop→hybrid+iterative_links`` (each route's retriever option and its decomposer, if any); "" unrouted."""
    router = resolved.get("router") or {}
    table = router.get("routes") if isinstance(router, Mapping) else None
    if not isinstance(table, Mapping) or not router.get("_target_"):
        return ""
    parts = []
    for name, route in table.items():
        route = route if isinstance(route, Mapping) else {}
        steps = []
        for group in ("retriever", "decomposer"):
            node = route.get(group)
            if isinstance(node, Mapping) and node.get("_target_"):
                option = _option_for(group, node) or str(node["_target_"]).rsplit(".", 1)[-1]
                if option != NEUTRAL.get(group):
                    steps.append(option)
        parts.append(f"{name}→{'+'.join(steps) or '?'}")
    return "; ".join(parts)

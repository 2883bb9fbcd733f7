"""Build a configured retrieval pipeline: the one builder every caller uses (the runner, the story, the
audit, the router's routes through :func:`retrievers.stage.compose`).

The pipeline is an ordered list of stages, each built from its config group's ``_target_``:

1. the first stage: ``router`` when one is set (its routes are pipelines of their own), else ``retriever``
   (a chunk-level retriever goes behind the chunk -> document adapter);
2. then every group named in ``pipeline`` (default ``[decomposer, versions, reranker]``), in order. Each
   option instantiates to a :class:`retrievers.stage.StageFactory` (``_partial_: true``, or an object
   with ``__call__(inner)``); options whose ``_target_`` is null are skipped, and ``none``-style
   factories return the stage before unchanged.

A new stage is one module (the class) plus one yaml (its options) in a group of ``pipeline``.
"""

from __future__ import annotations

from typing import Any, Sequence

from retrievers.infrastructure.errors import RetrieverError
from retrievers.stage import Stage, compose

#: stages after the first, in order, when the config has no ``pipeline`` key
DEFAULT_PIPELINE: tuple[str, ...] = ("decomposer", "versions", "reranker")


def _is_set(node: Any) -> bool:
    return node is not None and hasattr(node, "get") and bool(node.get("_target_"))


def router_rule(router_target: Any, decomposer_target: Any) -> str | None:
    """The one rule of routers and decomposers: with a router, each route sets its own decomposition, so the top-level
    decomposer must be none. The problem (naming the key), or None."""
    if router_target and decomposer_target and not str(decomposer_target).endswith("NoDecomposer"):
        return ("decomposer: with a router, decomposition is set per route (router.routes.<route>.decomposer); "
                "leave decomposer=none")
    return None


def stage_groups(cfg: Any) -> list[str]:
    """The config groups after the first stage, in pipeline order."""
    groups = cfg.get("pipeline") if hasattr(cfg, "get") else None
    return [str(g) for g in (groups if groups is not None else DEFAULT_PIPELINE)]


def build_pipeline(cfg: Any, *, aggregate: str | None = None, groups: Sequence[str] | None = None) -> Stage:
    """The pipeline a config describes. ``aggregate``: chunk -> document fold (default ``chunker.aggregate``)."""
    from hydra.utils import instantiate

    if aggregate is None:
        chunker = cfg.get("chunker")
        aggregate = str(chunker.get("aggregate", "max")) if hasattr(chunker, "get") else "max"
    groups = list(groups) if groups is not None else stage_groups(cfg)
    router = cfg.get("router")
    routed = _is_set(router)
    if routed:
        problem = router_rule(router.get("_target_"), (cfg.get("decomposer") or {}).get("_target_")
                              if hasattr(cfg.get("decomposer"), "get") else None)
        if problem:
            raise RetrieverError(problem)
        first = instantiate(router)
    else:
        if not _is_set(cfg.get("retriever")):
            raise RetrieverError("retriever: no retriever configured (retriever._target_ is missing)")
        first = instantiate(cfg.retriever)
    wrappers = []
    for group in groups:
        if group == "decomposer" and routed:
            continue  # per route
        node = cfg.get(group)
        if node is None:
            raise RetrieverError(f"pipeline: no config group {group!r} (pipeline lists {', '.join(groups)})")
        if _is_set(node):
            factory = instantiate(node)
            if not callable(factory):
                raise RetrieverError(f"{group}: {node.get('_target_')} is not a stage factory; wrapping stages are "
                                     "built with `_partial_: true` or are callables taking the stage before")
            wrappers.append(factory)
    return compose(first, wrappers, aggregate=aggregate)

"""Query-complexity routing: a deterministic classifier picks one retrieval strategy per query.

:class:`QueryRouter` reads only the query's surface (no retrieval call, no model): identifiers with
digits, section numbers and quoted names (exact-term signals, :mod:`retrievers.query_features`);
comparison forms and relative clauses with a head noun (multi-hop signals, the same rules the heuristic
decomposer uses); the count of capitalised entities joined by a conjunction; length; the wh-word. Each
rule can be switched off and its thresholds set in config. :class:`RoutingRetriever` sends each query to
its route's retriever (optionally wrapped in a decomposer) and logs the route per query.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Mapping, Sequence

from chunkers.types import Chunk, Query
from retrievers.decomposition import _BRIDGE, _COMPARE
from retrievers.stage import Stage, compose, count
from retrievers.types import Ranking, Run
from retrievers.query_features import IDENTIFIER, QUOTED, SECTION
from chunkers.options import Options, integer, one_of, optional

ROUTES = ("simple", "exact_term", "multi_hop")
_WH = re.compile(r"^\s*(what|which|who|whom|whose|when|where|why|how)\b", re.I)
_ENTITY = re.compile(r"\b[A-Z][\w'-]*(?:\s+(?:of|the|and|de|van|von)?\s*[A-Z][\w'-]*)*")
_CONJ = re.compile(r"\b(and|or)\b")


class QueryRouter:
    """``route(text) -> (route, reasons)``. Order: multi-hop signals, then exact-term signals, else simple.

    * ``comparison``: a comparison question form ("Which is older, X or Y?", "Are A and B both ...?");
    * ``relative_clause``: a noun phrase with a relative clause of at least ``min_clause_words`` words
      ("the team that owns the Encryption policy") — the mark of a bridge question;
    * ``entities``: at least ``min_entities`` capitalised entities with a conjunction between them
      (off by default: titles and product names trip it);
    * ``identifier`` / ``section_number`` / ``quoted_name``: exact-term signals;
    * ``long_query_words``: a query longer than this with a wh-word and a conjunction is multi-hop
      (null: off);
    * ``force``: send every query to this route (the fixed strategies the router is compared with).
    """

    OPTIONS: ClassVar[Options] = {"default": one_of(*ROUTES), "force": one_of(None, *ROUTES),
                                  "min_clause_words": integer(1), "min_entities": integer(1),
                                  "long_query_words": optional(integer(1))}

    def __init__(self, *, comparison: bool = True, relative_clause: bool = True, min_clause_words: int = 3,
                 entities: bool = False, min_entities: int = 2, identifier: bool = True, section_number: bool = True,
                 quoted_name: bool = True, long_query_words: int | None = None, default: str = "simple",
                 force: str | None = None) -> None:
        for key, value in (("default", default), ("force", force)):
            if value is not None and value not in ROUTES:
                raise ValueError(f"router.rules.{key} must be one of {'|'.join(ROUTES)}, got {value!r}")
        self.force = force
        self.comparison, self.relative_clause, self.min_clause_words = comparison, relative_clause, int(min_clause_words)
        self.entities, self.min_entities = entities, int(min_entities)
        self.identifier, self.section_number, self.quoted_name = identifier, section_number, quoted_name
        self.long_query_words = int(long_query_words) if long_query_words else None
        self.default = default

    def features(self, text: str) -> dict[str, Any]:
        text = text.strip()
        clause = _BRIDGE.search(text)
        entities = [e for e in _ENTITY.findall(text) if not _WH.match(e)]
        return {
            "comparison": any(p.match(text) for p in _COMPARE),
            "relative_clause": bool(clause and clause.start() > 0 and len(clause.group("clause").split()) >= self.min_clause_words),
            "entities": len(entities),
            "conjunction": bool(_CONJ.search(text)),
            "identifier": bool(IDENTIFIER.search(text)),
            "section_number": bool(SECTION.search(text)),
            "quoted_name": bool(QUOTED.search(text)),
            "words": len(text.split()),
            "wh": (_WH.match(text).group(1).lower() if _WH.match(text) else ""),
        }

    def route(self, text: str) -> tuple[str, list[str]]:
        if self.force:
            return self.force, ["forced"]
        f = self.features(text)
        multi = []
        if self.comparison and f["comparison"]:
            multi.append("comparison")
        if self.relative_clause and f["relative_clause"]:
            multi.append("relative_clause")
        if self.entities and f["entities"] >= self.min_entities and f["conjunction"]:
            multi.append("entities")
        if self.long_query_words and f["words"] > self.long_query_words and f["wh"] and f["conjunction"]:
            multi.append("long_query")
        if multi:
            return "multi_hop", multi
        exact = [k for k in ("identifier", "section_number", "quoted_name") if getattr(self, k) and f[k]]
        if exact:
            return "exact_term", exact
        return self.default, []


class RoutingRetriever:
    """``router=rules``: one pipeline per route, each composed like any other (its ``retriever``, then its
    ``decomposer``, by :func:`retrievers.stage.compose`); every query goes to exactly one route, decided
    before any retrieval call."""

    def __init__(self, *, rules: QueryRouter, routes: Mapping[str, Mapping[str, Any]], aggregate: str = "max") -> None:
        unknown = sorted(set(routes) - set(ROUTES))
        if unknown:
            raise ValueError(f"router.routes: unknown route(s) {unknown}; routes are {'|'.join(ROUTES)}")
        self.rules = rules
        self.routes: dict[str, Stage] = {name: compose(spec["retriever"], [spec.get("decomposer")], aggregate=aggregate)
                                         for name, spec in routes.items()}
        if rules.default not in self.routes:
            raise ValueError(f"router.rules.default={rules.default!r} has no entry in router.routes")
        self._route_stats: dict[str, dict[str, float]] = {}

    def index(self, chunks: Sequence[Chunk]) -> None:
        for r in self.routes.values():
            r.index(chunks)

    def route_of(self, text: str) -> tuple[str, list[str]]:
        route, reasons = self.rules.route(text)
        return (route if route in self.routes else self.rules.default), reasons

    def rank(self, queries: Sequence[Query], *, top_k: int) -> Ranking:
        groups: dict[str, list[Query]] = {}
        records: dict[str, dict[str, Any]] = {}
        for q in queries:
            route, reasons = self.route_of(q.text)
            groups.setdefault(route, []).append(q)
            records[q.id] = {"query_id": q.id, "route": route, "reasons": reasons}
        out: Run = {}
        lists: dict[str, list[dict[str, float]]] = {}
        calls: dict[str, float] = {}
        for route, qs in groups.items():
            result = self.routes[route].rank(qs, top_k=top_k)
            self._route_stats[route] = result.stats
            for q in qs:
                out[q.id] = result.run.get(q.id, {})
                lists[q.id] = list(result.chunk_lists.get(q.id, []))
                calls[q.id] = result.calls.get(q.id, 1.0)
                rec = records[q.id]
                if "subqueries" in result.records.get(q.id, {}):  # decomposed route: its sub-queries
                    rec["subqueries"] = result.records[q.id]["subqueries"]
                rec["retrieval_calls"] = count(calls[q.id])
        stats: dict[str, float] = {}
        for route_stats in self._route_stats.values():
            for k, v in route_stats.items():
                if k not in ("decomposed_share", "decomposed_queries"):
                    stats[k] = stats.get(k, 0.0) + v
        if records:
            for route in ROUTES:
                stats[f"route_share_{route}"] = sum(r["route"] == route for r in records.values()) / len(records)
        return Ranking(out, chunk_lists=lists, records=records, calls=calls, stats=stats)

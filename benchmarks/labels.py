"""The failure-mode vocabulary, defined once: what a dataset's queries may be labelled with and what the
audit may conclude. Imports nothing, so every layer (datasets, diagnosis, entry points) can read it."""

from __future__ import annotations

#: failure-mode labels a query may carry (``metadata.label``): the enterprise generator, queries files,
#: ``rbench-generate`` and the story table use them
LABELS: tuple[str, ...] = ("chunk_boundary", "exact_term", "multi_hop", "stale_version", "simple")

#: verdicts of the audit (runs and traces), in report order; ``routing`` only for router runs
VERDICTS: tuple[str, ...] = ("chunk_boundary", "wrong_passage", "exact_term", "multi_hop", "stale_version", "routing",
                             "other")

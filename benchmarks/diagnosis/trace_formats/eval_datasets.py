"""Evaluation datasets read as traces: Ragas ``EvaluationDataset`` rows (``user_input, retrieved_contexts, response,
reference``), the older Ragas layout (``question, contexts, answer, ground_truth``), DeepEval test cases and goldens
(``input, actual_output, expected_output, retrieval_context``); in JSON lines, JSON or CSV, a list column as JSON,
Python text, numpy's printed array, or DeepEval's ``|``-joined text."""

from __future__ import annotations

from typing import Any, Mapping

from benchmarks.diagnosis.records import reference_pieces
from benchmarks.diagnosis.trace_formats.common import list_cell

#: (layout, query, contexts, answer, reference) field names of the evaluation datasets read as traces
DATASET_LAYOUTS = (("ragas", "user_input", "retrieved_contexts", "response", "reference"),
                   ("ragas (question/contexts)", "question", "contexts", "answer", "ground_truth"),
                   ("deepeval", "input", "retrieval_context", "actual_output", "expected_output"))


def dataset_record(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """A row of an evaluation dataset (:data:`DATASET_LAYOUTS`: Ragas, its older layout, DeepEval) as
    ``{layout, query, contexts, answer, reference}``, or None for a record of another kind. ValueError for a row
    whose passages are not a list of strings."""
    for layout, q, c, a, r in DATASET_LAYOUTS:
        if q not in obj or c not in obj:
            continue
        contexts = list_cell(obj[c], "|" if layout == "deepeval" else None)
        if contexts is None:
            raise ValueError(f"field {c!r} must be a list of passages (a list, JSON or Python text), got "
                             f"{str(obj[c])[:60]!r}")
        ref = obj.get(r)
        if ref in (None, "") and layout.startswith("ragas ("):
            ref = list_cell(obj.get("ground_truths"))  # Ragas 0.0's plural
        pieces = reference_pieces(ref if ref != "" else None)
        if pieces is None:
            raise ValueError(f"field {r!r} must be a string or a list of strings, got {str(ref)[:60]!r}")
        answer = obj.get(a)
        return {"layout": layout, "query": obj[q], "contexts": [x for x in contexts if x.strip()],
                "answer": answer if isinstance(answer, str) and answer.strip() else None, "reference": pieces}
    return None

"""Reading what tracing tools export, as they write it: every record becomes :class:`Span` objects in one shape,
and the retriever spans among them become traces (:func:`benchmarks.diagnosis.traces.read_traces`).

Formats are a registry (:data:`FORMATS`): each family module (one per tool that writes traces) registers
(detect, read) pairs; :func:`spans_of` reads a record with the one format that claims it, and no two claim the
same record. Modules: :mod:`.otlp` (OTLP exports and spans, OpenInference/OpenLLMetry/GenAI attributes),
:mod:`.openinference` (Phoenix REST spans and span dataframes), :mod:`.mlflow_traces`, :mod:`.langsmith`,
:mod:`.langfuse`, :mod:`.eval_datasets` (Ragas, DeepEval), :mod:`.common` (the one span shape and value helpers).

The answer a trace generated comes from its LLM span: ``llm.output_messages.<i>.message.content`` (the last),
``gen_ai.completion.<i>.content``, else ``output.value`` when it is plain text (when it is JSON — LangChain's
``LLMResult`` — the generation's text inside it); an MLflow ``LLM``/``CHAT_MODEL`` span's outputs; LangSmith
``llm`` run ``generations``; a Langfuse ``GENERATION`` output. A reference comes from the retriever span or any
span of its trace: ``reference``, ``expected_output``, ``metadata.reference``, ``metadata.expected_output``
(``metadata`` may be a JSON string), LangSmith's ``extra.metadata.reference``, Langfuse's ``metadata.reference``,
Traceloop's association property ``reference``, MLflow's assessments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from benchmarks.datasets.limits import current as current_limits, size
from benchmarks.diagnosis.trace_formats import langfuse, langsmith, mlflow_traces, openinference, otlp
from benchmarks.diagnosis.trace_formats.common import (EXPECTED, QUERY_KEYS, FormatError, ReadReport, Span, TraceFormat,
                                                       answer_of, list_cell, query_of, text_or_none)
from benchmarks.diagnosis.trace_formats.eval_datasets import DATASET_LAYOUTS, dataset_record
from benchmarks.errors import DataError

__all__ = ["EXPECTED", "QUERY_KEYS", "DATASET_LAYOUTS", "FORMATS", "FormatError", "ReadReport", "Span", "TraceFormat",
           "answer_of", "claims", "dataset_record", "expand", "list_cell", "query_of", "read_parquet", "spans_of",
           "text_or_none"]

#: every span format read, by family
FORMATS: tuple[TraceFormat, ...] = (*otlp.FORMATS, *mlflow_traces.FORMATS, *langsmith.FORMATS, *langfuse.FORMATS,
                                    *openinference.FORMATS)


def claims(obj: Mapping[str, Any]) -> list[str]:
    """The names of the formats that say ``obj`` is theirs (one, or none for a trace record or an unknown one)."""
    return [f.name for f in FORMATS if f.detect(obj)]


def spans_of(obj: Mapping[str, Any], where: int | str) -> Iterator[Span] | None:
    """The spans one record holds, or None when the record is no span format (a trace record, or unknown).
    ValueError for a record of a known format whose structure is broken."""
    for fmt in FORMATS:
        if fmt.detect(obj):
            return fmt.read(obj, where)
    return None


def expand(obj: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The records inside an API response (``{"data": [...]}``: Phoenix's and Langfuse's), or None."""
    data = obj.get("data")
    if isinstance(data, list) and set(obj) <= {"data", "next_cursor", "meta", "nextCursor", "cursor"}:
        return [d for d in data if isinstance(d, Mapping)]
    return None


def read_parquet(path: Path) -> Iterable[tuple[int | str, dict[str, Any]]]:
    """The rows of a parquet file (Phoenix's spans dataframe saved with ``to_parquet``) as records."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading .parquet traces needs pyarrow (pip install pyarrow)", path=path) from None
    lim = current_limits()
    if path.stat().st_size > lim.json_file_bytes:  # read whole, like a .json file: bounded by the same limit
        raise DataError(f"a .parquet file larger than {size(lim.json_file_bytes)} (limits.json_file_mb; write the spans "
                        "as JSON lines to read them a line at a time)", path=path)
    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - a damaged or foreign file
        raise DataError(f"not a readable parquet file ({type(err).__name__}: {str(err)[:120]})", path=path) from None
    for i, row in enumerate(table.to_pylist(), 1):
        yield f"row {i}", {k: v for k, v in row.items() if v is not None}

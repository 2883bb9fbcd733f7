"""The audit's report, for runs and traces alike: the markdown summary, the self-contained HTML page with
the worst examples per verdict, and the files written for ``--out``."""

from __future__ import annotations

import csv
import html
import io
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.diagnosis.run_audit import agreement, confusion
from benchmarks.diagnosis.signals import DESCRIPTIONS, SIGNALS, as_rows, signal_table
from benchmarks.labels import LABELS, VERDICTS
from retrievers.infrastructure.safe_write import write_text

def summary_text(name: str, rows: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]],
                 labels: Mapping[str, str], signals: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
                 failed_what: str | None = None,
                 not_computed: Mapping[str, str] | None = None) -> str:
    counts = Counter(v["verdict"] for v in verdicts)
    judged = [r for r in rows if r.get("judged", True)]
    unjudged = len(rows) - len(judged)
    failed_what = failed_what or (f"a gold document outside the top {rows[0]['k'] if rows else '?'}, a gold span outside "
                                  "the context, or a superseded version first")
    lines = [f"## Retrieval audit: {name}", "",
             f"{len(judged)} judged queries, {len(verdicts)} failed ({failed_what})."
             + (f" {unjudged} unjudged queries get the label-free signals only." if unjudged else ""), "",
             "| verdict | failed queries |", "|---|---|"]
    lines += [f"| {v} | {counts.get(v, 0)} |" for v in VERDICTS]
    if any(labels.get(v["query_id"]) for v in verdicts):
        table = confusion(verdicts, labels)
        agree, n = agreement(verdicts, labels)
        lines += ["", f"Label (rows) vs audit verdict (columns), failed queries only. Labels were not read by "
                  f"the audit; agreement: {agree} of {n} ({agree / max(1, n):.0%}).", "",
                  "| label | " + " | ".join(VERDICTS) + " | failed |", "|---|" + "---|" * (len(VERDICTS) + 1)]
        for lab in LABELS:
            row = table.get(lab, Counter())
            lines.append(f"| {lab} | " + " | ".join(str(row.get(v, 0)) for v in VERDICTS) + f" | {sum(row.values())} |")
    if signals is not None:

        lines += [""] + signal_table(signals, len(rows), not_computed)
    return "\n".join(lines) + "\n"


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px}.sub{color:#5b6577;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #d8dde6;padding:4px 8px;text-align:right}
th{background:#eef1f6}td:first-child,th:first-child{text-align:left}.case{background:#fff;border:1px solid #d8dde6;
border-radius:8px;padding:12px 14px;margin:12px 0}.q{font-weight:600;font-size:14px}.v{display:inline-block;
border-radius:10px;padding:1px 9px;font-size:12px;color:#fff;margin-right:6px}.ev{font-size:13px;color:#39424e;margin:6px 0}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:14px}.col h3{font-size:13px;margin:4px 0;color:#5b6577}
.hit{font-size:12px;border-left:3px solid #c5ccd8;padding:3px 8px;margin:4px 0;background:#f6f8fb}
.hit.gold{border-color:#2e9d5b;background:#eef8f1}.miss{border-color:#c0392b;background:#fbefed}.t{color:#5b6577}
mark{background:#ffe58a;padding:0 1px}.gap{margin-top:3px;color:#8a2b20}.gap del{text-decoration:none;background:#fbe0dc}"""

#: characters of context shown around the evidence a retrieved passage holds, and the most of a marked or missing
#: piece shown before its middle is cut
AROUND, LONGEST = 90, 360


def _cut(text: str, n: int = LONGEST) -> str:
    return text if len(text) <= n else f"{text[: n // 2 - 2]} … {text[-(n // 2 - 2):]}"


def evidence_marks(text: str, offset: int, spans: Sequence[Mapping[str, Any]], source: str) -> tuple[list[tuple[int, int]], list[str]]:
    """The parts of gold ``spans`` (offsets into ``source``, the document's text) that a passage holds — ranges
    into ``text``, the passage's own text, which starts at ``offset`` of the document — and the parts of those
    spans it misses (their text), for a span it holds only in part."""
    marks, missing = [], []
    end = offset + len(text)
    for sp in spans:
        a, b = max(sp["start"], offset), min(sp["end"], end)
        if a >= b:
            continue
        marks.append((a - offset, b - offset))
        # a part without a letter or digit (the span's closing full stop) is not evidence a reader would miss
        missing += [piece for piece in (source[sp["start"]:a], source[b:sp["end"]]) if any(c.isalnum() for c in piece)]
    return sorted(marks), missing


def reference_marks(text: str, pieces: Sequence[str], least: int = 20) -> tuple[list[tuple[int, int]], list[str]]:
    """For a trace's passage: the longest stretch of each reference piece found in ``text`` (case-insensitive,
    at least ``least`` characters, or the whole of a shorter piece), and the rest of a piece found in part."""
    from difflib import SequenceMatcher

    marks, missing = [], []
    low = text.lower()
    for piece in pieces:
        m = SequenceMatcher(None, low, piece.lower(), autojunk=False).find_longest_match(0, len(low), 0, len(piece))
        if m.size == 0 or m.size < min(least, len(piece)):
            continue
        marks.append((m.a, m.a + m.size))
        missing += [rest for rest in (piece[:m.b], piece[m.b + m.size:]) if sum(c.isalnum() for c in rest) > 2]
    return sorted(marks), missing


def marked_html(text: str, marks: Sequence[tuple[int, int]], missing: Sequence[str], n: int = 220) -> str:
    """A passage's preview: without marks its first ``n`` characters; with them, the marked evidence
    (``<mark>``) with :data:`AROUND` characters either side, then each missing part of the evidence beside it."""
    esc = html.escape
    if not marks:
        return esc(text[:n] + ("…" if len(text) > n else ""))
    lo, hi = max(0, marks[0][0] - AROUND), min(len(text), marks[-1][1] + AROUND)
    out, at = ["…" if lo > 0 else ""], lo
    for a, b in marks:
        a = max(a, at)
        if a >= b:
            continue
        out += [esc(_cut(text[at:a])), f"<mark>{esc(_cut(text[a:b]))}</mark>"]
        at = b
    out += [esc(text[at:hi]), "…" if hi < len(text) else ""]
    out += [f"<div class='gap'>missing from this passage: <del>{esc(_cut(' '.join(piece.split())))}</del></div>"
            for piece in missing]
    return "".join(out)


COLORS = {"chunk_boundary": "#8e44ad", "wrong_passage": "#c0392b", "exact_term": "#d35400", "multi_hop": "#2471a3", "stale_version": "#b7950b",
          "routing": "#16a085", "other": "#7f8c8d"}


def html_report(title: str, rows: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]],
                labels: Mapping[str, str], docs: Mapping[str, Any], summary_md: str, *, per_verdict: int = 3,
                signals: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
                not_computed: Mapping[str, str] | None = None) -> str:
    """Self-contained HTML (inline CSS, no scripts or external assets). A retrieved item may carry its own
    ``text`` (a trace's passage) instead of pointing into ``docs``; a row may carry ``trace`` (reference,
    where the evidence was, which fix finds it)."""
    esc = html.escape
    by_q = {r["query_id"]: r for r in rows}

    def snippet(doc_id: str, start: int | None = None, end: int | None = None, n: int = 220, text: str | None = None) -> str:
        if text is None:
            d = docs.get(doc_id)
            if d is None:
                return ""
            text = d.text[start:end] if start is not None else d.text
        return esc(text[:n] + ("…" if len(text) > n else ""))

    def preview(h: Mapping[str, Any], row: Mapping[str, Any] | None) -> str:
        """The passage's text with the gold evidence it holds marked and the part it misses beside it."""
        if h.get("text") is not None:  # a trace's passage: its reference, found in its text
            trace = (row or {}).get("trace") or {}
            return marked_html(h["text"], *reference_marks(h["text"], trace.get("reference") or []))
        d = docs.get(h["doc_id"])
        if d is None:
            return ""
        start, end = (h["start"], h["end"]) if h.get("start") is not None else (0, len(d.text))
        spans = [sp for sp in (row or {}).get("spans", []) if sp["doc_id"] == h["doc_id"]]
        return marked_html(d.text[start:end], *evidence_marks(d.text[start:end], start, spans, d.text))

    def hit(h: Mapping[str, Any], row: Mapping[str, Any] | None = None) -> str:
        extra = f" [{h['start']}:{h['end']}]" if "start" in h else ""
        body = preview(h, row)
        title = esc(docs[h["doc_id"]].title) if h["doc_id"] in docs else ""
        score = f" · {h['score']:.3f}" if isinstance(h.get("score"), (int, float)) else ""
        route = h.get("attributed")  # a trace's passage: how its document was found
        how = (f" · in {len(h['candidates'])} documents: {esc(', '.join(h['candidates']))}" if route == "ambiguous"
               else " · in no corpus document" if route == "unmapped" else f" · by {route}" if route else "")
        return (f"<div class='hit{' gold' if h.get('gold') else ''}'><b>#{h['rank']}</b> {esc(h['doc_id'])}{extra} "
                f"<span class='t'>{title}{score}{how}</span><br>{body}</div>")

    counts = Counter(v["verdict"] for v in verdicts)
    judged = sum(1 for r in rows if r.get("judged", True))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1><div class='sub'>{judged} judged queries · {len(verdicts)} failed · "
             + (f"{len(rows) - judged} unjudged (signals only) · " if len(rows) > judged else "")
             + "verdicts computed without the dataset's labels</div>", "<h2>Verdicts</h2><table><tr><th>verdict</th><th>failed</th></tr>"]
    parts += [f"<tr><td><span class='v' style='background:{COLORS[v]}'>{v}</span></td><td>{counts.get(v, 0)}</td></tr>" for v in VERDICTS]
    parts.append("</table>")
    if any(labels.get(v["query_id"]) for v in verdicts):
        table = confusion(verdicts, labels)
        agree, n = agreement(verdicts, labels)
        parts.append(f"<h2>Label vs verdict</h2><div class='sub'>agreement {agree} of {n} ({agree / max(1, n):.0%})</div>"
                     "<table><tr><th>label \\ verdict</th>" + "".join(f"<th>{v}</th>" for v in VERDICTS) + "</tr>")
        for lab in LABELS:
            row = table.get(lab, Counter())
            parts.append(f"<tr><td>{lab}</td>" + "".join(
                f"<td style='{'font-weight:700;background:#eef8f1' if v == lab and row.get(v) else ''}'>{row.get(v, 0)}</td>"
                for v in VERDICTS) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Worst examples</h2>")
    for verdict in VERDICTS:
        cases = [v for v in verdicts if v["verdict"] == verdict]
        # worst first: fewest gold documents found, then the lowest-ranked gold
        cases.sort(key=lambda v: (len(by_q[v["query_id"]]["gold_in_top_k"]), v["query_id"]))
        for v in cases[:per_verdict]:
            row = by_q[v["query_id"]]
            gold = set(row["gold_docs"])
            lab = labels.get(v["query_id"])
            parts.append(f"<div class='case'><div><span class='v' style='background:{COLORS[verdict]}'>{verdict}</span>"
                         f"<span class='q'>{esc(row['query'])}</span>"
                         + (f" <span class='t'>(label: {esc(lab)})</span>" if lab else "")
                         + (f" <span class='t'>route: {esc(row['route'])}</span>" if row.get("route") else "")
                         + f"</div><div class='ev'>{esc(v['evidence'])}</div><div class='cols'><div class='col'><h3>Retrieved (top 5)</h3>")
            items = row.get("chunks") or row["docs"]
            parts += [hit(h, row) for h in items[:5]]
            parts.append("</div><div class='col'><h3>Missed</h3>")
            trace = row.get("trace")
            if trace:
                for piece in trace["reference"]:
                    parts.append(f"<div class='hit miss'><b>reference</b> <span class='t'>not in the context</span><br>{esc(piece[:300])}</div>")
                for key in ("where", "fix"):
                    if trace.get(key):
                        parts.append(f"<div class='hit'><b>{key}</b><br>{esc(trace[key])}</div>")
            # a document an ambiguous passage may be from is not called missing (traces: its text is in several)
            missing = sorted(gold - set(row["gold_in_top_k"]) - set(row.get("maybe_in_top_k", ())))
            where = "no passage is from it" if trace else f"gold document not in the top {row['k']}"
            for d in missing:
                parts.append(f"<div class='hit miss'><b>{esc(d)}</b> <span class='t'>{where}</span><br>{snippet(d)}</div>")
            for s in row.get("spans", []):
                if not s["in_context"]:
                    rank = s.get("chunk_rank", 0)  # runs logged before #21 carry no chunk rank
                    why = ("split across chunks" if s["split"] else "outside the context budget" if rank == 0
                           else "in no retrieved chunk" if rank is None
                           else f"in the chunk at rank {rank}, outside the top {row['k']} chunks" if rank > row["k"]
                           else f"in the chunk at rank {rank}, beyond the context budget")
                    parts.append(f"<div class='hit miss'><b>{esc(s['doc_id'])} [{s['start']}:{s['end']}]</b> <span class='t'>gold span "
                                 f"{why}</span><br>{snippet(s['doc_id'], s['start'], s['end'])}</div>")
            if not trace and not missing and not any(not s["in_context"] for s in row.get("spans", [])):
                parts.append("<div class='hit'>all gold evidence retrieved; see the verdict</div>")
            parts.append("</div></div></div>")
    if signals is not None:

        fired = Counter(name for sigs in signals.values() for name in {x["signal"] for x in sigs})
        parts.append(f"<h2>Label-free signals</h2><div class='sub'>computed for all {len(rows)} queries, judged or not</div>"
                     "<table><tr><th>signal</th><th>queries</th><th>what it means</th></tr>")
        skip = not_computed or {}
        parts += [f"<tr><td>{n}</td><td>{'not computed' if n in skip else fired.get(n, 0)}</td><td style='text-align:left'>"
                  f"{esc(DESCRIPTIONS[n])}{' — ' + esc(skip[n]) if n in skip else ''}</td></tr>" for n in SIGNALS]
        parts.append("</table>")
        for name in SIGNALS:
            shown = [(qid, x) for qid, sigs in signals.items() for x in sigs if x["signal"] == name][:per_verdict]
            for qid, x in shown:
                row = by_q.get(qid, {})
                parts.append(f"<div class='case'><div><span class='v' style='background:#34495e'>{name}</span>"
                             f"<span class='q'>{esc(row.get('query', qid))}</span></div><div class='ev'>{esc(x['evidence'])}</div>")
                parts += [hit(h, row) for h in (row.get("chunks") or row.get("docs") or [])[:3]]
                parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def write_outputs(out: Path, text: str, fields: Sequence[str], table: Sequence[Mapping[str, Any]],
                  signals: Mapping[str, Any], page: str) -> None:
    """``<out>.md`` (the summary), ``<out>.csv`` (one row per verdict or trace), ``<out>.signals.csv`` and the
    self-contained ``<out>.html`` (each whole or not at all, secrets masked: ``retrievers.infrastructure.safe_write``)."""

    write_text(out.with_suffix(".md"), text, what="the audit")
    write_text(out.with_suffix(".csv"), _csv(fields, table), what="the audit")
    write_signals(out, signals)
    write_text(out.with_suffix(".html"), page, what="the audit")
    names = [out.with_suffix(x) for x in (".md", ".csv", ".signals.csv", ".html")]
    print(f"wrote {', '.join(map(str, names[:3]))} and {names[3]}", file=sys.stderr)


def _csv(fields: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_signals(out: Path, signals: Mapping[str, Sequence[Mapping[str, str]]]) -> None:
    write_text(out.with_suffix(".signals.csv"), _csv(["query_id", "signal", "evidence"], as_rows(signals)),
               what="the audit")

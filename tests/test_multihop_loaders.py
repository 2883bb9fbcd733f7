"""HotpotQA (both schemas) and MuSiQue readers: pooled paragraphs, deterministic ids, evidence spans."""

import json

import pytest

from benchmarks.datasets.base import paragraph_id
from benchmarks.datasets.multihop import HotpotQALoader, MuSiQueLoader
from benchmarks.errors import DataError

OFFICIAL = [
    {"_id": "h1", "question": "Which city is Alpha's twin?", "answer": "Beta", "type": "bridge", "level": "easy",
     "supporting_facts": [["Alpha", 1], ["Beta", 0]],
     "context": [["Alpha", ["Alpha is a town.", " Its twin is Beta."]], ["Beta", ["Beta is a city."]],
                 ["Gamma", ["Gamma is unrelated."]]]},
    {"_id": "h2", "question": "Is Beta older than Alpha?", "answer": "no", "type": "comparison", "level": "hard",
     "supporting_facts": [["Beta", 0], ["Alpha", 0]],
     # same title "Alpha", different paragraph text: must stay a separate document
     "context": [["Alpha", ["Alpha was founded in 1200."]], ["Beta", ["Beta is a city."]]]},
]


def to_hf(rec):
    return {"id": rec["_id"], "question": rec["question"], "answer": rec["answer"], "type": rec["type"],
            "level": rec["level"],
            "supporting_facts": {"title": [t for t, _ in rec["supporting_facts"]],
                                 "sent_id": [i for _, i in rec["supporting_facts"]]},
            "context": {"title": [t for t, _ in rec["context"]], "sentences": [s for _, s in rec["context"]]}}


@pytest.fixture
def hotpot_files(tmp_path):
    official = tmp_path / "hotpot.json"
    official.write_text(json.dumps(OFFICIAL))
    hf = tmp_path / "hotpot_hf.jsonl"
    hf.write_text("".join(json.dumps(to_hf(r)) + "\n" for r in OFFICIAL))
    return official, hf


def test_official_and_hf_schemas_agree(hotpot_files):
    a = HotpotQALoader(path=str(hotpot_files[0])).load()
    b = HotpotQALoader(path=str(hotpot_files[1])).load()
    assert [d.id for d in a.corpus] == [d.id for d in b.corpus]
    assert a.qrels == b.qrels
    assert [q.metadata["evidence"] for q in a.queries] == [q.metadata["evidence"] for q in b.queries]


def test_pooling_ids_and_spans(hotpot_files):
    ds = HotpotQALoader(path=str(hotpot_files[0])).load()
    assert len(ds.corpus) == 4  # Alpha x2 (different texts), Beta pooled once, Gamma
    assert all(" " not in d.id for d in ds.corpus)
    alpha1 = paragraph_id("Alpha", "Alpha is a town. Its twin is Beta.")
    alpha2 = paragraph_id("Alpha", "Alpha was founded in 1200.")
    beta = paragraph_id("Beta", "Beta is a city.")
    assert alpha1 != alpha2
    assert ds.qrels == {"h1": {alpha1: 1, beta: 1}, "h2": {beta: 1, alpha2: 1}}
    docs = {d.id: d for d in ds.corpus}
    ev = ds.queries[0].metadata["evidence"][0]
    assert docs[ev["doc_id"]].text[ev["start"]:ev["end"]] == " Its twin is Beta."
    assert ds.queries[0].metadata["type"] == "bridge" and ds.queries[1].metadata["level"] == "hard"
    assert ds.queries[0].metadata["answer"] == "Beta"


def test_bad_hotpot_record(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(OFFICIAL[0]) + "\n" + json.dumps({"_id": "x", "question": "q?"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing field 'context'"):
        HotpotQALoader(path=str(bad)).load()


def test_hub_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from retrievers.infrastructure import hub

    hub.hub_reachable.cache_clear()
    with pytest.raises(DataError, match="looks offline. Pass dataset.path"):
        HotpotQALoader().load()
    hub.hub_reachable.cache_clear()


def test_musique_native(tmp_path):
    rec = {"id": "2hop__1_2", "question": "Who founded the publisher of J?", "answer": "Ann", "answer_aliases": [],
           "answerable": True,
           "paragraphs": [{"idx": 0, "title": "J", "paragraph_text": "J is published by P.", "is_supporting": True},
                          {"idx": 1, "title": "P", "paragraph_text": "P was founded by Ann.", "is_supporting": True},
                          {"idx": 2, "title": "Z", "paragraph_text": "Noise.", "is_supporting": False}],
           "question_decomposition": [{"id": 1, "question": "Who publishes J?", "answer": "P", "paragraph_support_idx": 0},
                                      {"id": 2, "question": "Who founded #1 ?", "answer": "Ann", "paragraph_support_idx": 1}]}
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    ds = MuSiQueLoader(path=str(path)).load()
    j, p = paragraph_id("J", "J is published by P."), paragraph_id("P", "P was founded by Ann.")
    assert ds.qrels == {"2hop__1_2": {j: 1, p: 1}}
    meta = ds.queries[0].metadata
    assert meta["hops"] == 2 and [s["doc_id"] for s in meta["question_decomposition"]] == [j, p]
    with pytest.raises(DataError, match="needs dataset.path"):
        MuSiQueLoader().load()


def test_shared_samples(shared_data):
    hp = HotpotQALoader(path=str(shared_data / "hotpotqa" / "hotpot_train_sample100.json")).load()
    assert len(hp.queries) == 100 and all(len(r) == 2 for r in hp.qrels.values())
    assert {q.metadata["type"] for q in hp.queries} == {"bridge", "comparison"}
    mq = MuSiQueLoader(path=str(shared_data / "musique" / "musique_train_sample100.json")).load()
    assert len(mq.queries) == 100
    assert all(len(mq.qrels[q.id]) == q.metadata["hops"] for q in mq.queries)

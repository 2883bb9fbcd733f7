"""The BEIR reader: what it keeps, and a clear error (file and line) for each kind of bad input."""

import http.server
import json
import threading
import zipfile

import pytest

from benchmarks.datasets.beir import BeirLoader
from benchmarks.errors import DataError
from conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir


def test_loads_folder_keeps_metadata_and_ids_with_spaces(tiny_beir):
    ds = BeirLoader(path=str(tiny_beir)).load()
    assert [d.id for d in ds.corpus] == ["d1", "d2", "d3", "doc with spaces", "d5"]
    assert ds.corpus[2].metadata["version"] == 2
    assert ds.corpus[4].text == ""  # empty text is not an error
    assert [q.id for q in ds.queries] == ["q1", "q2"]  # only judged queries of the split
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"doc with spaces": 2, "d2": 1}}
    assert ds.notes["unjudged_queries_left_out"] == 1
    assert len(ds.fingerprint()) == 16


def test_the_summary_counts_agree_on_queries_left_out_and_skipped(tiny_beir, capsys):
    """#36: "0 skipped (no relevant judgments)" was followed by "queries without judgments: 1" for a query the loader
    never ran: the note now says the query was left out, and the skipped count is this split's own."""
    from benchmarks.evaluation.metrics import evaluate
    from benchmarks.run.runner import print_summary

    ds = BeirLoader(path=str(tiny_beir)).load()
    ev = evaluate(ds.qrels, {q.id: {"d1": 1.0} for q in ds.queries}, [1, 10])
    print_summary(ds, ev, [1, 10], "t", {}, "")
    out = capsys.readouterr().out
    assert "2 queries scored, 0 skipped (no relevant judgments)" in out
    assert "note: unjudged queries left out: 1" in out and "queries without judgments" not in out


def test_fingerprint_tracks_content(tmp_path):
    a = BeirLoader(path=str(write_beir(tmp_path / "a", TINY_CORPUS, TINY_QUERIES, TINY_QRELS))).load()
    changed = [dict(d) for d in TINY_CORPUS]
    changed[0]["text"] += " More."
    b = BeirLoader(path=str(write_beir(tmp_path / "b", changed, TINY_QUERIES, TINY_QRELS))).load()
    c = BeirLoader(path=str(write_beir(tmp_path / "c", TINY_CORPUS, TINY_QUERIES, TINY_QRELS))).load()
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == c.fingerprint()


def test_limit_and_tune_split(tmp_path):
    folder = write_beir(tmp_path / "t", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td3\t1\n")
    ds = BeirLoader(path=str(folder), limit=1, tune_split="train").load()
    assert [q.id for q in ds.queries] == ["q1"] and list(ds.qrels) == ["q1"]
    assert [q.id for q in ds.tune_queries] == ["q3"] and ds.tune_qrels == {"q3": {"d3": 1}}


def _expect(folder, match, **kwargs):
    with pytest.raises(DataError, match=match):
        BeirLoader(path=str(folder), **kwargs).load()


def test_malformed_json_line(tiny_beir):
    with open(tiny_beir / "corpus.jsonl", "a") as fh:
        fh.write('{"_id": "d6", "text": "unterminated\n')
    _expect(tiny_beir, r"corpus.jsonl:6: malformed JSON")


def test_missing_field(tiny_beir):
    with open(tiny_beir / "queries.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "q9"}) + "\n")
    _expect(tiny_beir, r"queries.jsonl:4: missing field 'text'")


def test_duplicate_doc_id(tiny_beir):
    with open(tiny_beir / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "d2", "text": "again"}) + "\n")
    _expect(tiny_beir, r"corpus.jsonl:6: duplicate doc id 'd2' \(first on line 2\)")


def test_unknown_doc_in_qrels_strict_and_lenient(tiny_beir):
    with open(tiny_beir / "qrels" / "test.tsv", "a") as fh:
        fh.write("q1\tnope\t1\n")
    _expect(tiny_beir, r"test.tsv:5: doc id 'nope' is not in .*corpus.jsonl")
    ds = BeirLoader(path=str(tiny_beir), strict=False).load()
    assert ds.notes["qrels_dropped_unknown_doc"] == 1
    assert ds.qrels["q1"] == {"d1": 1}


def test_unknown_query_in_qrels(tiny_beir):
    with open(tiny_beir / "qrels" / "test.tsv", "a") as fh:
        fh.write("q404\td1\t1\n")
    _expect(tiny_beir, r"test.tsv:5: query id 'q404' is not in .*queries.jsonl")


def test_empty_corpus(tmp_path):
    folder = write_beir(tmp_path / "e", [], TINY_QUERIES, [])
    _expect(folder, r"corpus.jsonl: empty corpus")


def test_missing_split_names_available(tiny_beir):
    _expect(tiny_beir, r"no qrels for split 'dev'; dataset.split must be one of: test", split="dev")


def test_bad_qrels_columns(tiny_beir):
    with open(tiny_beir / "qrels" / "test.tsv", "a") as fh:
        fh.write("q1\td1\n")
    _expect(tiny_beir, r"test.tsv:5: expected 3 tab-separated columns")


def test_unknown_name_with_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # works even as root, unlike chmod
    with pytest.raises(DataError, match=r"dataset 'nfcorpus' is not on disk and cannot be downloaded there: .* not writable"):
        BeirLoader(name="nfcorpus", data_dir=str(blocker / "data")).load()


def test_unknown_name_download_fails_clearly(tmp_path):
    # a closed local port stands in for an unreachable server: nothing leaves the machine
    with pytest.raises(DataError, match=r"dataset 'nosuch' is not under .* and downloading .* failed"):
        BeirLoader(name="nosuch", data_dir=str(tmp_path), url="http://127.0.0.1:9/{name}.zip").load()
    assert not any((tmp_path / "beir").iterdir())  # nothing partial left behind


@pytest.fixture
def zip_server(tmp_path):
    server, url = _serve(_tiny_zip(tmp_path, "tinyset"))
    yield url
    server.shutdown()


def test_download_with_beir_from_local_zip(tmp_path, zip_server):
    data = tmp_path / "data"
    ds = BeirLoader(name="tinyset", data_dir=str(data), url=zip_server).load()
    assert (data / "beir" / "tinyset" / "corpus.jsonl").is_file()
    assert len(ds.corpus) == 5 and ds.qrels["q2"]["doc with spaces"] == 2
    assert [p.name for p in (data / "beir").iterdir()] == ["tinyset"]  # no temp folders or zips left
    # second load reads from disk, no server needed
    ds2 = BeirLoader(name="tinyset", data_dir=str(data), url="http://127.0.0.1:9/{name}.zip").load()
    assert ds2.fingerprint() == ds.fingerprint()


def test_shared_scifact_loads(shared_data):
    ds = BeirLoader(name="scifact", data_dir=str(shared_data)).load()
    assert len(ds.corpus) == 5183 and len(ds.queries) == 300
    assert sum(len(r) for r in ds.qrels.values()) == 339


def test_shared_cisi_and_cranfield(shared_data):
    cisi = BeirLoader(name="cisi", data_dir=str(shared_data)).load()
    assert len(cisi.queries) == 76 and cisi.notes["unjudged_queries_left_out"] == 112 - 76
    cran = BeirLoader(name="cranfield", data_dir=str(shared_data)).load()
    assert sum(1 for d in cran.corpus if not d.text.strip()) == 2


# ------------------------------------------------------------------------------------------ checked downloads (#27)
def _serve(folder):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(folder), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/{{name}}.zip"


def _tiny_zip(tmp_path, name: str, extra=None):
    src = write_beir(tmp_path / "src" / name, TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    with zipfile.ZipFile(served / f"{name}.zip", "w") as zf:
        for path in src.rglob("*"):
            zf.write(path, path.relative_to(src.parent))
        if extra:
            extra(zf)
    return served


def test_download_is_checked_against_the_published_md5(tmp_path):
    """scifact has a published MD5 (BEIR's README); a mirror serving other bytes under that name is refused, naming
    the file, and nothing is left under data_dir."""
    import hashlib

    from benchmarks.datasets.beir import published_md5

    assert published_md5("scifact") == "5f7d1de60b170fc8027bb7898e2efca1"
    served = _tiny_zip(tmp_path, "scifact")
    assert hashlib.md5((served / "scifact.zip").read_bytes()).hexdigest() != published_md5("scifact")
    server, url = _serve(served)
    try:
        with pytest.raises(DataError, match=r"scifact\.zip: the download of .* does not match BEIR's published MD5"):
            BeirLoader(name="scifact", data_dir=str(tmp_path / "data"), url=url).load()
    finally:
        server.shutdown()
    assert list((tmp_path / "data" / "beir").iterdir()) == []


def test_a_matching_checksum_is_accepted(tmp_path, monkeypatch):
    import hashlib

    from benchmarks.datasets import beir

    served = _tiny_zip(tmp_path, "tinyset")
    digest = hashlib.md5((served / "tinyset.zip").read_bytes()).hexdigest()
    monkeypatch.setattr(beir, "published_md5", lambda name: digest if name == "tinyset" else None)
    server, url = _serve(served)
    try:
        ds = BeirLoader(name="tinyset", data_dir=str(tmp_path / "data"), url=url).load()
    finally:
        server.shutdown()
    assert len(ds.corpus) == 5


@pytest.mark.parametrize("member, why", [
    ("../escaped.txt", "outside its folder"), ("/abs/escaped.txt", "outside its folder"),
    ("tinyset/link", "not a file or folder"),
])
def test_extraction_keeps_every_member_inside_its_folder(tmp_path, member, why):
    def add(zf):
        info = zipfile.ZipInfo(member)
        if member.endswith("link"):
            info.external_attr = (0o120777 << 16)  # a symbolic link, as zip tools store one
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr(info, "payload")

    served = _tiny_zip(tmp_path, "tinyset", add)
    server, url = _serve(served)
    try:
        with pytest.raises(DataError, match=why):
            BeirLoader(name="tinyset", data_dir=str(tmp_path / "data"), url=url).load()
    finally:
        server.shutdown()
    assert list((tmp_path / "data" / "beir").iterdir()) == []
    assert not (tmp_path / "data" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_a_zip_bomb_is_stopped_while_extracting(tmp_path):
    from benchmarks.datasets.beir import safe_extract

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb/corpus.jsonl", b"0" * (300 << 20))  # 300 MB of zeros: ~300 KB compressed
    with pytest.raises(DataError, match="expands to more than 100 times its size"):
        safe_extract(archive, tmp_path / "out", "file://bomb.zip")


def test_an_unknown_name_gets_the_closest_local_and_beir_names_before_any_download(tmp_path, monkeypatch):
    """``dataset.name=scifakt`` is a typo, not a download (#24): the message offers the folders on disk and the
    collections the BEIR mirror publishes; nothing is fetched."""
    import benchmarks.datasets.beir as beir

    (tmp_path / "beir" / "scifact").mkdir(parents=True)
    monkeypatch.setattr(beir, "download", lambda *a, **k: pytest.fail("a download was tried"))
    with pytest.raises(DataError, match=r"dataset\.name: 'scifakt' is neither a folder under .*beir nor a BEIR "
                                        r"collection; did you mean 'scifact'\? On disk: scifact\. BEIR: arguana"):
        beir.BeirLoader(name="scifakt", data_dir=str(tmp_path)).load()
    called = []
    monkeypatch.setattr(beir, "download", lambda name, *a, **k: called.append(name) or (tmp_path / "beir" / "scifact"))
    with pytest.raises(DataError):  # a known BEIR name is downloaded (here: the stand-in, whose folder is empty)
        beir.BeirLoader(name="nfcorpus", data_dir=str(tmp_path)).load()
    assert called == ["nfcorpus"]

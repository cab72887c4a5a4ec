"""Migrations between stores (FAISS <-> Milvus, FAISS <-> Qdrant) and collections built in an external store through
the Project and the CLI: real Milvus server, Qdrant local mode, the bundled model on 50 SciFact sample documents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedops.cli.main import app
from embedops.errors import InputError
from embedops.index import Collection, FaissStore, IndexSpec
from embedops.index.migrate import MigrationError, checksum, migrate
from embedops.index.stores import connect, create_store, leftovers, open_collection, open_store

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "embedops" / "samples" / "scifact-mini"
runner = CliRunner()
QUERIES = ["vitamin D and diabetes", "stem cells in the bone marrow", "gene expression in cancer"]


@pytest.fixture(scope="module")
def docs50(encoder):
    """50 real SciFact sample documents (title + the start of the abstract) with metadata, and their vectors."""
    rows = [json.loads(line) for line in (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:50]]
    docs = [{"id": str(r["_id"]), "text": f"{r.get('title', '')} {r['text'][:200]}".strip(),
             "metadata": {"year": 2000 + i % 10, "topic": ("cells", "genes")[i % 2], "score": i / 3}}
            for i, r in enumerate(rows)]
    return docs, encoder.encode([d["text"] for d in docs], kind="document")


def same_hits(a: Collection, b: Collection, flt=None) -> None:
    for query in QUERIES:
        ha, hb = a.search(query, 5, flt), b.search(query, 5, flt)
        assert [h.id for h in ha] == [h.id for h in hb], query
        np.testing.assert_allclose([h.score for h in ha], [h.score for h in hb], atol=1e-5)
        assert [(h.text, h.metadata) for h in ha] == [(h.text, h.metadata) for h in hb]


def test_faiss_to_milvus_and_back_keeps_every_document_and_answer(milvus_url, docs50, encoder, loader, tmp_path):
    docs, vecs = docs50
    source = Collection.build(tmp_path / "source", encoder, docs, vectors=vecs, spec=IndexSpec(kind="flat"))
    there = migrate("faiss", tmp_path / "source", milvus_url, "roundtrip")
    assert there["documents"] == 50 and len(there["checksum"]) == 64
    remote = open_collection(milvus_url, "roundtrip", loader=loader)
    try:
        assert len(remote) == 50 and remote.model == source.model  # the encoder record travelled
        same_hits(source, remote, {"topic": "genes"})
        # Back through the CLI, into a folder.
        res = runner.invoke(app, ["index", "migrate", "roundtrip", str(tmp_path / "back"), "--from", milvus_url,
                                  "--to", "faiss", "--json"])
        assert res.exit_code == 0, res.output
        back_report = json.loads(res.output)
        assert back_report["checksum"] == there["checksum"] and back_report["documents"] == 50
        back = Collection.open(tmp_path / "back", loader=loader)
        same_hits(source, back, {"year": {"gte": 2005}})
        word = docs[0]["text"].split()[0]
        assert docs[0]["id"] in {h.id for h in back.search(word, 5, mode="keyword")}  # built before publishing
        back.close()
    finally:
        remote.close()
        source.close()
    assert leftovers(milvus_url, "roundtrip") == []


def test_a_project_file_points_the_same_calls_at_qdrant(docs50, tmp_path):
    from embedops import Project

    (tmp_path / "embedops.yaml").write_text("index:\n  path: scifact\n  store: qdrant://qdrant-data\n  kind: flat\n")
    project = Project.open(tmp_path / "embedops.yaml")
    docs, vecs = docs50
    try:
        col = project.build_collection(docs, vectors=vecs)
        assert col.info()["store"] == "qdrant" and (tmp_path / "qdrant-data").is_dir()
        hits = project.search("vitamin D and diabetes", k=3, filter={"topic": "cells"})
        assert len(hits) == 3 and all(h.metadata["topic"] == "cells" for h in hits)
        report = project.migrate_collection("scifact", "scifact-faiss", source_store=None, target_store="faiss")
        faiss_col = Collection.open(tmp_path / "scifact-faiss", project.encoder)
        same_hits(col, faiss_col)
        faiss_col.close()
        assert report["checksum"] == checksum(col.store)[1]
        with pytest.raises(InputError, match="keyword index"):
            project.search("vitamin", mode="keyword")
        reader = project.open_collection(read_only=True)  # a handle of its own, for searching only
        with pytest.raises(InputError, match="read-only"):
            reader.store.delete([docs[0]["id"]])
        reader.close()
        assert len(project.collection) == 50
    finally:
        project.close()


def test_an_existing_target_is_refused_without_overwrite_and_replaced_whole_with_it(docs50, encoder, tmp_path):
    url = "qdrant://:memory:"
    docs, vecs = docs50
    Collection.build(tmp_path / "a", encoder, docs[:30], vectors=vecs[:30]).close()
    Collection.build(tmp_path / "b", encoder, docs[20:], vectors=vecs[20:]).close()
    migrate("faiss", tmp_path / "a", url, "target")
    engine = connect(url)
    first = engine.resolve("target")
    with pytest.raises(InputError, match="'target' exists"):
        migrate("faiss", tmp_path / "b", url, "target")
    assert engine.resolve("target") == first
    report = migrate("faiss", tmp_path / "b", url, "target", overwrite=True)
    assert report["documents"] == 30 and engine.resolve("target") != first
    assert engine.temporaries("target") == []
    assert first not in [c.name for c in engine.client.get_collections().collections]  # the old one was dropped
    store = open_store(url, "target")
    assert sorted(store.ids()) == sorted(d["id"] for d in docs[20:])
    store.close()
    engine.close()


def test_a_failed_copy_publishes_nothing_and_keeps_the_previous_target(milvus_url, docs50, encoder, tmp_path):
    docs, vecs = docs50
    store = FaissStore.create(tmp_path / "src", 384, IndexSpec(kind="flat"))
    store.upsert([d["id"] for d in docs[:10]], vecs[:10], [d["metadata"] for d in docs[:10]],
                 [d["text"] for d in docs[:10]])
    store.close()
    migrate("faiss", tmp_path / "src", milvus_url, "keepme")
    store = FaissStore(tmp_path / "src")
    store.upsert(["huge"], vecs[10:11], [{}], ["x" * 70_000])  # FAISS takes it; Milvus's VARCHAR cannot
    store.close()
    with pytest.raises(InputError, match="70000 bytes"):
        migrate("faiss", tmp_path / "src", milvus_url, "keepme", overwrite=True, batch_size=4)
    kept = open_store(milvus_url, "keepme")
    assert kept.count() == 10 and kept.get(["huge"]) == [None]
    kept.close()
    assert leftovers(milvus_url, "keepme") == []  # the half-filled copy was dropped


def test_a_source_that_changes_during_the_migration_is_refused(docs50, encoder, tmp_path):
    docs, vecs = docs50
    url = "qdrant://:memory:"
    source = create_store(url, "moving", 384, IndexSpec(kind="flat"))
    source.upsert([d["id"] for d in docs], vecs, [d["metadata"] for d in docs], [d["text"] for d in docs])

    copied_first = next(source.scan(10, with_vectors=False))[0].id  # in the first batch the migration copies

    def write_meanwhile(copied: int, total: int) -> None:
        if copied == 10:  # after that batch is copied, as a writer would
            source.upsert([copied_first], vecs[1:2], [{"changed": True}], ["changed"])

    with pytest.raises(MigrationError, match="does not match its source"):
        migrate(url, "moving", "faiss", tmp_path / "copy", batch_size=10, progress=write_meanwhile)
    assert not (tmp_path / "copy").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.")]  # no temporary folder left
    source.close()


def test_the_checksum_ignores_order_and_catches_any_change(docs50, tmp_path):
    docs, vecs = docs50
    ids, metas, texts = [d["id"] for d in docs], [d["metadata"] for d in docs], [d["text"] for d in docs]
    a = FaissStore.create(tmp_path / "a", 384)
    a.upsert(ids, vecs, metas, texts)
    b = create_store("qdrant://:memory:", "order", 384)
    order = list(range(49, -1, -1))
    b.upsert([ids[i] for i in order], vecs[order], [metas[i] for i in order], [texts[i] for i in order])
    assert checksum(a) == checksum(b)
    base = checksum(a)[1]
    changes = [([{**metas[3], "year": metas[3]["year"] + 1}], [texts[3]], vecs[3:4]),
               ([metas[3]], [None], vecs[3:4]),
               ([metas[3]], [texts[3]], np.nextafter(vecs[3:4], 1).astype(np.float32))]
    for meta, text, vec in changes:
        a.upsert([ids[3]], vec, meta, text)
        assert checksum(a)[1] != base
        a.upsert([ids[3]], vecs[3:4], [metas[3]], [texts[3]])
        assert checksum(a)[1] == base
    a.close()
    b.close()

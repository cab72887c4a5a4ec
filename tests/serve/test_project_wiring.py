"""The server is a face over `Project`: its collections are the Project's, encoded by the pool's batching workers."""

from __future__ import annotations

from embedops.config import ProjectConfig
from embedops.project import Project
from embedops.serve.collections import CollectionRegistry
from embedops.serve.metrics import Metrics
from embedops.serve.models import ModelPool
from embedops.serve.settings import ServeSettings


def test_collections_go_through_the_project_with_the_pool_workers(tmp_path, serve_root, sentences):
    project = Project(ProjectConfig())
    settings = ServeSettings.resolve(None, env={}, auth=False)
    pool = ModelPool(project, settings)
    registry = CollectionRegistry(project, pool, tmp_path / "collections")
    try:
        pool.load([])
        registry.load({"sts": str(serve_root / "collections" / "sts")})
        served = registry.get("sts")
        # The Project shares one open collection per folder: the server's and a library caller's are one object.
        assert project.open_collection(serve_root / "collections" / "sts") is served
        assert served.encoder is pool.default.worker  # queries join the worker's batches
        before = pool.default.worker.metrics()["requests"]
        hits = registry.search("sts", "A plane is taking off.", 3, None, mode="dense", fusion="rrf")
        assert hits[0].text == "A plane is taking off."
        assert pool.default.worker.metrics()["requests"] == before + 1
        more = registry.recommend("sts", [hits[0].id], [], 2, None)
        assert len(more) == 2 and hits[0].id not in {h.id for h in more}

        created = registry.create("notes", None, {"kind": "flat"})
        assert project.open_collection(tmp_path / "collections" / "notes") is created
        created.add([{"id": "a", "text": sentences[0]}, {"id": "b", "text": sentences[1]}])
        assert registry.search("notes", sentences[1], 1, None, mode="dense", fusion="rrf")[0].id == "b"

        # Every batch the worker ran is counted once in the batch-size histogram, however often it is scraped.
        metrics = Metrics(pool.workers)
        metrics.render()
        pool.default.worker.encode(sentences[:40])
        text = metrics.render().decode()
        worker = pool.default.worker
        line = next(ln for ln in text.splitlines() if ln.startswith("embedops_batch_size_count"))
        assert float(line.split()[-1]) == worker.batches_run
        total = next(ln for ln in text.splitlines() if ln.startswith("embedops_batch_size_sum"))
        assert float(total.split()[-1]) == sum(worker.batch_sizes)
    finally:
        registry.close()
        pool.close()
        project.close()

"""`embedops monitor`, `embedops experiment`, `embedops events` on a real event log with real query vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embedops.cli.main import app
from embedops.data import load_beir, load_sts
from embedops.events import EventLog, FeedbackEvent, RequestEvent

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "embedops.yaml").write_text("version: 1\nname: prod\n", encoding="utf-8")
    return tmp_path


def _searches(log: EventLog, encoder, texts: list[str], t0: float, version: str, tag: str) -> None:
    vectors = encoder.encode(texts, kind="query")
    rng = np.random.default_rng(len(texts))
    for i, (text, vec) in enumerate(zip(texts, vectors, strict=True)):
        scores = sorted(rng.uniform(0.2, 0.8, 5).tolist(), reverse=True)
        log.log(RequestEvent(f"{tag}{i}", kind="search", model="m", model_version=version, collection="c",
                             latency_ms=10 + i % 7, query=text, k=5, mode="dense",
                             result_ids=[f"d{j}" for j in range(5)], scores=scores, query_vector=vec,
                             user_id=f"u{i % 20}", time=t0 + i * (3000 / len(texts))))
        if i % 4 == 0:
            log.log(FeedbackEvent(f"{tag}{i}", "click", "d0", rank=1, time=t0 + i * (3000 / len(texts)) + 1))


def test_monitor_flags_the_window_whose_queries_come_from_another_domain(project, encoder, shared_data):
    sts = load_sts(shared_data / "stsbenchmark", "train")
    sentences = list(dict.fromkeys(sts.sentences1))
    # STS-B train is grouped by source (captions, then news, forums): shuffle, so both STS windows share a domain.
    np.random.default_rng(0).shuffle(sentences)
    scifact = [q for q in load_beir(shared_data / "scifact", "test").queries.values()][:150]
    log = EventLog(project / "events.db")
    t0 = 1_700_000_000.0
    _searches(log, encoder, sentences[:300], t0, "v1", "ref")           # hour 1: reference
    _searches(log, encoder, sentences[300:450], t0 + 3600, "v1", "same")  # hour 2: same domain
    _searches(log, encoder, scifact, t0 + 7200, "v1", "sci")             # hour 3: another domain
    log.close()
    res = invoke("monitor", "-c", project / "embedops.yaml", "--window", 3600, "--html", project / "r.html",
                 "--json", project / "r.json")
    assert res.exit_code == 0, res.output
    report = json.loads((project / "r.json").read_text())
    drift = [w["drift"]["drifted"] for w in report["windows"] if w["drift"] is not None]
    assert drift == [False, True], report["windows"]
    assert "1 new alert" in res.output
    html = (project / "r.html").read_text()
    assert "data:image/png;base64" in html
    ctr = [w["quality"]["ctr"] for w in report["windows"]]
    assert all(c == pytest.approx(0.25, abs=0.01) for c in ctr)
    again = invoke("monitor", "-c", project / "embedops.yaml", "--window", 3600)
    assert again.exit_code == 0 and "new alert" not in again.output  # no duplicate alerts on a rerun


def test_experiment_commands_and_a_zero_sized_arm(project):
    cfg = project / "embedops.yaml"
    bad = invoke("experiment", "create", "t1", "--champion-collection", "a", "--challenger-collection", "b",
                 "--mode", "ab", "--split", 0, "-c", cfg)
    assert bad.exit_code == 2 and "split" in bad.output
    assert not (project / "experiments" / "t1.json").exists()
    ok = invoke("experiment", "create", "t1", "--champion-collection", "a", "--challenger-collection", "b", "-c", cfg)
    assert ok.exit_code == 0, ok.output
    dup = invoke("experiment", "create", "t1", "--champion-collection", "a", "--challenger-collection", "b", "-c", cfg)
    assert dup.exit_code == 2
    listed = invoke("experiment", "list", "-c", cfg)
    assert "t1" in listed.output and "running" in listed.output
    rep = invoke("experiment", "report", "t1", "--json", "-c", cfg)
    assert rep.exit_code == 0, rep.output
    assert json.loads(rep.output)["winner"] == "none"
    assert invoke("experiment", "stop", "t1", "-c", cfg).exit_code == 0
    assert invoke("experiment", "report", "nope", "-c", cfg).exit_code == 2


def test_events_export_and_prune(project):
    log = EventLog(project / "events.db")
    for i in range(10):
        log.log(RequestEvent(f"r{i}", kind="embed", time=1000.0 + i))
    log.close()
    cfg = project / "embedops.yaml"
    res = invoke("events", "export", project / "out.parquet", "-c", cfg)
    assert res.exit_code == 0 and "wrote 10" in res.output
    import pyarrow.parquet as pq

    assert pq.read_table(project / "out.parquet").num_rows == 10
    assert invoke("events", "prune", "--older-than-days", 1, "-c", cfg).exit_code == 0
    log = EventLog(project / "events.db")
    assert log.count("requests") == 0
    log.close()

"""EventLog against a real SQLite file and a real PostgreSQL server: round trip, concurrency, drops, failures."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.events import AlertEvent, EventLog, EventLogError, FeedbackEvent, RequestEvent


def _search(i: int, t: float | None = None, version: str = "v1", dim: int = 8) -> RequestEvent:
    rng = np.random.default_rng(i)
    return RequestEvent(
        request_id=f"req-{i}", kind="search", model="minilm", model_version=version, collection="docs",
        route="/v1/collections/docs/search", latency_ms=3.5 + i, tokens=7, query=f"query {i}", k=3, mode="dense",
        result_ids=[f"d{i}", f"d{i + 1}", f"d{i + 2}"], scores=[0.9, 0.7, 0.5], user_id=f"u{i % 3}",
        query_vector=rng.standard_normal(dim).astype(np.float32), time=time.time() if t is None else t)


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_round_trip(event_url):
    t0 = 1_700_000_000.0
    with EventLog(event_url) as log:
        events = [_search(i, t0 + i, version="v1" if i < 3 else "v2") for i in range(5)]
        for e in events:
            assert log.log(e)
        log.log(RequestEvent("emb-1", kind="embed", model="minilm", model_version="v1", n_inputs=4, tokens=40,
                             truncated=1, time=t0 + 10))
        log.log(RequestEvent("bad-1", kind="search", model="minilm", model_version="v1", status=400,
                             error="invalid_request_error", time=t0 + 11))
        log.log(FeedbackEvent("req-1", "click", "d2", rank=2, dwell_ms=1500.0, user_id="u1", time=t0 + 20))
        log.log(FeedbackEvent("req-1", "relevant", "d1", rank=1, time=t0 + 21))
        log.log(AlertEvent("drift", "queries drifted", model_version="v1", window_start=t0, window_end=t0 + 5,
                           details={"auc": np.float64(0.93)}, time=t0 + 30))
        assert log.flush()
        assert log.stats()["written_total"] == 10 and log.dropped_total == 0 and log.failed_total == 0

        got = log.requests(kind="search")
        assert [e.request_id for e in got] == [*(f"req-{i}" for i in range(5)), "bad-1"]
        first = got[0]
        assert first.result_ids == ["d0", "d1", "d2"] and first.scores == [0.9, 0.7, 0.5]
        assert first.user_id == "u0" and first.k == 3 and first.mode == "dense" and first.time == t0
        np.testing.assert_allclose(first.query_vector, events[0].query_vector, atol=2e-3)  # float16 storage
        assert [e.request_id for e in log.requests(t0 + 1, t0 + 3)] == ["req-1", "req-2"]
        assert [e.request_id for e in log.requests(model_version="v2")] == ["req-3", "req-4"]
        emb = log.requests(kind="embed")[0]
        assert (emb.n_inputs, emb.tokens, emb.truncated) == (4, 40, 1)
        assert log.requests(kind="search", start=t0 + 11)[0].error == "invalid_request_error"
        assert log.model_versions() == ["v1", "v2"]
        assert log.time_range() == (t0, t0 + 11)

        vecs = log.query_vectors(model_version="v1")
        assert vecs.shape == (3, 8) and vecs.dtype == np.float32

        assert [f.kind for f in log.feedback_for("req-1")] == ["click", "relevant"]
        joined = dict((r.request_id, fb) for r, fb in log.searches_with_feedback(t0, t0 + 5))
        assert len(joined) == 5 and [f.doc_id for f in joined["req-1"]] == ["d2", "d1"] and joined["req-0"] == []
        assert joined["req-1"][0].dwell_ms == 1500.0 and joined["req-1"][0].rank == 2
        assert log.known_request("req-4") and not log.known_request("nope")

        alert = log.alerts(kind="drift")[0]
        assert alert.details == {"auc": 0.93} and alert.window_end == t0 + 5
        assert (log.count("requests"), log.count("feedback"), log.count("alerts")) == (7, 2, 1)


def test_reopen_keeps_events(event_url):
    with EventLog(event_url) as log:
        log.log(_search(1))
    with EventLog(event_url) as log:
        assert [e.request_id for e in log.requests()] == ["req-1"]


def test_known_request_sees_events_still_queued(event_url, write_lock):
    with EventLog(event_url, busy_timeout_s=20) as log:
        with write_lock(event_url):
            log.log(_search(1))
            assert _wait_for(lambda: log.stats()["in_flight"] == 1)
            log.log(_search(2))  # queued behind the blocked batch: the server must still accept feedback for it
            assert log.queue_depth == 2
            assert log.known_request("req-1") and log.known_request("req-2") and not log.known_request("req-3")
        assert log.flush()
        assert log.written_total == 2


def test_many_writers_and_a_reader_lose_nothing_below_the_bound(event_url):
    threads, per_thread = 8, 250
    with EventLog(event_url, max_queue=threads * per_thread, batch_size=64) as log:
        stop = threading.Event()
        reads: list[int] = []
        errors: list[BaseException] = []

        def writer(w: int) -> None:
            for i in range(per_thread):
                log.log(_search(w * per_thread + i))

        def reader() -> None:
            try:
                while not stop.is_set():
                    reads.append(len(log.requests(limit=5000)))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        r = threading.Thread(target=reader)
        r.start()
        ws = [threading.Thread(target=writer, args=(w,)) for w in range(threads)]
        for t in ws:
            t.start()
        for t in ws:
            t.join()
        assert log.flush()
        stop.set()
        r.join()
        assert not errors, errors
        assert reads and reads == sorted(reads)  # a reader sees whole batches only, never fewer rows later
        total = threads * per_thread
        assert log.stats() | {"last_error": None} == {"written_total": total, "dropped_total": 0, "failed_total": 0,
                                                      "queue_depth": 0, "in_flight": 0, "max_queue": total,
                                                      "last_error": None}
        ids = [e.request_id for e in log.requests()]
        assert len(ids) == total and set(ids) == {f"req-{i}" for i in range(total)}


def test_a_full_queue_drops_exactly_the_overflow_without_blocking(event_url, write_lock):
    max_queue, extra = 20, 333
    with EventLog(event_url, max_queue=max_queue, busy_timeout_s=30) as log:
        with write_lock(event_url):
            assert log.log(_search(0))
            assert _wait_for(lambda: log.stats()["in_flight"] == 1)  # the writer holds it, stuck on the lock
            start = time.perf_counter()
            accepted = [log.log(_search(i)) for i in range(1, 1 + max_queue + extra)]
            elapsed = time.perf_counter() - start
            assert accepted.count(True) == max_queue and accepted[:max_queue] == [True] * max_queue
            assert log.dropped_total == extra and log.queue_depth == max_queue + 1
            assert elapsed < 0.5, f"log() blocked: {elapsed:.3f}s for {max_queue + extra} calls"
        assert log.flush()
        assert log.written_total == 1 + max_queue and log.dropped_total == extra and log.failed_total == 0
        assert {e.request_id for e in log.requests()} == {f"req-{i}" for i in range(1 + max_queue)}


def test_a_locked_database_fails_batches_logs_once_and_recovers(event_url, write_lock, caplog):
    with EventLog(event_url, busy_timeout_s=0.2) as log, caplog.at_level(logging.WARNING, "embedops.events"):
        with write_lock(event_url):
            for i in range(3):
                assert log.log(_search(i))  # never raises, never waits for the lock
                assert _wait_for(lambda i=i: log.failed_total == i + 1)
            assert log.last_error and "locked" in log.last_error
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "cannot write" in errors[0].getMessage() and "locked" in errors[0].getMessage()
        log.log(_search(10))
        assert log.flush()
        assert log.written_total == 1 and log.failed_total == 3 and log.last_error is None
        assert any("writing again" in r.getMessage() for r in caplog.records)


def test_opening_a_corrupt_sqlite_file_names_it(tmp_path):
    bad = tmp_path / "events.db"
    bad.write_bytes(b"this is not a database\n" * 500)
    with pytest.raises(EventLogError) as info:
        EventLog(bad)
    text = str(info.value)
    assert str(bad) in text and "corrupt" in text and "\n" not in text


def test_opening_a_locked_sqlite_file_is_a_clear_error(tmp_path, write_lock):
    path = str(tmp_path / "new.db")
    with write_lock(path), pytest.raises(EventLogError, match="locked"):
        EventLog(path, busy_timeout_s=0.1)


def test_a_file_corrupted_while_open_fails_writes_not_callers(tmp_path, caplog):
    path = tmp_path / "events.db"
    with EventLog(path) as log:
        log.log(_search(0))
        assert log.flush() and log.written_total == 1
        log.engine.dispose()  # as after a restart of the pool: the next batch reopens the file
        for name in ("events.db", "events.db-wal", "events.db-shm"):
            if (tmp_path / name).exists():
                (tmp_path / name).write_bytes(b"\x00garbage" * 4096)
        with caplog.at_level(logging.ERROR, "embedops.events"):
            assert log.log(_search(1))
            assert log.flush()
        assert log.failed_total == 1 and "corrupt" in (log.last_error or "")
        assert sum("corrupt" in r.getMessage() for r in caplog.records) == 1


def test_bad_feedback_and_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="feedback.kind"):
        FeedbackEvent("r", "like", "d1")  # type: ignore[arg-type]
    with pytest.raises(EventLogError, match="max_queue"):
        EventLog(tmp_path / "a.db", max_queue=0)
    with EventLog(tmp_path / "a.db") as log:
        with pytest.raises(EventLogError, match="exactly one"):
            log.prune()
        with pytest.raises(EventLogError, match="unknown event table"):
            log.count("users")
    with pytest.raises(EventLogError, match="in-memory"):
        EventLog("sqlite:///:memory:")


def test_retention_prunes_old_events(event_url):
    now = time.time()
    old, new = now - timedelta(days=40).total_seconds(), now - 60
    with EventLog(event_url) as log:
        log.log(_search(1, old))
        log.log(_search(2, new))
        log.log(FeedbackEvent("req-1", "click", "d1", time=old))
        log.log(FeedbackEvent("req-2", "click", "d2", time=new))
        log.log(AlertEvent("drift", "old", time=old))
        assert log.flush()
        assert log.prune(older_than=timedelta(days=30)) == {"requests": 1, "feedback": 1, "alerts": 1}
        assert [e.request_id for e in log.requests()] == ["req-2"]
        assert [f.request_id for f in log.feedback()] == ["req-2"] and log.alerts() == []
    # The retention setting: the writer prunes on its own schedule.
    with EventLog(event_url, retention=timedelta(minutes=5), prune_interval_s=0.1) as log:
        log.log(_search(3, old))
        log.log(_search(4, now))
        assert _wait_for(lambda: [e.request_id for e in log.requests()] == ["req-2", "req-4"], timeout=10)
        assert log.written_total == 2


def test_export_parquet(event_url, tmp_path):
    import pyarrow.parquet as pq

    t0 = 1_700_000_000.0
    with EventLog(event_url) as log:
        for i in range(4):
            log.log(_search(i, t0 + i))
        log.log(FeedbackEvent("req-1", "click", "d1", rank=1, dwell_ms=300.0, time=t0 + 5))
        assert log.flush()
        out = tmp_path / "out" / "requests.parquet"
        assert log.export_parquet(out, start=t0 + 1) == 3
        table = pq.read_table(out)
        assert table.column("request_id").to_pylist() == ["req-1", "req-2", "req-3"]
        assert table.column("scores").to_pylist()[0] == [0.9, 0.7, 0.5]
        assert table.column("time").to_pylist()[0].timestamp() == t0 + 1
        vec = np.frombuffer(table.column("query_vector").to_pylist()[0], dtype=np.float16)
        assert vec.shape == (8,)
        assert log.export_parquet(tmp_path / "fb.parquet", table="feedback") == 1
        assert pq.read_table(tmp_path / "fb.parquet").column("dwell_ms").to_pylist() == [300.0]
        assert log.export_parquet(tmp_path / "empty.parquet", table="alerts") == 0
        assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0
        # A failed export leaves the earlier file whole and no temp file behind.
        with pytest.raises(EventLogError):
            log.export_parquet(out, table="nope")
        assert pq.read_table(out).num_rows == 3
        assert sorted(p.name for p in out.parent.iterdir()) == ["requests.parquet"]


def test_prometheus_collector_reads_the_counters(tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest

    from embedops.events import register_event_metrics

    registry = CollectorRegistry()
    with EventLog(tmp_path / "e.db", max_queue=5) as log:
        register_event_metrics(log, registry)
        for i in range(3):
            log.log(_search(i))
        assert log.flush()
        text = generate_latest(registry).decode()
        assert "embedops_events_written_total 3.0" in text
        assert "embedops_events_dropped_total 0.0" in text
        assert "embedops_events_queue_depth 0.0" in text
        assert registry.get_sample_value("embedops_events_queue_capacity") == 5

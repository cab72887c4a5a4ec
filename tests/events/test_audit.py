"""Audit events (promote, rollback ...): written and read back on SQLite and PostgreSQL, kept by retention, and
added to a log created before they existed."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta

from embedops.events import AuditEvent, EventLog, RequestEvent


def test_audit_events_round_trip_newest_first(event_url):
    with EventLog(event_url) as log:
        log.log(AuditEvent("promote", "champion", "m@v2", "m@v1", actor="http:127.0.0.1", request_id="r1",
                           details={"reason": "better nDCG", "force": False}, time=100.0))
        log.log(AuditEvent("rollback", "champion", "m@v1", "m@v2", actor="cli", time=200.0))
        log.log(AuditEvent("promote", "staging", "m@v3", None, outcome="refused", details={"error": "gate"},
                           time=300.0))
        log.flush()
        got = log.audit()
        assert [(a.action, a.target, a.outcome, a.time) for a in got] == [
            ("promote", "staging", "refused", 300.0), ("rollback", "champion", "done", 200.0),
            ("promote", "champion", "done", 100.0)]
        assert got[2].details == {"reason": "better nDCG", "force": False} and got[2].request_id == "r1"
        assert [a.time for a in log.audit(action="promote", limit=1)] == [300.0]
        assert [a.time for a in log.audit(150, 250)] == [200.0]


def test_retention_keeps_the_audit_trail(tmp_path):
    old = time.time() - 90 * 86400
    with EventLog(tmp_path / "events.db") as log:
        log.log(RequestEvent("r-old", time=old))
        log.log(AuditEvent("promote", "champion", "m@v2", "m@v1", time=old))
        log.flush()
        removed = log.prune(older_than=timedelta(days=30))
        assert removed == {"requests": 1, "feedback": 0, "alerts": 0}  # the three event tables, as before
        assert [a.version for a in log.audit()] == ["m@v2"]


def test_a_log_from_before_audit_events_gains_the_table(tmp_path):
    path = tmp_path / "events.db"
    with EventLog(path) as log:
        log.log(RequestEvent("r1"))
    with sqlite3.connect(path) as conn:  # what a log written by an earlier release looks like
        conn.execute("DROP TABLE embedops_audit")
    with EventLog(path) as log:
        assert log.count("requests") == 1 and log.audit() == []
        log.log(AuditEvent("rollback", "champion", "m@v1", "m@v2"))
        log.flush()
        assert [a.action for a in log.audit()] == ["rollback"]

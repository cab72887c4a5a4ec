"""The event tables and the database behind them: a SQLite file (WAL) by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from embedops.errors import EmbedopsError


class EventLogError(EmbedopsError):
    """The event database cannot be opened or used (corrupt file, locked, unreachable server)."""


METADATA = sa.MetaData()
# 64-bit ids on PostgreSQL (a busy service passes 2**31 events); SQLite's rowid alias must be spelled INTEGER.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

REQUESTS = sa.Table(
    "embedops_requests", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("time", sa.Double, nullable=False),
    sa.Column("model", sa.Text),
    sa.Column("model_version", sa.Text),
    sa.Column("collection", sa.Text),
    sa.Column("route", sa.Text),
    sa.Column("latency_ms", sa.Double),
    sa.Column("n_inputs", sa.Integer),
    sa.Column("tokens", sa.Integer),
    sa.Column("truncated", sa.Integer),
    sa.Column("status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("user_id", sa.Text),
    sa.Column("session_id", sa.Text),
    sa.Column("query", sa.Text),
    sa.Column("k", sa.Integer),
    sa.Column("mode", sa.String(16)),
    sa.Column("result_ids", sa.Text),  # JSON list: portable across SQLite and PostgreSQL
    sa.Column("scores", sa.Text),  # JSON list of floats, rank order
    sa.Column("query_vector", sa.LargeBinary),  # float16 bytes
    sa.Column("experiment", sa.Text),  # A/B or interleaving test that served it, with the arm and per-rank teams
    sa.Column("arm", sa.String(16)),
    sa.Column("teams", sa.Text),  # JSON list (interleaving only)
    sa.Index("ix_embedops_requests_time", "time"),
    sa.Index("ix_embedops_requests_request_id", "request_id"),
    sa.Index("ix_embedops_requests_version_time", "model_version", "time"),
)

FEEDBACK = sa.Table(
    "embedops_feedback", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("doc_id", sa.Text, nullable=False),
    sa.Column("rank", sa.Integer),
    sa.Column("dwell_ms", sa.Double),
    sa.Column("user_id", sa.Text),
    sa.Column("session_id", sa.Text),
    sa.Column("time", sa.Double, nullable=False),
    sa.Index("ix_embedops_feedback_request_id", "request_id"),
    sa.Index("ix_embedops_feedback_time", "time"),
)

ALERTS = sa.Table(
    "embedops_alerts", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text),
    sa.Column("window_start", sa.Double),
    sa.Column("window_end", sa.Double),
    sa.Column("details", sa.Text),  # JSON
    sa.Column("time", sa.Double, nullable=False),
    sa.Index("ix_embedops_alerts_time", "time"),
)

TABLES: dict[str, sa.Table] = {"requests": REQUESTS, "feedback": FEEDBACK, "alerts": ALERTS}

# Administrative actions (promote, rollback). Kept out of TABLES on purpose: retention pruning never removes the
# audit trail, and the export/count contract over the three event tables is unchanged. Created beside them by
# create_all, so an existing log gains it on its next open.
AUDIT = sa.Table(
    "embedops_audit", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("version", sa.Text),
    sa.Column("previous", sa.Text),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("actor", sa.Text),
    sa.Column("request_id", sa.String(128)),
    sa.Column("details", sa.Text),  # JSON
    sa.Column("time", sa.Double, nullable=False),
    sa.Index("ix_embedops_audit_time", "time"),
)


def database_url(target: str | Path) -> tuple[str, str]:
    """(SQLAlchemy URL, name for messages) of a file path or URL; `postgresql://` gets the psycopg 3 driver."""
    text = str(target)
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        return f"sqlite:///{path}", str(path)
    if text.startswith(("postgresql://", "postgres://")):
        text = "postgresql+psycopg://" + text.split("://", 1)[1]
    url = sa.engine.make_url(text)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return text, str(Path(url.database).expanduser().resolve())
    return text, url.render_as_string(hide_password=True)


def create_engine(url: str, *, busy_timeout_s: float) -> Engine:
    """An engine with the settings the log needs: WAL and a busy timeout on SQLite, pre-ping elsewhere."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise EventLogError("an in-memory SQLite event log would vanish with its connection; give a file path",
                                where=url)
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets the monitor read while the writer thread appends; NORMAL sync is durable across app crashes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        from embedops._optional import require

        require("psycopg", "postgres")
        # A lock held elsewhere fails the batch after the timeout instead of stalling the writer for good.
        return sa.create_engine(url, pool_pre_ping=True,
                                connect_args={"options": f"-c lock_timeout={int(busy_timeout_s * 1000)}"})
    return sa.create_engine(url, pool_pre_ping=True)


def describe_error(exc: BaseException) -> str:
    """A short reason for a database error: the driver's own message, without SQLAlchemy's SQL dump."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if isinstance(orig, sqlite3.DatabaseError):
        if "not a database" in text or "malformed" in text:
            return f"corrupt SQLite file ({text})"
        if "locked" in text or "busy" in text:
            return f"database is locked by another connection ({text})"
    if "lock timeout" in text:  # PostgreSQL's lock_timeout
        return f"database is locked by another connection ({text})"
    return text


def open_database(target: str | Path, *, busy_timeout_s: float) -> tuple[Engine, str]:
    """Open (and create the tables of) the event database; a corrupt, locked or unreachable one raises EventLogError."""
    url, name = database_url(target)
    engine = create_engine(url, busy_timeout_s=busy_timeout_s)
    try:
        with engine.begin() as conn:
            METADATA.create_all(conn, checkfirst=True)
            conn.execute(sa.select(sa.func.count()).select_from(REQUESTS).where(REQUESTS.c.id < 0))
    except (sa.exc.SQLAlchemyError, sqlite3.Error, OSError) as exc:
        engine.dispose()
        reason = describe_error(exc)
        hint = ("move the file aside and start a new log" if reason.startswith("corrupt")
                else "stop the process that holds the lock" if "locked" in reason else None)
        raise EventLogError(f"cannot open the event database: {reason}", where=name, hint=hint) from exc
    return engine, name

"""The event log: requests (search, embeddings), feedback, alerts and audited admin actions, written off the request
path.

`EventLog(path_or_url)` is the entry point; see `embedops.events.log` for its contract.
"""

from embedops.events.log import EventLog
from embedops.events.metrics import EventLogCollector, register_event_metrics
from embedops.events.store import EventLogError
from embedops.events.types import FEEDBACK_KINDS, AlertEvent, AuditEvent, Event, FeedbackEvent, RequestEvent

__all__ = [
    "FEEDBACK_KINDS",
    "AlertEvent",
    "AuditEvent",
    "Event",
    "EventLog",
    "EventLogCollector",
    "EventLogError",
    "FeedbackEvent",
    "RequestEvent",
    "register_event_metrics",
]

"""Prometheus view of an `EventLog`'s counters, read at scrape time from the registry the server passes in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from embedops.events.log import EventLog


class EventLogCollector:
    """Collector reading `written_total`, `dropped_total`, `failed_total` and `queue_depth` of one log."""

    def __init__(self, log: EventLog):
        self._log = log

    def collect(self) -> Iterable[Any]:
        """One sample per counter, taken at scrape time."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self._log.stats()
        # CounterMetricFamily appends `_total` to these names itself.
        yield CounterMetricFamily("embedops_events_written", "Events committed to the event log",
                                  value=s["written_total"])
        yield CounterMetricFamily("embedops_events_dropped", "Events dropped because the event queue was full",
                                  value=s["dropped_total"])
        yield CounterMetricFamily("embedops_events_failed", "Events lost because the event database refused them",
                                  value=s["failed_total"])
        yield GaugeMetricFamily("embedops_events_queue_depth", "Events waiting to be written",
                                value=s["queue_depth"])
        yield GaugeMetricFamily("embedops_events_queue_capacity", "Size of the event queue", value=s["max_queue"])


def register_event_metrics(log: EventLog, registry: CollectorRegistry) -> EventLogCollector:
    """Expose the log's counters on `registry` (returns the collector, for `registry.unregister`)."""
    from embedops._optional import require

    require("prometheus_client", "serve")
    collector = EventLogCollector(log)
    registry.register(collector)  # type: ignore[arg-type]
    return collector

"""Prometheus metrics: one registry per process (no module-level singletons), scraped at
/metrics.

Every series is a number's and carries its key as the `number` label (`number="shop-north"`),
so one scrape of a node that serves several numbers tells them apart; the series names are
those of a single-number install. Counters and histograms are fed as things happen (each
number's events, its run log); gauges are read from the numbers this node serves and the
database when scraped (a number served by another node is that node's to report).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
NUMBER = "number"  # the label every series carries: the number's key (its tenant)


class Metrics:
    def __init__(self, price_in_per_million: float, price_out_per_million: float) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._price_in = price_in_per_million
        self._price_out = price_out_per_million
        self.messages_in = Counter("wabot_messages_in", "Inbound messages by kind",
                                   [NUMBER, "kind"], registry=r)
        self.messages_out = Counter("wabot_messages_out", "Outbound messages by kind "
                                    "(reply, followup, notice, owner)", [NUMBER, "kind"],
                                    registry=r)
        self.turn_seconds = Histogram("wabot_turn_seconds", "Agent turn duration", [NUMBER],
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.model_seconds = Histogram("wabot_model_seconds", "Model call latency",
                                       [NUMBER, "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("wabot_tokens", "Model tokens", [NUMBER, "direction"],
                              registry=r)
        self.cost = Counter("wabot_cost_usd", "Estimated model cost in USD", [NUMBER],
                            registry=r)
        self.followups_sent = Counter("wabot_followups_sent", "Follow-ups delivered", [NUMBER],
                                      registry=r)
        self.alerts = Counter("wabot_owner_alerts", "Owner alerts by kind", [NUMBER, "kind"],
                              registry=r)
        self.turns = Gauge("wabot_turns", "Turns run since start", [NUMBER], registry=r)
        self.turn_failures = Gauge("wabot_turn_failures", "Turns failed since start",
                                   [NUMBER], registry=r)
        self.agents_cached = Gauge("wabot_agents_cached", "Agents in memory", [NUMBER],
                                   registry=r)
        self.followups_pending = Gauge("wabot_followups_pending", "Follow-ups scheduled",
                                       [NUMBER], registry=r)
        self.journal_backlog = Gauge("wabot_journal_backlog",
                                     "Inbound messages journaled and not yet answered",
                                     [NUMBER], registry=r)
        self.connected = Gauge("wabot_whatsapp_connected", "1 when WhatsApp is connected",
                               [NUMBER], registry=r)
        self.outbox_depth = Gauge("wabot_webhook_outbox_depth", "Webhook events not yet "
                                  "delivered", [NUMBER], registry=r)
        self._gauges = (self.turns, self.turn_failures, self.agents_cached,
                        self.followups_pending, self.journal_backlog, self.connected,
                        self.outbox_depth)

    def listener(self, number: str) -> Callable[[str, dict[str, Any]], None]:
        """Number `number`'s Events listener."""
        return lambda name, data: self.on_event(number, name, data)

    def on_event(self, number: str, name: str, data: dict[str, Any]) -> None:
        if name == "message.received":
            self.messages_in.labels(number, str(data.get("kind", "text"))).inc()
        elif name == "message.sent":
            self.messages_out.labels(number, str(data.get("kind", "reply"))).inc()
            if data.get("kind") == "followup":
                self.followups_sent.labels(number).inc()
        elif name == "owner.alert":
            self.alerts.labels(number, str(data.get("kind", ""))).inc()

    def on_run(self, number: str, calls: list[dict[str, Any]], seconds: float) -> None:
        """A turn's model calls (the run log feeds this)."""
        self.turn_seconds.labels(number).observe(seconds)
        for call in calls:
            self.model_seconds.labels(number, call["model"]).observe(call["latency_ms"] / 1000)
            self.tokens.labels(number, "in").inc(call["tokens_in"])
            self.tokens.labels(number, "out").inc(call["tokens_out"])
            self.cost.labels(number).inc((call["tokens_in"] * self._price_in
                                          + call["tokens_out"] * self._price_out) / 1_000_000)

    def clear_gauges(self) -> None:
        """Before a scrape sets the gauges of the numbers served here: a number given to
        another node is that node's to report."""
        for gauge in self._gauges:
            gauge.clear()

    def render(self) -> bytes:
        return generate_latest(self.registry)

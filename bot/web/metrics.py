"""Prometheus metrics: one registry per App (no process-wide singletons), scraped at /metrics.

Counters and histograms are fed as things happen (events, the run log); gauges are read
from the live daemon and the database when scraped.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class Metrics:
    def __init__(self, price_in_per_million: float, price_out_per_million: float) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._price_in = price_in_per_million
        self._price_out = price_out_per_million
        self.messages_in = Counter("wabot_messages_in", "Inbound messages by kind",
                                   ["kind"], registry=r)
        self.messages_out = Counter("wabot_messages_out", "Outbound messages by kind "
                                    "(reply, followup, notice, owner)", ["kind"], registry=r)
        self.turn_seconds = Histogram("wabot_turn_seconds", "Agent turn duration",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.model_seconds = Histogram("wabot_model_seconds", "Model call latency",
                                       ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("wabot_tokens", "Model tokens", ["direction"], registry=r)
        self.cost = Counter("wabot_cost_usd", "Estimated model cost in USD", registry=r)
        self.followups_sent = Counter("wabot_followups_sent", "Follow-ups delivered", registry=r)
        self.alerts = Counter("wabot_owner_alerts", "Owner alerts by kind", ["kind"], registry=r)
        self.turns = Gauge("wabot_turns", "Turns run since start", registry=r)
        self.turn_failures = Gauge("wabot_turn_failures", "Turns failed since start", registry=r)
        self.agents_cached = Gauge("wabot_agents_cached", "Agents in memory", registry=r)
        self.followups_pending = Gauge("wabot_followups_pending", "Follow-ups scheduled",
                                       registry=r)
        self.journal_backlog = Gauge("wabot_journal_backlog",
                                     "Inbound messages journaled and not yet answered",
                                     registry=r)
        self.connected = Gauge("wabot_whatsapp_connected", "1 when WhatsApp is connected",
                               registry=r)
        self.outbox_depth = Gauge("wabot_webhook_outbox_depth", "Webhook events not yet "
                                  "delivered", registry=r)

    def on_event(self, name: str, data: dict[str, Any]) -> None:
        """The Events listener."""
        if name == "message.received":
            self.messages_in.labels(kind=str(data.get("kind", "text"))).inc()
        elif name == "message.sent":
            self.messages_out.labels(kind=str(data.get("kind", "reply"))).inc()
            if data.get("kind") == "followup":
                self.followups_sent.inc()
        elif name == "owner.alert":
            self.alerts.labels(kind=str(data.get("kind", ""))).inc()

    def on_run(self, calls: list[dict[str, Any]], seconds: float) -> None:
        """A turn's model calls (the run log feeds this)."""
        self.turn_seconds.observe(seconds)
        for call in calls:
            self.model_seconds.labels(model=call["model"]).observe(call["latency_ms"] / 1000)
            self.tokens.labels(direction="in").inc(call["tokens_in"])
            self.tokens.labels(direction="out").inc(call["tokens_out"])
            self.cost.inc((call["tokens_in"] * self._price_in
                           + call["tokens_out"] * self._price_out) / 1_000_000)

    def render(self) -> bytes:
        return generate_latest(self.registry)

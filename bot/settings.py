"""Settings: built once at the edge (the CLI) from a TOML file, `WABOT_*` variables and `.env`.

Precedence, highest first: explicit arguments, environment (`WABOT_LLM__MODEL=…`), `.env`,
the TOML file, defaults. The standard `OPENAI_API_KEY` / `OPENAI_BASE_URL` fill the LLM
section when it does not set them. Invalid settings fail at startup naming the field and fix.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.settings_explain import explain

DEFAULT_CONFIG = Path("config/wabot.toml")
PROFILE = Path("config/business.yaml")  # `wabot init`'s business profile, in the project folder
_TOML_PATH: ContextVar[Path | None] = ContextVar("wabot_toml_path", default=None)


class SettingsError(ValueError):
    """Configuration that cannot work; the message names each field and the fix."""


class Section(BaseModel):
    """A `[section]` of the settings: an unknown key is a typo, refused with the closest."""

    model_config = ConfigDict(extra="forbid")


class LLMSettings(Section):
    model: str = "gpt-4o-mini"
    base_url: str | None = None  # any OpenAI-compatible endpoint; None = OpenAI
    api_key: SecretStr | None = None
    timeout: float = Field(30.0, gt=0, le=600)
    max_retries: int = Field(2, ge=0, le=10)
    temperature: float = Field(0.6, ge=0, le=2)
    max_reply_tokens: int = Field(600, ge=16, le=8192)
    context_tokens: int = Field(6000, ge=1000, description="prompt budget per turn")
    history_tokens: int = Field(2500, ge=200, description="share of the budget for recent messages")
    summary_model: str | None = None  # defaults to `model`
    price_in_per_million: float = Field(0.15, ge=0)  # USD per 1M prompt tokens, for `status`
    price_out_per_million: float = Field(0.60, ge=0)


class InboxSettings(Section):
    debounce_seconds: float = Field(2.0, ge=0, le=60)
    debounce_max_seconds: float = Field(8.0, ge=0, le=300)
    max_concurrent_turns: int = Field(64, ge=1, le=10000)
    max_text_chars: int = Field(4000, ge=100, description="longer inbound text is truncated")
    allow_groups: bool = False


class AgentSettings(Section):
    idle_evict_minutes: float = Field(30.0, gt=0)
    sweep_seconds: float = Field(
        60.0, gt=0, description="at most one eviction sweep this often (it runs when an "
        "agent's idle time is up, not on a timer)")
    max_cached_agents: int = Field(50_000, ge=1)
    failure_reply: str = ""  # empty: the built-in text in the business's language (bot.messages)


class PresenterSettings(Section):
    enabled: bool = True  # False: send at once (no read receipt pause, no typing)
    read_delay_seconds: float = Field(1.0, ge=0)
    chars_per_second: float = Field(18.0, gt=0)  # a quick typist on a phone
    min_typing_seconds: float = Field(1.0, ge=0)
    max_typing_seconds: float = Field(8.0, ge=0)
    jitter: float = Field(0.2, ge=0, le=0.9)
    bubble_chars: int = Field(320, ge=40)
    max_bubbles: int = Field(4, ge=1, le=20)
    between_bubbles_seconds: float = Field(0.8, ge=0)
    # A reply WhatsApp refused with "not connected" is sent again once connected, for
    # this long; after that the owner is told and the history says it never arrived.
    retry_undelivered_minutes: float = Field(15.0, ge=0)
    retry_seconds: float = Field(30.0, gt=0)  # how often undelivered replies are retried


class MemorySettings(Section):
    """Long-term memory: the rolling summary, insight extraction and the churn rule."""

    summarize_after_messages: int = Field(
        40, ge=4, description="unsummarized messages that trigger a summary")
    keep_recent_messages: int = Field(
        12, ge=0, description="the newest messages stay verbatim, never folded")
    summary_chunk_messages: int = Field(60, ge=2, description="messages folded per summary call")
    summary_chunk_tokens: int = Field(4000, ge=200, description="input cap of one summary call")
    summary_rounds: int = Field(
        5, ge=1, description="summary calls per trigger; a backlog is worked off over turns")
    summary_tokens: int = Field(800, ge=100, description="the summary's share of the prompt")
    facts_tokens: int = Field(600, ge=50, description="the profile facts' share of the prompt")
    insights: bool = True
    insights_every_turns: int = Field(1, ge=1)
    insights_window_messages: int = Field(20, ge=1)
    delay_seconds: float = Field(
        60.0, ge=0, description="memory work starts this long after a turn, so the turns of a "
        "lively chat share one pass and never compete with it for the model")
    max_background: int = Field(4, ge=1, description="summary/insight calls running at once")
    stop_grace_seconds: float = Field(2.0, ge=0, le=60)
    churn_after_days: float = Field(90.0, ge=0, description="0: never mark customers churned")
    churn_sweep_minutes: float = Field(
        60.0, gt=0, description="at most one churn sweep this often (it runs when the "
        "longest-silent customer reaches churn_after_days, not on a timer)")

    @model_validator(mode="after")
    def _recent_below_trigger(self) -> MemorySettings:
        if self.keep_recent_messages >= self.summarize_after_messages:
            raise ValueError("keep_recent_messages must be below summarize_after_messages")
        return self


_ACTION = r"^(note|ignore|reply:.+)$"


class MediaSettings(Section):
    """What happens to messages that are not text (issue #6)."""

    transcribe: bool = True  # voice notes and audio through the LLM endpoint's /audio API
    transcription_model: str = "whisper-1"
    max_download_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    vision_model: str | None = None  # set: images are described by this model
    # Documents, stickers, locations, contacts, videos, polls — and images without a vision
    # model: "note" (the agent is told what arrived), "ignore" (kept in history, no reply)
    # or "reply:<text>" (that fixed reply, no model call).
    other: str = Field("note", pattern=_ACTION)
    kinds: dict[str, str] = Field(default_factory=dict, description="per-kind action")

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: dict[str, str]) -> dict[str, str]:
        import re

        from bot.models import MessageKind

        allowed = {k.value for k in MessageKind} - {"text", "reaction", "other"}
        for kind, action in v.items():
            if kind not in allowed:
                raise ValueError(f"unknown kind {kind!r}: use {', '.join(sorted(allowed))}")
            if not re.match(_ACTION, action):
                raise ValueError(f"{kind}: {action!r} is not note, ignore or reply:<text>")
        return v


class AccessSettings(Section):
    """Who is answered. Numbers in E.164; a non-empty allow list answers only those."""

    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)

    @field_validator("allow", "deny")
    @classmethod
    def _e164(cls, v: list[str]) -> list[str]:
        from bot.phones import parse_setting

        return [parse_setting(n) for n in v]


class LimitSettings(Section):
    """Per-customer caps, so one number cannot run up the LLM bill."""

    turns_per_minute: int = Field(6, ge=1, description="turns started per customer per minute")
    messages_per_minute: int = Field(60, ge=1, description="messages taken per customer per minute")
    # Caps stop floods and runaway cost, never a conversation. A person who types without
    # pause writes a message every ~20-40 s; a long relationship's turn is ~6.5k tokens
    # (llm.context_tokens + the reply). 5M tokens is ~750 turns: someone writing every 40 s
    # for 8 hours. At gpt-4o-mini's price ($0.15 in / $0.60 out per 1M) that is about
    # US$0.80 for one customer's whole day; most customers cost a fraction of a cent.
    daily_tokens: int = Field(5_000_000, ge=0,
                              description="tokens per customer per UTC day; 0: no cap")
    # Empty: the built-in texts in the business's language (bot.messages).
    notice: str = ""
    budget_notice: str = ""
    notice_every_minutes: float = Field(60.0, gt=0, description="at most one notice per period")


class TakeoverSettings(Section):
    """The owner writing in a chat from the phone pauses that chat's agent."""

    pause_hours: float = Field(12.0, gt=0)
    commands: bool = True  # "#bot off | on | status" typed in the chat
    revoke_commands: bool = True  # delete the command for everyone, where the transport can
    report_to_self: bool = True  # "#bot status" answers in the owner's "Message yourself" chat


class OptOutSettings(Section):
    """STOP / BAJA: whole-message keywords, matched ignoring case, accents and punctuation."""

    stop_words: list[str] = Field(default_factory=lambda: [
        "stop", "unsubscribe", "no more messages", "stop messages", "opt out",
        "baja", "darme de baja", "cancelar suscripcion", "no mas mensajes", "no me escriban"])
    start_words: list[str] = Field(default_factory=lambda: [
        "start", "subscribe", "unstop", "alta", "darme de alta", "suscribirme"])
    # Empty: the built-in confirmations in the business's language (bot.messages).
    stop_reply: str = ""
    start_reply: str = ""


class FollowUpRule(Section):
    """A lifecycle follow-up: `silent` = `after_hours` after the customer's last message
    while in `stage` (a new message starts the wait again); `entered` = `after_hours` after the
    customer entered `stage` (e.g. N days after a purchase)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    stage: Literal["lead", "customer", "active_user", "churned"]
    when: Literal["silent", "entered"] = "silent"
    after_hours: float = Field(gt=0, le=180 * 24)
    reason: str = Field(min_length=3, max_length=1000)


# A default install follows up like the README says; config/wabot.example.toml repeats
# these so an owner sees what to change.
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"name": "lead_silent", "stage": "lead", "after_hours": 24,
     "reason": "They asked about our products and then went quiet. Check in once, gently: "
               "offer help choosing or answer what was left open."},
    {"name": "after_purchase", "stage": "customer", "when": "entered", "after_hours": 72,
     "reason": "They bought a few days ago. Ask how it is going with their purchase and "
               "whether they need anything."},
    {"name": "customer_inactive", "stage": "customer", "after_hours": 720,
     "reason": "A customer who has not written for a month. Say hello with something "
               "relevant to what they bought or liked; no hard sell."},
)


class FollowUpSettings(Section):
    """Proactive follow-ups (issue #5): when they may go out, caps, misfires, rules."""

    enabled: bool = True
    max_lateness_hours: float = Field(
        12.0, ge=0, description="a follow-up missed while down runs on start if no later")
    max_days_ahead: int = Field(180, ge=1, le=3650)
    on_reply: Literal["drop", "postpone"] = Field(
        "drop", description="the customer wrote after it was scheduled: drop it, or push it "
                            "back by the same delay after their last message")
    max_per_customer: int = Field(2, ge=1, description="proactive messages per customer …")
    per_customer_days: float = Field(7.0, gt=0, description="… within this many days")
    max_per_day: int = Field(200, ge=1, description="per business number, per local day")
    min_gap_hours: float = Field(
        4.0, ge=0, description="proactive messages to one customer at least this far apart, "
                               "whatever their source; a rule yields to the agent's own "
                               "follow-up due within it")
    send_hours: str = Field("09:00-20:00", pattern=r"^\d\d:\d\d-\d\d:\d\d$",
                            description="when the business profile states no hours")
    spread_minutes: float = Field(
        20.0, ge=0, le=240, description="moved follow-ups spread over this much after opening")
    rules: list[FollowUpRule] = Field(
        default_factory=lambda: [FollowUpRule(**r) for r in DEFAULT_RULES],
        description="lifecycle rules; `rules = []` switches them off")
    optout: OptOutSettings = OptOutSettings()

    @field_validator("send_hours")
    @classmethod
    def _span(cls, v: str) -> str:
        start, end = v.split("-")
        if not "00:00" <= start < end <= "23:59" or max(start[3:], end[3:]) > "59":
            raise ValueError(f"{v!r} must look like 09:00-20:00, start before end")
        return v

    @field_validator("rules")
    @classmethod
    def _unique_rules(cls, v: list[FollowUpRule]) -> list[FollowUpRule]:
        names = [r.name for r in v]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two rules are named {name!r}: names must be unique")
            if name in ("agent", "all"):
                raise ValueError(f"{name!r} is reserved: pick another rule name")
        return v


# ── knowledge (catalog and documents the agents search) ─────────────────────────────────
class KnowledgeSettings(Section):
    """The catalog (business profile) and the documents in `dir` the agents search."""

    enabled: bool = True
    dir: Path = Path("knowledge")  # Markdown, text and PDF files; product pictures
    featured_tokens: int = Field(
        600, ge=0, description="the prompt's share for featured products; the rest is searched")
    results: int = Field(5, ge=1, le=20, description="results per search")
    chunk_chars: int = Field(1200, ge=200, le=8000)
    embeddings_model: str | None = None  # set: semantic search through /v1/embeddings too
    max_media_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)

# ── end knowledge ───────────────────────────────────────────────────────────────────────


class WhatsAppSettings(Section):
    transport: Literal["web", "cloud"] = "web"  # web: WhatsApp Web (neonize); cloud: Meta's API
    session_file: str = "whatsapp-session.sqlite3"
    # Where the linked device's keys live (`bot.gateway.web.devices`). auto: in the
    # database when it is PostgreSQL (the number's session resumes on whichever node takes
    # its lease), else the file; a file that already holds a login is kept.
    session_store: Literal["auto", "file", "database"] = "auto"
    pair_phone: str | None = None

    @field_validator("pair_phone")
    @classmethod
    def _pair_e164(cls, v: str | None) -> str | None:
        from bot.phones import parse_setting

        return parse_setting(v) if v else v
    call_timeout: float = Field(20.0, gt=0)
    probe_host: str = "web.whatsapp.com"  # probed before neonize's Go layer may connect
    probe_port: int = Field(443, ge=1, le=65535)
    backoff_initial: float = Field(2.0, gt=0)  # seconds between connection attempts, doubling
    backoff_cap: float = Field(300.0, gt=0)
    # Threads for neonize's Go calls, a pool of their own (`bot.gateway.web.goclient.GoThreads`):
    # a send may hold its thread for whatsmeow's whole request timeout (75 s + one retry).
    go_threads: int = Field(32, ge=4, le=512)


class PacingSettings(Section):
    """The number's send pace, the offline backlog, WhatsApp's restrictions and its AI
    label (WhatsApp Web; the pace applies to every transport)."""

    # neonize's FAQ: stay under 20–30 a minute. 20 is the low end: each bubble is a
    # message, and the owner's own phone sends on the same number outside our count.
    messages_per_minute: int = Field(20, ge=2, le=120, description="sends per rolling minute")
    burst: int = Field(6, ge=0, description="of those, kept for customers waiting now")
    backlog_max_age_hours: float = Field(
        24.0, gt=0, description="older messages delivered after downtime are not answered")
    backlog_turns: int = Field(2, ge=1, le=64, description="backlog chats answered at once")
    backlog_settle_seconds: float = Field(
        120.0, gt=0, description="start answering the backlog if WhatsApp never says it is done")
    bot_label: bool = False  # NEONIZE_BOT_TAG: the "AI" label on every 1:1 message
    phone_offline_warn_days: float = Field(
        10.0, gt=0, le=13, description="warn when the phone has shown no sign for this long")

    @model_validator(mode="after")
    def _burst_below_cap(self) -> PacingSettings:
        if self.burst >= self.messages_per_minute:
            raise ValueError("pacing.burst must be below pacing.messages_per_minute")
        return self


# --- the WhatsApp Cloud API transport (whatsapp.transport = "cloud") -------------------------

class CloudSettings(Section):
    """Meta's WhatsApp Cloud API: the number's id, the app's secrets, the webhook."""

    phone_number_id: str = Field("", pattern=r"^\d*$")
    access_token: SecretStr | None = None  # a system user's permanent token
    app_secret: SecretStr | None = None  # verifies X-Hub-Signature-256 on every webhook
    verify_token: SecretStr | None = None  # the webhook subscription handshake
    graph_url: str = Field("https://graph.facebook.com/v21.0", pattern=r"^https?://")
    public_url: str = ""  # where Meta reaches this daemon, e.g. https://bot.example.com
    listen_host: str = "127.0.0.1"  # the webhook server, behind the HTTPS reverse proxy
    listen_port: int = Field(8080, ge=0, le=65535)
    followup_template: str = ""  # approved template for messages outside the 24-hour window
    template_language: str = "en_US"
    template_parameter: Literal["text", "name", "none"] = "text"
    timeout: float = Field(20.0, gt=0, le=120)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_initial: float = Field(1.0, ge=0)
    backoff_cap: float = Field(30.0, ge=0)


CLOUD_REQUIRED = ("phone_number_id", "access_token", "app_secret", "verify_token")

# --- end of the Cloud API transport's settings ------------------------------------------


# --- the owner's console, webhooks, alerts, run log ----------------------------------------


class HttpSettings(Section):
    """The console (web page + /api/v1) served by the daemon. Loopback by default: reach it
    through an SSH tunnel (`ssh -L 8080:127.0.0.1:8080 vps`), never exposed unless you say so."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535, description="0: any free port")
    api_token: SecretStr | None = None  # unset: generated into STATE_DIR/console-token (0600)
    public_url: str | None = None  # how the owner reaches it, for printed links
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="page login lifetime")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="larger requests get 413")
    failed_auth_per_minute: int = Field(10, ge=1, description="401s per client per minute")
    # The addresses of reverse proxies whose X-Forwarded-For names the client (for the
    # failed-login limit). Empty: the header is ignored, whoever sends it.
    trusted_proxies: list[str] = Field(default_factory=list)


WEBHOOK_EVENTS = ("message.received", "message.sent", "customer.created",
                  "customer.stage_changed", "customer.opted_out", "followup.sent",
                  "turn.failed", "connection.changed", "owner.alert")


class WebhookSettings(Section):
    """Events POSTed as JSON to these URLs, signed with HMAC-SHA256 (header X-Wabot-Signature)."""

    urls: list[str] = Field(default_factory=list)
    secret: SecretStr | None = None  # required when urls are set
    events: list[str] = Field(default_factory=list, description="empty: every event")
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    backoff_initial_seconds: float = Field(5.0, gt=0)
    backoff_cap_seconds: float = Field(600.0, gt=0)
    give_up_hours: float = Field(24.0, gt=0, description="undelivered events older are dropped")

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return v

    @field_validator("events")
    @classmethod
    def _known_events(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in WEBHOOK_EVENTS:
                raise ValueError(f"unknown event {name!r}: use {', '.join(WEBHOOK_EVENTS)}")
        return v

    @model_validator(mode="after")
    def _secret_with_urls(self) -> WebhookSettings:
        if self.urls and self.secret is None:
            raise ValueError("webhook urls need a secret to sign with (webhooks.secret, "
                             "WABOT_WEBHOOKS__SECRET)")
        return self


class AlertSettings(Section):
    """The owner is told when a turn fails, a daily cap is hit, a customer asks for a human,
    WhatsApp logs the device out, or the daemon restarts after a crash."""

    to_self: bool = True  # on WhatsApp too: the owner's "Message yourself" chat (or owner_number)
    # The owner's own phone, as E.164: alerts go there instead of "Message yourself". On the
    # Cloud API, which has no chat with yourself, the only WhatsApp way: free text while this
    # number wrote to the business within 24 h, else the approved `template`.
    owner_number: str = ""
    template: str = ""  # Cloud API: approved template for alerts outside the 24-hour window
    template_language: str = ""  # its language code; empty: cloud.template_language
    ask_human_tool: bool = True  # the agent may call `ask_for_human`
    keep: int = Field(200, ge=1, description="recent alerts shown on the page")

    @field_validator("owner_number")
    @classmethod
    def _owner_e164(cls, v: str) -> str:
        from bot.phones import parse_setting

        return parse_setting(v) if v else v


class RunLogSettings(Section):
    """Every model call of a turn, kept for "why did it say that"."""

    enabled: bool = True
    retention_days: float = Field(30.0, gt=0)


# --- end of the console's settings ---------------------------------------------------------


class RetrySettings(Section):
    """Turns that failed while the model was down are answered once it is back (issue #16.7).

    While failed turns younger than `max_age_hours` wait, the daemon asks the model a
    one-word question every `probe_seconds`; once it answers with text, the waiting
    customers' failed messages are retried, oldest customer first (one alone until a retried
    turn is answered), with an instruction to acknowledge the delay. A retry that fails is
    tried again with backoff until a turn succeeds or the messages are too old."""

    enabled: bool = True
    max_age_hours: float = Field(12.0, gt=0, le=24 * 14,
                                 description="older failed turns are not retried")
    probe_seconds: float = Field(60.0, ge=5, le=3600,
                                 description="how often the model is asked while turns wait")


class VoiceBudgetSettings(Section):
    """Voice-note transcription is paid per audio minute (issue #16.12): it counts towards
    the customer's `limits.daily_tokens` and a business-wide daily budget. Over either, the
    note is not transcribed and the agent asks the customer to type."""

    # whisper-1 costs US$0.006 a minute, what 40k prompt tokens cost at the default price.
    tokens_per_minute: int = Field(40_000, ge=0,
                                   description="a minute of audio counts as this many tokens")
    business_daily_minutes: float = Field(
        600.0, ge=0, description="audio minutes transcribed per UTC day for all customers; "
        "0: no cap")
    # The transport gives the size, not the length: WhatsApp voice notes are Opus at about
    # 16 kbit/s. Music files at higher bit rates are over-counted, never under.
    bytes_per_second: int = Field(2000, ge=100, description="to estimate audio length")


class FleetSettings(Section):
    """Many numbers in one process, several processes (nodes) on one PostgreSQL database.

    Every `wabot run` is a node: it holds a lease on each number it serves, renews it every
    `renew_seconds`, and another node takes a number over once its lease lapses."""

    node_id: str = Field("", pattern=r"^[A-Za-z0-9_.:-]{0,128}$",
                         description="empty: the host name plus a suffix per start")
    lease_seconds: float = Field(20.0, ge=3, le=600,
                                 description="a dead node's numbers move after this long")
    renew_seconds: float = Field(5.0, gt=0, le=200)

    @model_validator(mode="after")
    def _renew_well_before_expiry(self) -> FleetSettings:
        if self.renew_seconds * 3 > self.lease_seconds:
            raise ValueError("fleet.renew_seconds must be at most a third of "
                             "fleet.lease_seconds (a lease is renewed well before it lapses)")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WABOT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
        validate_default=True,
        # Only WABOT_* lines of .env are settings (a typo among them is refused); the
        # OPENAI_* ones are read by `load_settings`; anything else belongs to others.
        dotenv_filtering="match_prefix",
    )

    tenant: str = Field("default", pattern=r"^[A-Za-z0-9_.+-]{1,64}$")
    state_dir: Path = Path("data")
    database_url: str | None = None  # default: sqlite file in state_dir
    database_pool: int = Field(
        10, ge=1, le=500, description="PostgreSQL connections a process keeps open; twice "
        "as many more under load. Each node of a fleet holds up to three times this (plus "
        "five for follow-ups): keep nodes × that under the server's max_connections")
    mongodb_url: SecretStr | None = None  # set: agent memory lives in MongoDB
    mongodb_database: str = "wabot"
    business_file: Path | None = None  # default: the project's config/business.yaml, else built in
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    stop_grace_seconds: float = Field(20.0, ge=0, le=300)

    llm: LLMSettings = LLMSettings()
    inbox: InboxSettings = InboxSettings()
    agents: AgentSettings = AgentSettings()
    presenter: PresenterSettings = PresenterSettings()
    whatsapp: WhatsAppSettings = WhatsAppSettings()
    cloud: CloudSettings = CloudSettings()
    media: MediaSettings = MediaSettings()
    access: AccessSettings = AccessSettings()
    limits: LimitSettings = LimitSettings()
    takeover: TakeoverSettings = TakeoverSettings()
    heartbeat_seconds: float = Field(5.0, gt=0, le=300, description="for `wabot status`")
    memory: MemorySettings = MemorySettings()
    followups: FollowUpSettings = FollowUpSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    # the owner's console
    http: HttpSettings = HttpSettings()
    webhooks: WebhookSettings = WebhookSettings()
    alerts: AlertSettings = AlertSettings()
    runs: RunLogSettings = RunLogSettings()
    # reliability (issue #16): retried failed turns, the transcription budget
    retry: RetrySettings = RetrySettings()
    voice_budget: VoiceBudgetSettings = VoiceBudgetSettings()
    pacing: PacingSettings = PacingSettings()
    fleet: FleetSettings = FleetSettings()

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str | None) -> str | None:
        if v and not v.split(":", 1)[0].startswith(("sqlite", "postgres")):
            raise ValueError("use sqlite:///path/to/file.db or postgresql://user@host/db")
        return v

    @property
    def sql_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir.resolve() / 'wabot.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        toml_path = _TOML_PATH.get()
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from the config file, the environment and overrides.

    `config` (or `$WABOT_CONFIG`, else `config/wabot.toml` when it exists) is a TOML file.
    Raises SettingsError with one line per problem.
    """
    env = os.environ
    path = config or (Path(env["WABOT_CONFIG"]) if env.get("WABOT_CONFIG") else None)
    if path is not None and not path.is_file():
        raise SettingsError(f"config file {path} does not exist: create it from "
                            "config/wabot.example.toml or fix --config / WABOT_CONFIG")
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    if path is not None:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    base = project_dir(path) if path is not None else None
    dotenv = base / ".env" if base is not None else Path(".env")
    token = _TOML_PATH.set(path)
    try:
        settings = Settings(_env_file=dotenv, **overrides)
    except ValidationError as exc:
        raise SettingsError(explain(exc, path, Settings)) from None
    finally:
        _TOML_PATH.reset(token)
    if base is not None:
        anchor_paths(settings, base)
    _check_paths(settings, path)
    _check_transport(settings, path)
    if problem := session_store_problem(settings):
        raise SettingsError(f"invalid settings:\n  - {problem}")
    return _apply_openai_env(settings, {**_dotenv_openai(dotenv), **env})


def project_dir(config: Path) -> Path:
    """Where the relative paths of the settings start, whichever source gave them (the
    file, the environment, `.env`, an instance's env file): the config file's folder, or
    the folder above it when that one is called `config`. `wabot init`'s layout (the
    project folder holding config/wabot.toml, data/, knowledge/, .env) and the service's
    (/etc/wabot/wabot.toml beside business.yaml and knowledge/) both read as they are
    written, whatever the working directory (`/` under systemd)."""
    folder = Path(os.path.abspath(config)).parent
    return folder.parent if folder.name == "config" else folder


def anchor_paths(settings: Settings, base: Path) -> None:
    """Relative state_dir, business_file and knowledge.dir made absolute from `base`; with
    no business_file, the project's config/business.yaml when there is one."""
    settings.state_dir = base / settings.state_dir
    settings.knowledge.dir = base / settings.knowledge.dir
    if settings.business_file is not None:
        settings.business_file = base / settings.business_file
    elif (base / PROFILE).is_file():
        settings.business_file = base / PROFILE


def _check_paths(settings: Settings, path: Path | None) -> None:
    folder = settings.knowledge.dir
    if folder.exists() and not folder.is_dir():
        source = f"the config file {path} or " if path else "the config file or "
        raise SettingsError(
            f"invalid settings:\n  - knowledge.dir: {folder} is a file: point it at a folder "
            "of Markdown, text and PDF files (it may be missing: then only the catalog is "
            f"searched); fix it in {source}WABOT_KNOWLEDGE__DIR")


def _dotenv_openai(dotenv: Path) -> dict[str, str]:
    """OPENAI_API_KEY / OPENAI_BASE_URL written in `.env` (the environment wins)."""
    from dotenv import dotenv_values

    if not dotenv.is_file():
        return {}
    return {k: v for k, v in dotenv_values(dotenv).items()
            if k in ("OPENAI_API_KEY", "OPENAI_BASE_URL") and v}


def _check_transport(settings: Settings, path: Path | None) -> None:
    """The Cloud API transport cannot start without its ids and secrets."""
    if settings.whatsapp.transport != "cloud":
        return
    c = settings.cloud
    missing = [name for name in CLOUD_REQUIRED if not getattr(c, name)]
    if missing:
        source = f"the config file {path} or " if path else "the config file or "
        raise SettingsError("invalid settings:\n" + "\n".join(
            f"  - cloud.{name}: required when whatsapp.transport = \"cloud\"; set it in "
            f"{source}WABOT_CLOUD__{name.upper()}" for name in missing))


def session_store_problem(settings: Settings) -> str | None:
    """Why `whatsapp.session_store` cannot work with this database, or None."""
    if settings.whatsapp.session_store == "database" and not settings.sql_url.startswith(
            "postgres"):
        return ("whatsapp.session_store: \"database\" keeps the WhatsApp session in "
                "PostgreSQL, but database_url is SQLite; set database_url "
                "(WABOT_DATABASE_URL) to postgresql://…, or session_store to \"auto\" or "
                "\"file\" (WABOT_WHATSAPP__SESSION_STORE)")
    return None


def _apply_openai_env(settings: Settings, env: Mapping[str, str]) -> Settings:
    llm = settings.llm
    if llm.api_key is None and env.get("OPENAI_API_KEY"):
        llm.api_key = SecretStr(env["OPENAI_API_KEY"])
    if llm.base_url is None and env.get("OPENAI_BASE_URL"):
        llm.base_url = env["OPENAI_BASE_URL"]
    return settings

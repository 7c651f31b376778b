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

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG = Path("config/wabot.toml")
_TOML_PATH: ContextVar[Path | None] = ContextVar("wabot_toml_path", default=None)


class SettingsError(ValueError):
    """Configuration that cannot work; the message names each field and the fix."""


class LLMSettings(BaseModel):
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


class InboxSettings(BaseModel):
    debounce_seconds: float = Field(2.0, ge=0, le=60)
    debounce_max_seconds: float = Field(8.0, ge=0, le=300)
    max_concurrent_turns: int = Field(64, ge=1, le=10000)
    max_text_chars: int = Field(4000, ge=100, description="longer inbound text is truncated")
    allow_groups: bool = False


class AgentSettings(BaseModel):
    idle_evict_minutes: float = Field(30.0, gt=0)
    sweep_seconds: float = Field(60.0, gt=0)
    max_cached_agents: int = Field(50_000, ge=1)
    failure_reply: str = (
        "Sorry, I'm having trouble answering right now. Someone will get back to you shortly."
    )


class PresenterSettings(BaseModel):
    enabled: bool = True  # False: send at once (no read receipt pause, no typing)
    read_delay_seconds: float = Field(1.0, ge=0)
    chars_per_second: float = Field(18.0, gt=0)  # a quick typist on a phone
    min_typing_seconds: float = Field(1.0, ge=0)
    max_typing_seconds: float = Field(8.0, ge=0)
    jitter: float = Field(0.2, ge=0, le=0.9)
    bubble_chars: int = Field(320, ge=40)
    max_bubbles: int = Field(4, ge=1, le=20)
    between_bubbles_seconds: float = Field(0.8, ge=0)


class WhatsAppSettings(BaseModel):
    session_file: str = "whatsapp-session.sqlite3"
    pair_phone: str | None = None
    call_timeout: float = Field(20.0, gt=0)
    probe_host: str = "web.whatsapp.com"
    probe_port: int = 443


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WABOT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
        validate_default=True,
    )

    tenant: str = Field("default", pattern=r"^[A-Za-z0-9_.+-]{1,64}$")
    state_dir: Path = Path("data")
    database_url: str | None = None  # default: sqlite file in state_dir
    mongodb_url: SecretStr | None = None  # set: agent memory lives in MongoDB
    mongodb_database: str = "wabot"
    business_file: Path | None = None  # default: config/business.yaml, else the example
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    stop_grace_seconds: float = Field(20.0, ge=0, le=300)

    llm: LLMSettings = LLMSettings()
    inbox: InboxSettings = InboxSettings()
    agents: AgentSettings = AgentSettings()
    presenter: PresenterSettings = PresenterSettings()
    whatsapp: WhatsAppSettings = WhatsAppSettings()

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
    token = _TOML_PATH.set(path)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_explain(exc, path)) from None
    finally:
        _TOML_PATH.reset(token)
    return _apply_openai_env(settings, env)


def _apply_openai_env(settings: Settings, env: Mapping[str, str]) -> Settings:
    llm = settings.llm
    if llm.api_key is None and env.get("OPENAI_API_KEY"):
        llm.api_key = SecretStr(env["OPENAI_API_KEY"])
    if llm.base_url is None and env.get("OPENAI_BASE_URL"):
        llm.base_url = env["OPENAI_BASE_URL"]
    return settings


def _explain(exc: ValidationError, path: Path | None) -> str:
    source = f"the config file {path} or " if path else "the config file or "
    lines = ["invalid settings:"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        env_name = "WABOT_" + "__".join(str(p).upper() for p in err["loc"])
        given = err.get("input")
        shown = "" if isinstance(given, dict) or "key" in field or "url" in field else f" (got {given!r})"
        lines.append(f"  - {field}: {err['msg']}{shown}; fix it in {source}{env_name}")
    return "\n".join(lines)

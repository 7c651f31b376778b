"""The business profile (YAML): who the agents speak for, what they sell, when it is open."""

from __future__ import annotations

from datetime import datetime, time, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class BusinessError(ValueError):
    """A business profile that cannot be used; the message says what to fix."""


class Product(BaseModel):
    name: str = Field(min_length=1)
    price: float | None = Field(None, ge=0)
    currency: str = ""
    description: str = ""
    sku: str = ""
    stock: int | None = None  # None: not tracked; 0: out of stock
    variants: list[str] = Field(default_factory=list)  # "red / 38", "blue / 40"
    image: str = ""  # an https URL, or a file path (relative to the knowledge folder)
    featured: bool = False  # listed in every prompt first (within the featured budget)


INIT_PLACEHOLDER_NOTES = "Policies, shipping, returns: anything the agents must know."


class FAQ(BaseModel):
    q: str
    a: str


class Business(BaseModel):
    name: str = Field(min_length=1)
    persona: str = "a friendly, concise sales assistant"
    language: str = "the customer's language"
    timezone: str = "UTC"
    hours: dict[str, str] = Field(default_factory=dict)  # mon: "09:00-18:00", sun: "closed"
    products: list[Product] = Field(default_factory=list)
    faq: list[FAQ] = Field(default_factory=list)
    notes: str = ""  # anything else the agents must know (policies, shipping, returns)

    @field_validator("notes")
    @classmethod
    def _not_the_placeholder(cls, v: str) -> str:
        # `wabot init` once wrote this hint as the value: it reached every prompt as
        # "Also: Policies, shipping, returns: …" (issue #24).
        return "" if v.strip() == INIT_PLACEHOLDER_NOTES else v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {v!r}: use an IANA name like America/Mexico_City") from exc
        return v

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: dict[str, str]) -> dict[str, str]:
        for day, span in v.items():
            if day not in DAYS:
                raise ValueError(f"unknown day {day!r}: use {', '.join(DAYS)}")
            if span.strip().lower() != "closed":
                _parse_span(span)
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def open_span(self, day_index: int) -> tuple[time, time] | None:
        """Opening hours of a weekday (0 = Monday), or None when closed/unset."""
        span = self.hours.get(DAYS[day_index], "")
        if not span or span.strip().lower() == "closed":
            return None
        return _parse_span(span)

    def hours_text(self) -> str:
        if not self.hours:
            return "not stated"
        return ", ".join(f"{d} {self.hours[d]}" for d in DAYS if d in self.hours)

    def show(self, at: datetime) -> str:
        """A time as the owner reads it: local to the business, with its abbreviation."""
        return local_time(at, self.tz)

    def local_now(self, now: datetime) -> datetime:
        return now.astimezone(self.tz)


def local_time(at: datetime, zone: tzinfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`2026-01-06 09:00 CST`: every time shown to the owner reads like this."""
    local = at.astimezone(zone)
    return f"{local.strftime(fmt)} {local.tzname()}"


def _parse_span(span: str) -> tuple[time, time]:
    try:
        start, end = (time.fromisoformat(p.strip()) for p in span.split("-", 1))
    except ValueError as exc:
        raise ValueError(f"hours {span!r} must look like 09:00-18:00 or 'closed'") from exc
    if end <= start:
        raise ValueError(f"hours {span!r} end before they start")
    return start, end


def load_business(path: Path) -> Business:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BusinessError(f"business profile {path} does not exist: copy "
                            "config/business.example.yaml there and edit it") from None
    except yaml.YAMLError as exc:
        raise BusinessError(f"business profile {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BusinessError(f"business profile {path} must be a mapping (name:, persona:, …)")
    try:
        return Business.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{where(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise BusinessError(f"business profile {path} is invalid: {problems}") from None


def where(loc: tuple[int | str, ...]) -> str:
    """`products.0.price` → `products[1].price`: positions as a person counts them."""
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


DEFAULT_BUSINESS = Business(
    name="our shop",
    persona="a friendly, concise assistant of a small business",
    notes="No product list is configured yet: take the customer's question, be helpful, "
          "and offer that someone from the team will follow up with details.",
)

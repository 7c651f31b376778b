"""The console's words in the business's language: one catalogue per language (`en`, `es`,
`pt`), English the fallback for a language without one and for a key a catalogue lacks.

The language is the business profile's (`language: Spanish` → `es`, read as the customer
texts read it: `bot.messages.language_code`); in a fleet each number's pages speak its own
business's. Templates call `t("key", name=value)`; `t.html(...)` for an entry that holds
markup of ours (the values put in it are escaped). Errors the pages show carry their key
(`Said`): the API says them in English, from the same catalogue.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from markupsafe import Markup

from bot.messages import language_code
from bot.web.i18n import en, es, pt

CATALOGUES: dict[str, dict[str, str]] = {"en": en.TEXTS, "es": es.TEXTS, "pt": pt.TEXTS}

_STATUS = {"connected": "status.connected", "not connected": "status.not_connected",
           "not started": "status.not_started",
           "connected (keep-alive restored)": "status.connected",
           "offline: WhatsApp disconnected, reconnecting": "status.disconnected",
           "offline: WhatsApp keep-alive timed out, reconnecting": "status.keepalive",
           "served by another node of the fleet": "status.elsewhere"}
_RETRY = re.compile(r"^offline: (.*?)(?:reconnecting|retrying) in (\d+) s$")


class Texts:
    """One language's catalogue, called as `t("nav.today")`."""

    def __init__(self, code: str) -> None:
        self.code = code if code in CATALOGUES else "en"
        self._texts = CATALOGUES[self.code]

    def __call__(self, key: str, **params: Any) -> str:
        text = self._texts.get(key) or en.TEXTS.get(key)
        if text is None:
            raise KeyError(f"no console text {key!r} (bot/web/i18n/en.py)")
        return text.format(**params) if params else text

    def html(self, key: str, **params: Any) -> Markup:
        """An entry with markup of ours (`<code>`, `<strong>`); the values are escaped."""
        return Markup(self(key)).format(**params) if params else Markup(self(key))

    def maybe(self, key: str, default: str) -> str:
        """The entry if the catalogue has one (an alert's kind, a stage), else `default`."""
        return self(key) if key in en.TEXTS else default

    def error(self, exc: BaseException) -> str:
        """An error as the page shows it: in this language when it carries its key."""
        if isinstance(exc, Said) and exc.key:
            params = dict(exc.params)
            if "status" in params:  # the WhatsApp line it quotes
                params["status"] = self.status(str(params["status"]))
            return self(f"error.{exc.key}", **params)
        return str(exc)

    def status(self, line: str) -> str:
        """The WhatsApp card's line (systemd's STATUS, in English) in this language, for
        the lines every transport says; any other line as it is."""
        if line in _STATUS:
            return self(_STATUS[line])
        if line.startswith("connected as "):
            return self("status.connected_as", who=line.removeprefix("connected as "))
        if line.startswith("waiting for QR scan"):
            return self("status.waiting_qr")
        retry = _RETRY.match(line)
        if retry:
            return self("status.offline_retry", why=retry[1], seconds=retry[2])
        if line.startswith("offline: "):
            return self("status.offline", why=line.removeprefix("offline: "))
        return line

    def outcome(self, line: str) -> str:
        """What became of an alert's WhatsApp copy (`bot.events.alerts`: "sent to …",
        "not sent: …") in this language."""
        if line.startswith("sent to "):
            return self("alerts.sent_to", to=line.removeprefix("sent to "))
        if line.startswith("not sent: "):
            return self("alerts.not_sent", why=line.removeprefix("not sent: "))
        return line

    def weekday(self, at: datetime) -> str:
        return self("weekdays").split()[at.weekday()]


def texts(language: str) -> Texts:
    """The console's texts for a business profile's `language` (`Spanish`, `pt-BR`…)."""
    return Texts(language_code(language))


ENGLISH = Texts("en")


class Said(Exception):
    """An error whose words are in the catalogue (`error.<key>`, filled with `params`):
    `str()` is the English (what the API and the logs say), `Texts.error` the page's."""

    def __init__(self, message: str = "", *, key: str = "", **params: Any) -> None:
        self.key = key
        self.params = params
        super().__init__(ENGLISH(f"error.{key}", **params) if key else message)

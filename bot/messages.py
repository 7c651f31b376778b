"""The fixed messages wabot sends without the model, in the business's language.

The failure reply, the rate-limit and daily-budget notices and the opt-out confirmations
follow `language` in the business profile: English and Spanish ship; any other language
falls back to English. Every text can be replaced in the settings (a non-empty
`agents.failure_reply`, `limits.notice`, `limits.budget_notice`,
`followups.optout.stop_reply` / `start_reply` wins over the built-in one).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

Key = Literal["failure_reply", "rate_notice", "budget_notice", "stop_reply", "start_reply"]

TEXTS: dict[str, dict[Key, str]] = {
    "en": {
        "failure_reply": "Sorry, I'm having trouble answering right now. "
                         "Someone from the team will get back to you shortly.",
        "rate_notice": "You're sending messages faster than I can read them. "
                       "Give me a minute and I'll answer everything.",
        "budget_notice": "I've reached my limit for today. "
                         "Someone from the team will get back to you.",
        "stop_reply": "Done: we won't message you again unless you write to us. "
                      "Reply START to subscribe again.",
        "start_reply": "Welcome back: you're subscribed again.",
    },
    "es": {
        "failure_reply": "Perdona, ahora mismo no puedo responder. "
                         "Alguien del equipo te escribirá en breve.",
        "rate_notice": "Me estás enviando mensajes más rápido de lo que puedo leerlos. "
                       "Dame un minuto y te respondo todo.",
        "budget_notice": "Por hoy llegué a mi límite. Alguien del equipo te responderá.",
        "stop_reply": "Listo: no te escribiremos más a menos que nos escribas. "
                      "Responde ALTA para volver a recibir mensajes.",
        "start_reply": "¡Listo! Vuelves a recibir nuestros mensajes.",
    },
}

_NAMES = {"en": ("en", "english", "ingles", "inglés"),
          "es": ("es", "spanish", "espanol", "español", "castellano"),
          # Recognised for the console's language; the texts above fall back to English.
          "pt": ("pt", "portuguese", "portugues", "brazilian", "brasileiro")}


def language_code(language: str) -> str:
    """`"Spanish (Mexico)"`, `"es-MX"`, `"español"` → `es`; `"Português"`, `"pt-BR"` →
    `pt`; anything unknown → `en`."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", language.casefold())
                   if not unicodedata.combining(c))
    words = bare.replace("-", " ").replace("_", " ").replace("(", " ").replace(",", " ").split()
    for code, names in _NAMES.items():
        if words and (words[0] in names or any(w in names[1:] for w in words)):
            return code
    return "en"


def text(key: Key, language: str, override: str = "") -> str:
    """The text to send: the owner's override, else the built-in one in that language."""
    if override.strip():
        return override
    return TEXTS.get(language_code(language), TEXTS["en"])[key]


@dataclass(frozen=True, slots=True)
class Canned:
    """Every fixed message, resolved once for a business."""

    failure_reply: str
    rate_notice: str
    budget_notice: str
    stop_reply: str
    start_reply: str

    @classmethod
    def resolve(cls, language: str, overrides: dict[Key, str]) -> Canned:
        return cls(**{k: text(k, language, overrides.get(k, "")) for k in TEXTS["en"]})

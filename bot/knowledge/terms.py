"""Search terms: lower case, no accents, a light Spanish/English stemmer, no stop words.

Documents and queries go through the same function, so "zapatos rojos" and "Zapato Rojo"
meet on `zapat roj`, "shoes" on `sho`, "devoluciones" and "devolución" on `devolucion`.
Both index backends store these terms, so SQLite and PostgreSQL rank the same words.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[a-z0-9]+")
_VOWELS = "aeiou"

_STOP = """
a al an and are as at be by de del do does el en es for from have has how i in is it its la
las lo los me mi my of on or para por que quiero se su sus tiene tienen the their this to tu
un una uno unos unas what y you your yo con sin hay"""
STOP_WORDS = frozenset(_STOP.split())


def fold(text: str) -> str:
    """Lower case without accents (ñ stays n: customers type both)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def stem(word: str) -> str:
    """Plural and gender endings off, so singular/plural and -o/-a forms share a stem."""
    w = word
    if len(w) <= 3 or w.isdigit():
        return w
    if w.endswith("ces") and len(w) > 5:  # lápices → lapiz
        w = w[:-3] + "z"
    elif w.endswith("ies") and len(w) > 4:  # berries → berri
        w = w[:-3] + "i"
    elif w.endswith("es") and len(w) > 4 and w[-3] not in _VOWELS:  # colores, boxes
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("y") and len(w) > 3:  # berry → berri
        w = w[:-1] + "i"
    elif len(w) > 3 and w[-1] in _VOWELS and w[-1] != "i":
        w = w[:-1]
    return w


def terms(text: str) -> list[str]:
    """The stemmed search terms of a text, in order, stop words dropped."""
    return [stem(w) for w in _WORD.findall(fold(text)) if w not in STOP_WORDS]


def term_text(text: str) -> str:
    return " ".join(terms(text))

"""A timezone as an owner types it (`Mexico City`, `méxico`, `Spain`) → an IANA zone name.

`wabot init` asks for the business's timezone; people answer with a city or a country, not
`America/Mexico_City`. The tz database's own tables name the zones (the last part of a
zone's name is its main city) and the countries (`iso3166.tab`, `zone.tab`); a few names
in Spanish and Portuguese are added because the business may write in them.
"""

from __future__ import annotations

import contextlib
import difflib
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from zoneinfo import TZPATH, available_timezones

# Names an owner may type that the tz database does not spell (accents are ignored).
_CITY_ALIASES = {"ciudad de mexico": "America/Mexico_City", "cdmx": "America/Mexico_City",
                 "mexico df": "America/Mexico_City", "nyc": "America/New_York",
                 "new york city": "America/New_York", "nueva york": "America/New_York",
                 "londres": "Europe/London", "san pablo": "America/Sao_Paulo"}
_COUNTRY_ALIASES = {"espana": "ES", "brasil": "BR", "estados unidos": "US", "usa": "US",
                    "eeuu": "US", "reino unido": "GB", "uk": "GB", "peru": "PE",
                    "republica dominicana": "DO", "alemania": "DE", "francia": "FR",
                    "italia": "IT", "canada": "CA", "panama": "PA", "mejico": "MX"}
# zone.tab lists most countries' main zone first; these it does not.
_MAIN_ZONE = {"BR": "America/Sao_Paulo", "RU": "Europe/Moscow", "AU": "Australia/Sydney",
              "CA": "America/Toronto"}


@dataclass(frozen=True, slots=True)
class Unclear:
    """Why a typed timezone is not one zone, and the zone to suggest (empty: none)."""

    reason: str
    suggestion: str = ""


def plain(text: str) -> str:
    """Lower case, no accents, one space between words: `"  Ciudad de  México"` → `ciudad de mexico`."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", text.casefold())
                   if not unicodedata.combining(c))
    return " ".join(bare.replace("_", " ").replace("-", " ").split())


def find_zone(typed: str) -> str | Unclear:
    """The IANA zone for an IANA name (any case), a city or a country; else why not."""
    text = typed.strip()
    zones = _zones()
    if text in zones:
        return text
    by_lower = {z.casefold(): z for z in zones}
    if text.casefold() in by_lower:
        return by_lower[text.casefold()]
    key = plain(text)
    cities = _cities()
    if key in cities:
        return cities[key]
    countries = _countries()
    if key in countries:
        listed = _country_zones().get(countries[key], [])
        if len(listed) == 1:
            return listed[0][0]
        if listed:
            main = _MAIN_ZONE.get(countries[key], listed[0][0])
            shown = ", ".join(f"{z} ({where})" for z, where in listed[:4])
            more = ", …" if len(listed) > 4 else ""
            return Unclear(f"{text} has several timezones: {shown}{more}; type the city or "
                           "the zone of the business", main)
    suggestion = ""
    for name in difflib.get_close_matches(key, [*cities, *countries], n=1, cutoff=0.75):
        code = countries.get(name, "")
        first = _country_zones().get(code, [("", "")])[0][0]
        suggestion = cities.get(name, _MAIN_ZONE.get(code, first))
    hint = f"; did you mean {suggestion}?" if suggestion else ""
    return Unclear(f"unknown timezone {text!r}: type a city (Mexico City), a country or an "
                   f"IANA name (America/Mexico_City){hint}", suggestion)


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _cities() -> dict[str, str]:
    """`mexico city` → America/Mexico_City: the last part of every zone's name."""
    cities: dict[str, str] = {}
    for zone in sorted(_zones()):
        area, _, city = zone.rpartition("/")
        if area and not area.startswith("Etc") and area not in ("US", "Brazil", "Canada", "Mexico", "Chile"):
            cities.setdefault(plain(city), zone)
    cities.update(_CITY_ALIASES)
    return cities


@cache
def _countries() -> dict[str, str]:
    """`mexico` → MX, from the tz database's country table."""
    names = {plain(name): code for code, name in _table("iso3166.tab", 2)}
    names.update(_COUNTRY_ALIASES)
    return names


@cache
def _country_zones() -> dict[str, list[tuple[str, str]]]:
    """MX → [(America/Mexico_City, Central Mexico), …], most populous first as zone.tab lists them."""
    listed: dict[str, list[tuple[str, str]]] = {}
    for row in _table("zone.tab", 4):
        code, _, zone, *comment = row
        listed.setdefault(code, []).append((zone, comment[0] if comment else ""))
    return listed


def _table(name: str, width: int) -> list[list[str]]:
    """Rows of a tab-separated tz database table: the system's, else the tzdata package's
    (the order zoneinfo itself looks in)."""
    sources = [Path(root) / name for root in TZPATH]
    with contextlib.suppress(ModuleNotFoundError):
        sources.append(Path(str(resources.files("tzdata.zoneinfo").joinpath(name))))
    for path in sources:
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            return [line.split("\t", width - 1) for line in lines
                    if line and not line.startswith("#")]
    return []

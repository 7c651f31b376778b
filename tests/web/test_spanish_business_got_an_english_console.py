"""Issue #24: a bakery in Mexico City with `language: Spanish` in its profile read the whole
console in English, while its customers were answered in Spanish. The pages now speak the
business language (English, Spanish, Portuguese) from one catalogue per language.

- every template is walked: a visible word written in it (text or a shown attribute) that
  does not come from the catalogue fails;
- the Spanish and Portuguese catalogues have every key, with the same `{placeholders}`;
- a Spanish business's pages, banners and errors carry no English text of the catalogue,
  and the banner after a form post is not English text in the URL.
"""

from __future__ import annotations

import asyncio
import re
import string
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from jinja2 import Environment

from bot.messages import language_code
from bot.models import CustomerKey
from bot.web.i18n import CATALOGUES, Texts, en
from tests.fakes.pipeline import BUSINESS, make_settings, pipeline
from tests.web.conftest import TOKEN

TEMPLATES = Path(__file__).resolve().parents[2] / "bot" / "web" / "templates"
SHOWN_ATTRIBUTES = {"alt", "title", "placeholder", "aria-label", "data-busy", "data-label"}
NAMES = {"WhatsApp", "wabot", "ms"}  # the same in every language
ANA = "+5215512345678"


class _Visible(HTMLParser):
    """The text a browser shows of an HTML fragment, and its shown attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_data(self, data: str) -> None:
        self.found.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v for k, v in attrs if k in SHOWN_ATTRIBUTES and v]


def _literal_words(source: str) -> list[str]:
    """Words written in a template's own HTML, outside every `{{ }}` and `{% %}`."""
    literal = "".join(value for _, kind, value in Environment().lex(source) if kind == "data")
    parser = _Visible()
    parser.feed(literal)
    words = re.findall(r"[^\W\d_]{2,}", " ".join(parser.found))
    return [w for w in words if w not in NAMES]


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_no_template_writes_a_word_outside_the_catalogue(template):
    source = (TEMPLATES / template).read_text(encoding="utf-8")
    assert _literal_words(source) == []
    used = re.findall(r"""\bt(?:\.html)?\(\s*["']([\w.]+)["']""", source)
    assert [key for key in used if key not in en.TEXTS  # `t("stage." ~ c.stage)`: a prefix
            and not (key.endswith(".") and any(k.startswith(key) for k in en.TEXTS))] == []


def test_the_walk_finds_english_written_in_a_template():
    assert _literal_words('<p class="x">{{ t("a") }} Paused <b>now</b></p>') == ["Paused",
                                                                                "now"]
    assert _literal_words('<input placeholder="name or number" value="{{ q }}">') == [
        "name", "or", "number"]
    assert _literal_words('<h2>WhatsApp</h2><p>{{ "Not sent" }}</p>') == []


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("code", ["es", "pt"])
def test_every_language_has_every_key_with_its_placeholders(code):
    catalogue = CATALOGUES[code]
    assert sorted(set(en.TEXTS) - set(catalogue)) == []  # missing
    assert sorted(set(catalogue) - set(en.TEXTS)) == []  # stale
    assert {k: _fields(v) for k, v in catalogue.items()} == {
        k: _fields(v) for k, v in en.TEXTS.items()}
    assert len(Texts(code)("weekdays").split()) == 7


@pytest.mark.parametrize(("language", "code"), [
    ("Spanish", "es"), ("español (México)", "es"), ("es-MX", "es"), ("Portuguese", "pt"),
    ("Português", "pt"), ("pt-BR", "pt"), ("English", "en"), ("the customer's language", "en"),
    ("Klingon", "en")])
def test_the_language_is_read_from_the_business_profile(language, code):
    assert language_code(language) == code


def _english_in(html: str, spoken: str) -> list[str]:
    """Texts of the English catalogue (whole sentences and labels) found on a page that
    should speak `spoken`: each fixed part of an entry longer than a word."""
    other = CATALOGUES[spoken]
    found = []
    for key, text in en.TEXTS.items():
        if other[key] == text:
            continue  # the same in both (a name, "Tokens")
        for part in re.split(r"\{[^}]*\}|<[^>]*>", text):
            part = part.strip(" .:;,()")
            if " " in part and len(part) > 8 and part in html:
                found.append(part)
    return found


async def test_a_spanish_business_reads_its_console_in_spanish(
        db_url, console_settings, openai_server):
    if not db_url.startswith("sqlite"):
        pytest.skip("one backend is enough for the words")
    business = BUSINESS.model_copy(update={"language": "Spanish"})
    async with pipeline(console_settings, business=business, serve_http=True) as p:
        await p.say(ANA, "Hola, ¿tienen conchas?", push_name="Ana")
        await p.settle()
        async with httpx.AsyncClient(base_url=p.app.web.url, timeout=10,
                                     headers={"Accept": "text/html"}) as b:
            login = await b.get("/login")
            assert 'lang="es"' in login.text and "Inicia sesión" in login.text
            wrong = await b.post("/login", data={"token": "nope"})
            assert "Token incorrecto" in wrong.text
            await b.post("/login", data={"token": TOKEN})
            pages = {path: (await b.get(path)).text for path in [
                "/", "/customers", "/customers/5215512345678", "/alerts",
                "/customers?stage=nope", "/customers/5215599999999", "/runs/999"]}
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', pages["/"])
            assert csrf is not None
            paused = await b.post("/customers/5215512345678/pause",
                                  data={"csrf": csrf[1], "hours": "1"})
            assert "?" not in paused.headers["location"]  # no banner text in the URL
            pages["paused"] = (await b.get(paused.headers["location"])).text
            p.gateway.connected = asyncio.Event()  # a send that fails says why, in Spanish
            failed = await b.post("/customers/5215512345678/send",
                                  data={"csrf": csrf[1], "text": "Ya salieron"},
                                  follow_redirects=True)
            pages["failed"] = failed.text
        assert {path: _english_in(html, "es") for path, html in pages.items()} == {
            path: [] for path in pages}
        assert "Mensajes recibidos" in pages["/"] and "prospectos" in pages["/"]
        assert "en pausa hasta" in pages["paused"] and "En pausa: el agente" in pages["paused"]
        assert "No enviado: WhatsApp no está conectado" in pages["failed"]
        assert "Ya salieron" in pages["failed"]  # the text kept
        assert "no hay un cliente +5215599999999" in pages["/customers/5215599999999"]
        assert "etapa desconocida" in pages["/customers?stage=nope"]
        assert "CST" in pages["/customers"]  # the business's zone, labelled
        assert await p.app.unit.customers.get(CustomerKey(p.settings.tenant, ANA))


async def test_in_a_fleet_each_numbers_pages_speak_its_own_business_language(
        db_url, console_settings, tmp_path, openai_server, tenant):
    """The configured number in English; a second number run by this process, Spanish; a
    third run elsewhere, whose profile this node reads, Portuguese."""
    if not db_url.startswith("sqlite"):
        pytest.skip("one backend is enough for the words")
    padaria = tmp_path / "padaria.yaml"
    padaria.write_text("name: Padaria Azul\nlanguage: Português\n"
                       "timezone: America/Sao_Paulo\n", encoding="utf-8")
    async with pipeline(console_settings, serve_http=True) as home:
        settings = make_settings(db_url, tmp_path / "second", openai_server, f"{tenant}-es",
                                 presenter={"enabled": False}, inbox={"debounce_seconds": 0})
        spanish = BUSINESS.model_copy(update={"language": "español (México)"})
        async with pipeline(settings, clock=home.clock, shared=home.app.shared,
                            business=spanish) as second:
            home.app.consoles.add(second.app.console, second.app.serving)
            assert home.app.console.numbers is not None
            await home.app.console.numbers.add(f"{tenant}-pt", business_file=str(padaria))
            async with httpx.AsyncClient(base_url=home.app.web.url, timeout=10,
                                         headers={"Accept": "text/html"}) as b:
                await b.post("/login", data={"token": TOKEN})
                pages = {key: (await b.get(f"{base}/customers")).text for key, base in [
                    ("en", ""), ("es", f"/n/{tenant}-es"), ("pt", f"/n/{tenant}-pt")]}
    assert 'lang="en"' in pages["en"] and "No customers." in pages["en"]
    assert 'lang="es"' in pages["es"] and "No hay clientes." in pages["es"]
    assert 'lang="pt"' in pages["pt"] and "Nenhum cliente." in pages["pt"]
    assert [lang for lang in ("es", "pt") if _english_in(pages[lang], lang)] == []

"""`wabot init` for a bakery in Mexico City: answering the timezone question with `Mexico City`
ended, after all eight questions, with only pydantic's "For further information visit
https://errors.pydantic.dev/…" and exit 2, every answer (the hidden API key too) lost. The
same for opening hours written in Spanish. Each answer is now checked when it is typed and
asked again with the reason; city and country names find their IANA zone (or suggest one);
day names may be in the business's language; no library's URL footer is ever the reason."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from bot.cli import app


def init(tmp_path: Path, answers: list[str], *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["init", "--dir", str(tmp_path), "--no-check", *options],
                                input="\n".join(answers) + "\n")
    return result.exit_code, result.output


def profile(tmp_path: Path) -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((tmp_path / "config" / "business.yaml").read_text())
    return loaded


def test_a_city_and_spanish_opening_hours_are_understood(tmp_path):
    code, out = init(tmp_path, ["Panadería Rosa", "Spanish", "Mexico City",
                                "lun-sab 07:00-20:00, dom 08:00-14:00", "", "sk-secret", "", ""])
    assert code == 0, out
    written = profile(tmp_path)
    assert written["timezone"] == "America/Mexico_City"
    assert written["hours"] == {**dict.fromkeys(["mon", "tue", "wed", "thu", "fri", "sat"],
                                                "07:00-20:00"), "sun": "08:00-14:00"}
    assert (tmp_path / ".env").read_text() == "OPENAI_API_KEY=sk-secret\n"


def test_a_wrong_answer_is_asked_again_and_nothing_typed_is_lost(tmp_path):
    code, out = init(tmp_path, ["Panadería Rosa", "español", "Atlantis", "Mexico",
                                "",  # takes the suggestion: America/Mexico_City
                                "lunes a sabado 7-20", "lunes a sábado 7:00-20:00",
                                "", "sk-secret", "", ""])
    assert code == 0, out
    assert "unknown timezone 'Atlantis'" in out
    assert "Mexico has several timezones: America/Mexico_City" in out
    assert "write days and hours like 'lun-vie 09:00-18:00" in out
    assert "pydantic" not in out
    written = profile(tmp_path)
    assert (written["name"], written["timezone"]) == ("Panadería Rosa", "America/Mexico_City")
    assert written["hours"]["sat"] == "07:00-20:00" and written["hours"]["sun"] == "closed"  # type: ignore[index]
    assert (tmp_path / ".env").read_text() == "OPENAI_API_KEY=sk-secret\n"


def test_an_option_that_does_not_read_says_why_in_plain_words(tmp_path):
    code, out = init(tmp_path, [], "--yes", "--timezone", "Mexico Cty")
    assert code == 2
    assert "did you mean America/Mexico_City?" in out and "pydantic" not in out
    code, out = init(tmp_path, [], "--yes", "--hours", "mon-fri 09:00-25:00")
    assert code == 2 and "pydantic" not in out and "09:00-25:00" in out
    code, out = init(tmp_path, [], "--yes", "--hours", "fri-mon 09:00-17:00")
    assert code == 2 and "pydantic" not in out
    assert not (tmp_path / "config").exists()


def test_files_already_there_are_refused_before_the_first_question(tmp_path):
    assert init(tmp_path, [], "--yes")[0] == 0
    code, out = init(tmp_path, ["never asked"])
    assert code == 2 and "already exist" in out and "Business name" not in out


def test_day_names_in_the_business_language_or_english():
    from bot.ops.hours import parse_hours

    assert parse_hours("seg-sex 09:00-18:00, sáb 09:00-13:00", "Portuguese")["sat"] == "09:00-13:00"
    assert parse_hours("Mo-Fr 08:00-17:00", "Deutsch")["fri"] == "08:00-17:00"
    assert parse_hours("mon-fri 9:00-18:00, dom cerrado", "Spanish (Mexico)")["mon"] == "09:00-18:00"

"""Issue #24 (Medium): `systemd/install.sh` copied the example files (a shoe shop,
`OPENAI_API_KEY=sk-replace-me`) and the doctor then reported "✓ business profile: Casa
Azul Shoes" and did not flag the placeholder key. Both are flagged now (and a start with
the placeholder key against a hosted endpoint is refused, as with no key)."""

from __future__ import annotations

from bot.ops.doctor import check_business
from bot.ops.preflight import api_key_problem
from bot.settings import LLMSettings
from tests.ops.test_doctor import ROOT, clean_env, doctor, good_setup  # noqa: F401  (fixture)


def test_the_example_profile_is_flagged(clean_env, tmp_path, openai_server):  # noqa: F811
    config = good_setup(tmp_path, openai_server.base_url, f"sqlite:///{tmp_path / 'w.db'}")
    config.write_text(config.read_text().replace(
        str(tmp_path / "business.yaml"), str(ROOT / "config" / "business.example.yaml")))
    result = doctor("--config", str(config))
    assert result.exit_code == 1
    assert "✗ business profile: " in result.output and "example profile" in result.output
    assert "✓ business profile" not in result.output


def test_the_placeholder_key_is_flagged() -> None:
    problem = api_key_problem(LLMSettings(api_key="sk-replace-me"))
    assert problem is not None and "placeholder" in problem.what
    assert api_key_problem(LLMSettings(api_key="sk-a-real-looking-key")) is None
    # A local server needs no key: the placeholder there is harmless.
    assert api_key_problem(LLMSettings(api_key="sk-replace-me",
                                       base_url="http://127.0.0.1:11434/v1")) is None


def test_the_owners_own_profile_passes(tmp_path) -> None:
    from bot.settings import load_settings

    own = tmp_path / "business.yaml"
    own.write_text("name: Panadería Rosa\ntimezone: America/Mexico_City\n", encoding="utf-8")
    check = check_business(load_settings(None, state_dir=tmp_path, business_file=own))
    assert check.ok and "Panadería Rosa" in check.detail

"""Issue #24 (Low): `wabot init` wrote a placeholder `notes:` value that went into every
prompt as "Also: Policies, shipping, returns: anything the agents must know." It now writes
an empty value with the hint as a comment, and a profile written by the older init loses
the placeholder when it is read."""

from __future__ import annotations

from datetime import UTC, datetime

import yaml

from bot.agents.prompt import business_block
from bot.business import INIT_PLACEHOLDER_NOTES, Business
from tests.regressions.test_init_loses_every_answer_on_an_unknown_timezone import init


def test_a_fresh_profile_puts_no_placeholder_in_the_prompt(tmp_path):
    code, out = init(tmp_path, ["Panadería Rosa", "Spanish", "Mexico City",
                                "lun-sab 07:00-20:00", "", "sk-secret", "", ""])
    assert code == 0, out
    text = (tmp_path / "config" / "business.yaml").read_text()
    assert "# notes:" in text  # the hint stays, as a comment
    profile = Business.model_validate(yaml.safe_load(text))
    block = business_block(profile, datetime(2026, 1, 5, 15, tzinfo=UTC))
    assert "Also:" not in block and "Policies, shipping" not in block


def test_a_profile_from_the_older_init_loses_the_placeholder():
    old = Business(name="Panadería Rosa", notes=INIT_PLACEHOLDER_NOTES)
    assert old.notes == ""
    assert "Also:" not in business_block(old, datetime(2026, 1, 5, 15, tzinfo=UTC))
    assert Business(name="x", notes="We ship to CDMX only.").notes == "We ship to CDMX only."

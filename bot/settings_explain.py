"""Settings errors as an operator reads them: one line per problem, naming the field, the
place to fix it, and for a misspelled key the closest valid one."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import get_args, get_origin

from pydantic import BaseModel, ValidationError


def explain(exc: ValidationError, path: Path | None, root: type[BaseModel]) -> str:
    source = f"the config file {path} or " if path else "the config file or "
    lines = ["invalid settings:"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc)
        env_name = "WABOT_" + "__".join(p.upper() for p in loc)
        if err["type"] == "extra_forbidden":
            lines.append(f"  - {field}: unknown setting{closest(loc, root)}; rename or remove "
                         f"it in {source}{env_name} (environment or .env)")
            continue
        given = err.get("input")
        shown = "" if isinstance(given, dict) or "key" in field or "url" in field else f" (got {given!r})"
        lines.append(f"  - {field}: {err['msg']}{shown}; fix it in {source}{env_name}")
    return "\n".join(lines)


def closest(loc: list[str], root: type[BaseModel]) -> str:
    """` (did you mean inbox.debounce_seconds?)` for a misspelled key, looked up in its section."""
    model = root
    for part in loc[:-1]:
        if part.isdigit():  # an item of a list of sections (`followups.rules.0`)
            continue
        field = model.model_fields.get(part)
        inner = field.annotation if field else None
        if get_origin(inner) is list:
            inner = get_args(inner)[0]
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return ""
        model = inner
    match = difflib.get_close_matches(loc[-1].lower(), list(model.model_fields), n=1, cutoff=0.6)
    if not match:
        return ""
    return f" (did you mean {'.'.join([*loc[:-1], match[0]])}?)"

"""SQL written with `:name` parameters, numbered once for asyncpg (`$1`, `$2`, …).

The per-message writes on PostgreSQL run on the pooled connection's asyncpg connection
(issue #23: through SQLAlchemy each statement cost several times its own driver's CPU in
greenlet hops and execution machinery). asyncpg prepares a statement once per connection
and keeps it (its statement cache is keyed by the text): the text must not change per call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # not a `::type` cast


@dataclass(frozen=True, slots=True)
class Positional:
    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, sql: str) -> Positional:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        return cls(_NAME.sub(number, sql), tuple(names))

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]

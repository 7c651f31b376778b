"""`wabot catalog import` wrote the profile and never said the index had to be rebuilt, so
`wabot knowledge search` did not find the new products, and then answered "is the index
built?" even when it was. The import now re-indexes (and says what a running daemon needs),
and search shows the hint only when the index is empty."""

from __future__ import annotations

from pathlib import Path

from tests.knowledge.test_cli_and_reload import _forget, shop_dir, wabot  # noqa: F401


def test_imported_products_are_found_at_once(shop_dir: Path, tenant: str) -> None:  # noqa: F811
    empty = wabot("knowledge", "search", "bicicleta")
    assert empty.exit_code == 1 and "the index is empty" in empty.output
    assert "wabot knowledge reindex" in empty.output
    csv = shop_dir / "nuevos.csv"
    csv.write_text("Nombre,Precio,Moneda\nBicicleta de montaña,8900,MXN\n", encoding="utf-8")
    imported = wabot("catalog", "import", str(csv))
    assert imported.exit_code == 0, imported.output
    assert "re-indexed" in imported.output and "systemctl reload wabot" in imported.output
    found = wabot("knowledge", "search", "bicicleta")
    assert found.exit_code == 0 and "Bicicleta de montaña" in found.output
    nothing = wabot("knowledge", "search", "paraguas")
    assert nothing.exit_code == 1 and "source(s) indexed" in nothing.output
    assert "is the index built" not in nothing.output and "empty" not in nothing.output
    _forget(shop_dir, tenant)

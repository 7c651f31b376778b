"""`wabot catalog import`: products by header from CSV, XLSX and JSON, with a dry-run diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.business import load_business
from bot.cli import app

PROFILE = """name: Casa Azul
products:
  - name: Classic sneaker
    price: 1290
    currency: MXN
  - name: Leather loafer
    price: 1890
    currency: MXN
"""


@pytest.fixture
def profile(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "business.yaml"
    path.write_text(PROFILE)
    monkeypatch.setenv("WABOT_BUSINESS_FILE", str(path))
    return path


def wabot(*args: str):
    return CliRunner().invoke(app, ["catalog", "import", *args])


def test_a_dry_run_shows_the_diff_and_writes_nothing(profile, tmp_path):
    csv = tmp_path / "productos.csv"
    csv.write_text("Nombre;Precio;Moneda;Código;Existencias;Imagen\n"
                   "Classic sneaker;1390;MXN;SN-1;4;https://x.test/sn.jpg\n"
                   "Canvas slip-on;990;MXN;SL-2;0;\n")
    result = wabot(str(csv), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "+ Canvas slip-on (990 MXN)",
        "~ Classic sneaker: price: 1290.0 → 1390.0, sku: '' → 'SN-1', stock: None → 4, "
        "image: '' → 'https://x.test/sn.jpg'",
        "1 added, 1 changed, 0 removed, 3 products in all",
        f"dry run: {profile} is unchanged"]
    assert profile.read_text() == PROFILE


def test_xlsx_import_writes_the_profile_and_replace_removes_the_rest(profile, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Product", "Price", "Currency", "Description", "SKU"])
    sheet.append(["Leather loafer", 1990, "MXN", "Brown or black", "LL-1"])
    sheet.append([None, None, None, None, None])  # a blank line is skipped
    book.save(tmp_path / "products.xlsx")
    result = wabot(str(tmp_path / "products.xlsx"), "--replace")
    assert result.exit_code == 0, result.output
    assert "- Classic sneaker" in result.stdout
    assert "0 added, 1 changed, 1 removed, 1 products in all" in result.stdout
    [loafer] = load_business(profile).products
    assert (loafer.name, loafer.price, loafer.sku, loafer.description) == (
        "Leather loafer", 1990, "LL-1", "Brown or black")
    assert profile.with_suffix(".yaml.bak").read_text() == PROFILE


def test_json_import_and_errors_name_the_row(profile, tmp_path):
    good = tmp_path / "p.json"
    good.write_text(json.dumps({"products": [{"name": "Sandal", "price": 590, "stock": 3}]}))
    result = wabot(str(good))
    assert result.exit_code == 0, result.output
    assert [p.name for p in load_business(profile).products] == [
        "Classic sneaker", "Leather loafer", "Sandal"]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,price\nBoot,12\nClog,twelve\n")
    result = wabot(str(bad))
    assert result.exit_code == 2
    assert "bad.csv row 3: price: " in result.output
    headless = tmp_path / "x.csv"
    headless.write_text("foo,bar\n1,2\n")
    assert "no name column among foo, bar" in wabot(str(headless)).output

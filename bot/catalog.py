"""`wabot catalog import`: a product list from a spreadsheet into the business profile.

CSV, XLSX (the first sheet) or JSON (a list of objects, or `{"products": [...]}`); columns
are found by their header, in English or Spanish (name/nombre, price/precio, currency,
description, sku, stock, image URL). Products match the profile's by SKU, else by name:
matches are updated, new ones added, and with `replace` the ones missing from the file are
removed. `diff` shows what would change; `write` saves it (the old file kept as `.bak`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import stat
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.business import Product, where
from bot.knowledge.pictures import picture_problem

HEADERS = {
    "name": ("name", "product", "productname", "title", "nombre", "producto", "articulo"),
    "price": ("price", "unitprice", "precio", "preciounitario"),
    "currency": ("currency", "moneda", "divisa"),
    "description": ("description", "details", "descripcion", "detalle", "detalles"),
    "sku": ("sku", "code", "productcode", "ref", "reference", "codigo", "referencia"),
    "stock": ("stock", "qty", "quantity", "inventory", "existencias", "cantidad", "inventario"),
    "image": ("image", "imageurl", "imagelink", "picture", "photo", "imagen", "foto",
                  "urlimagen"),
}


class CatalogError(ValueError):
    """A file that cannot be imported; the message says where and why."""


def _plain(header: object) -> str:
    text = unicodedata.normalize("NFKD", str(header or "").casefold())
    return "".join(c for c in text if c.isalnum() and not unicodedata.combining(c))


def column_map(headers: list[object]) -> dict[int, str]:
    """Column index → product field, by header; unknown columns are ignored."""
    wanted = {alias: f for f, aliases in HEADERS.items() for alias in aliases}
    found: dict[int, str] = {}
    for i, header in enumerate(headers):
        name = wanted.get(_plain(header))
        if name is not None and name not in found.values():
            found[i] = name
    if "name" not in found.values():
        raise CatalogError(f"no name column among {', '.join(map(str, headers))}: "
                           "call one of them name (or product, nombre)")
    return found


def read_rows(path: Path) -> list[list[object]]:
    """The file's rows, the header first."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        text = path.read_text(encoding="utf-8-sig")
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t") if text.strip() else None
        return [list(r) for r in csv.reader(io.StringIO(text), dialect or csv.excel)]
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True, data_only=True)
        try:
            sheet = book.worksheets[0]
            return [list(r) for r in sheet.iter_rows(values_only=True)]
        finally:
            book.close()
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data.get("products") if isinstance(data, dict) else data
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise CatalogError("JSON must be a list of objects, or {\"products\": [...]}")
        headers = list(dict.fromkeys(k for item in items for k in item))
        return [list(headers), *[[item.get(h) for h in headers] for item in items]]
    raise CatalogError(f"{path.name}: use a .csv, .xlsx or .json file")


def products_from(path: Path) -> list[Product]:
    rows = read_rows(path)
    if not rows:
        raise CatalogError(f"{path.name} is empty")
    columns = column_map(rows[0])
    products = []
    for line, row in enumerate(rows[1:], start=2):
        values = {columns[i]: v for i, v in enumerate(row) if i in columns
                  and v is not None and str(v).strip() != ""}
        if not values:
            continue  # a blank line
        try:
            products.append(Product.model_validate(
                {k: (str(v).strip() if k not in ("price", "stock") else v)
                 for k, v in values.items()}))
        except ValidationError as exc:
            problems = "; ".join(f"{where(e['loc'])}: {e['msg']}" for e in exc.errors())
            raise CatalogError(f"{path.name} row {line}: {problems}") from None
    return products


def check_pictures(products: list[Product], folder: Path | None) -> None:
    """Every picture is a file under the knowledge folder or a public https URL."""
    problems = [f"{p.name}: {why}" for p in products if p.image
                and (why := picture_problem(p.image, folder)) is not None]
    if problems:
        raise CatalogError("pictures refused (a picture is a file under the knowledge folder "
                           "or a public https URL): " + "; ".join(problems))


def _key(p: Product) -> str:
    return f"sku:{p.sku.casefold()}" if p.sku else f"name:{p.name.casefold()}"


@dataclass
class Diff:
    added: list[Product] = field(default_factory=list)
    changed: list[tuple[Product, Product]] = field(default_factory=list)
    removed: list[Product] = field(default_factory=list)
    result: list[Product] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"+ {p.name}{_money(p)}" for p in self.added]
        for old, new in self.changed:
            fields = [f"{k}: {old_v!r} → {getattr(new, k)!r}"
                      for k, old_v in old.model_dump().items() if getattr(new, k) != old_v]
            out.append(f"~ {new.name}: {', '.join(fields)}")
        out += [f"- {p.name}" for p in self.removed]
        out.append(f"{len(self.added)} added, {len(self.changed)} changed, "
                   f"{len(self.removed)} removed, {len(self.result)} products in all")
        return out


def _money(p: Product) -> str:
    return f" ({p.price:g} {p.currency})".replace(" )", ")") if p.price is not None else ""


def diff(current: list[Product], incoming: list[Product], replace: bool = False) -> Diff:
    d = Diff()
    by_key = {_key(p): p for p in current}
    by_name = {p.name.casefold(): p for p in current}
    seen: set[int] = set()
    merged: dict[int, Product] = {}
    for new in incoming:
        old = by_key.get(_key(new)) or by_name.get(new.name.casefold())
        if old is None:
            d.added.append(new)
            continue
        seen.add(id(old))
        update = {k: v for k, v in new.model_dump(exclude_unset=True).items()}
        updated = old.model_copy(update=update)
        if updated != old:
            d.changed.append((old, updated))
        merged[id(old)] = updated
    for old in current:
        if id(old) in seen:
            d.result.append(merged[id(old)])
        elif replace:
            d.removed.append(old)
        else:
            d.result.append(old)
    d.result += d.added
    return d


@dataclass(frozen=True, slots=True)
class Unwritable:
    """What keeps this user from saving the profile: `blocked` (the profile, or its folder
    where the new file and the .bak copy are written) and who may write it."""

    profile: Path
    blocked: Path
    owner: str
    group: str
    mode: int
    user: str

    def __str__(self) -> str:
        what = ("may not create files in" if self.blocked != self.profile
                else "may not write")
        return (f"cannot write the business profile {self.profile}: user {self.user} {what} "
                f"{self.blocked} ({self.owner}:{self.group}, mode {self.mode:04o}); the "
                "import writes the new profile and a .bak copy of the old one beside it. "
                "Nothing was changed")


def _name(lookup: Any, ident: int) -> str:
    try:
        return str(lookup(ident)[0])
    except KeyError:
        return str(ident)


def write_problem(business_file: Path) -> Unwritable | None:
    """Why this user cannot save the profile, found before anything is written."""
    import grp
    import pwd

    target = business_file.resolve()
    for path, need in ((target.parent, os.W_OK | os.X_OK), (target, os.W_OK)):
        if not os.access(path, need):
            st = path.stat()
            return Unwritable(target, path, _name(pwd.getpwuid, st.st_uid),
                              _name(grp.getgrgid, st.st_gid), stat.S_IMODE(st.st_mode),
                              _name(pwd.getpwuid, os.geteuid()))
    return None


def write(business_file: Path, products: list[Product]) -> Path:
    """Saves the products into the profile; returns the backup of the previous file.

    The new profile is written beside it and renamed over it, with the old one's owner,
    group and mode: a failure midway leaves the old profile whole."""
    target = business_file.resolve()
    data: dict[str, Any] = yaml.safe_load(target.read_text(encoding="utf-8")) or {}
    data["products"] = [p.model_dump(exclude_defaults=True) for p in products]
    backup = target.with_suffix(target.suffix + ".bak")
    shutil.copy2(target, backup)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
            f.flush()
            os.fsync(f.fileno())
        old = target.stat()
        shutil.copymode(target, name)
        if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            with contextlib.suppress(PermissionError):  # root keeps root:wabot as it was
                os.chown(name, old.st_uid, old.st_gid)
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return backup

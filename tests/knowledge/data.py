"""Generated catalogs, documents and PDFs for the knowledge tests and benchmark."""

from __future__ import annotations

import random
from pathlib import Path

from bot.business import Product

TYPES = ["Zapato", "Camisa", "Bolso", "Sandalia", "Chaqueta", "Pantalón", "Gorra", "Bufanda",
         "Shirt", "Jacket", "Sneaker", "Wallet", "Belt", "Hat", "Sweater", "Dress"]
COLORS = ["Rojo", "Azul", "Verde", "Negro", "Blanco", "Gris", "Red", "Blue", "Green", "Black"]
MATERIALS = ["Lino", "Algodón", "Piel", "Lana", "Seda", "Cotton", "Leather", "Wool", "Denim"]

TARGET = Product(name="Mochila Impermeable Senderismo Ámbar", price=899.5, currency="MXN",
                 description="Mochila de 30 litros para montaña, resistente al agua.",
                 sku="MCH-AMB-30", stock=4, image="pictures/mochila.png")
RETURNS_DOC = """# Política de devoluciones

## Plazo para devolver

Tienes 30 días naturales desde la entrega para devolver cualquier artículo sin usar, con
su etiqueta. El reembolso llega a tu tarjeta en 5 a 10 días hábiles.

## Artículos en oferta

Los artículos de outlet no admiten devolución, solo cambio de talla.
"""


def products(n: int, seed: int = 7) -> list[Product]:
    """`n` distinct products (the target last, far from the featured ones), some out of
    stock."""
    rng = random.Random(seed)
    out = []
    for i in range(1, n):
        t, c, m = rng.choice(TYPES), rng.choice(COLORS), rng.choice(MATERIALS)
        out.append(Product(name=f"{t} {c} {m} Modelo {1000 + i}", price=round(rng.uniform(50, 3000), 2),
                           currency="MXN", sku=f"SKU-{i:05d}", stock=rng.choice([0, 3, 12, None]),
                           description=f"{t} de {m.lower()} color {c.lower()}, modelo {1000 + i}.",
                           variants=[f"talla {s}" for s in rng.sample(range(22, 44), 3)]))
    return [*out, TARGET]


FILLER_TOPICS = ["horarios de la tienda física", "programa de puntos", "cuidado de prendas",
                 "guía de tallas", "tarjetas de regalo", "facturación electrónica",
                 "privacidad de datos", "envíos nacionales", "pagos con tarjeta",
                 "eventos y talleres"]


def documents(folder: Path, n: int, pages: int = 1, sentences: int = 12) -> list[Path]:
    """`n` Markdown documents (the returns policy among them), each `pages` sections of
    `sentences` sentences (40 make a printed page, about 3,000 characters)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "politica-devoluciones.md"]
    paths[0].write_text(RETURNS_DOC, encoding="utf-8")
    rng = random.Random(3)
    for i in range(1, n):
        topic = FILLER_TOPICS[i % len(FILLER_TOPICS)]
        sections = "\n\n".join(
            f"## {topic.capitalize()} {i}.{s}\n\n"
            + " ".join(f"Sobre {topic}: la opción {rng.randint(1, 99)} aplica a clientes "
                       f"registrados del grupo {rng.randint(1, 9)}." for _ in range(sentences))
            for s in range(pages))
        path = folder / f"doc-{i:03d}.md"
        path.write_text(f"# {topic.capitalize()}\n\n{sections}\n", encoding="utf-8")
        paths.append(path)
    return paths


def pdf_bytes(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Contents {4 + 2 * i} 0 R /Resources << /Font << /F1 {font_id} 0 R "
                       f">> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content
                       + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
            .encode())
    return bytes(out)


PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")

"""The agent's tools over the business's knowledge: `search_knowledge` (products with their
price and stock, document passages with their source) and `send_media` (a product's picture
or a document, through the gateway, recorded in the customer's history)."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

import httpx
from loguru import logger

from bot.agents.tools import Tool, TurnContext
from bot.gateway.base import Gateway, GatewayError, OutboundMedia
from bot.knowledge.index_base import DOCUMENT, KINDS, PRODUCT, Hit
from bot.knowledge.library import Library
from bot.knowledge.pictures import PUBLIC_HTTPS, UrlPolicy, is_url, local_picture, public_url
from bot.models import MemoryMessage, Role
from bot.phones import mask

BODY_CHARS = 700  # per result: enough to quote a policy, small enough for five of them
REDIRECTS = 3
IMAGE_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG": "image/png", b"RIFF": "image/webp",
               b"GIF8": "image/gif"}
_SCOPES = {"products": [PRODUCT], "documents": [DOCUMENT], "all": list(KINDS)}


def stock_text(stock: object) -> str:
    if stock is None:
        return "not tracked"
    return "out of stock" if isinstance(stock, int) and stock <= 0 else f"{stock} in stock"


def describe(hit: Hit) -> dict[str, Any]:
    """A hit as the model reads it: the facts to quote and where they came from."""
    f = hit.facts
    if hit.kind == PRODUCT:
        out: dict[str, Any] = {"type": "product", "name": hit.title}
        if f.get("price") is not None:
            out["price"] = f["price"]
            out["currency"] = f.get("currency") or ""
        out["availability"] = stock_text(f.get("stock"))
        for key in ("sku", "variants"):
            if f.get(key):
                out[key] = f[key]
        if hit.body:
            out["description"] = hit.body[:BODY_CHARS]
        out["has_picture"] = bool(f.get("image"))
        out["source"] = "catalog"
        return out
    return {"type": "document", "source": hit.source, "section": f.get("section") or "",
            "text": hit.body[:BODY_CHARS]}


def search_tool(library: Library, results: int) -> Tool:
    async def run(ctx: TurnContext, args: dict[str, Any]) -> str:
        query = str(args.get("query") or "").strip()[:300]
        if not query:
            raise ValueError("query must be a non-empty string")
        scope = _SCOPES.get(str(args.get("scope") or "all"), list(KINDS))
        hits = await library.search(query, scope, results)
        if not hits:
            return json.dumps({"results": [], "note": f"Nothing found for {query!r}. Try other "
                               "words once; otherwise say you will check with the team. "
                               "Never guess a price or a policy."}, ensure_ascii=False)
        return json.dumps({"results": [describe(h) for h in hits],
                           "note": "Quote prices, stock and policies exactly as given here."},
                          ensure_ascii=False)

    return Tool(
        "search_knowledge",
        "Search the business's catalog and documents (policies, shipping, sizes, guides). "
        "Use it for any product, price, stock or policy question not answered above: the "
        "prompt lists only a few products. Search in the words the customer used; plural, "
        "accents and case do not matter.",
        {"type": "object", "properties": {
            "query": {"type": "string", "description": "what to look for, e.g. 'red shoes 38'"},
            "scope": {"type": "string", "enum": list(_SCOPES),
                      "description": "products, documents or all (default)"},
        }, "required": ["query"]},
        run)


class MediaTool:
    """Resolves what the model asks for to bytes, sends them, remembers that it did."""

    def __init__(self, library: Library, gateway: Gateway, max_bytes: int,
                 http: httpx.AsyncClient | None = None,
                 urls: UrlPolicy = PUBLIC_HTTPS) -> None:
        self.library = library
        self.gateway = gateway
        self.max_bytes = max_bytes
        self.http = http
        self.urls = urls

    async def run(self, ctx: TurnContext, args: dict[str, Any]) -> str:
        caption = str(args.get("caption") or "").strip()[:1000]
        product = str(args.get("product") or "").strip()
        document = str(args.get("document") or "").strip()
        if bool(product) == bool(document):
            raise ValueError("give exactly one of product or document")
        try:
            media = (await self._product_image(product, caption) if product
                     else self._document(document, caption))
        except LookupError as exc:
            return json.dumps({"error": str(exc)}, ensure_ascii=False)
        chat = self.gateway.chat_for(ctx.key.phone)
        try:
            await self.gateway.send_media(chat, media)
        except GatewayError as exc:
            logger.bind(customer=mask(ctx.key.phone)).warning("send_media failed: {}", exc)
            return json.dumps({"error": "the file could not be sent right now; say so and "
                                        "offer to try again later"})
        note = f"[sent {media.kind}: {media.filename}]" + (f" {caption}" if caption else "")
        await ctx.memory.append(ctx.key, [MemoryMessage(Role.AGENT, note, ctx.now,
                                                        kind="media")])
        return json.dumps({"ok": True, "sent": media.kind, "file": media.filename,
                           "note": "It is already delivered: do not resend it or describe "
                                   "it at length."}, ensure_ascii=False)

    async def _product_image(self, ref: str, caption: str) -> OutboundMedia:
        hit = await self.library.product(ref)
        if hit is None:
            raise LookupError(f"no product matches {ref!r}: search first")
        image = str(hit.facts.get("image") or "")
        if not image:
            raise LookupError(f"{hit.title} has no picture")
        if is_url(image):
            data = await self._download(image)
            name = image.rsplit("/", 1)[-1].split("?")[0] or "image"
        else:
            path = local_picture(image, self.library.folder)
            data = self._read(path)
            name = path.name
        mimetype = next((t for magic, t in IMAGE_TYPES.items() if data.startswith(magic)), "")
        if not mimetype:
            raise LookupError(f"the picture of {hit.title} is not a JPEG, PNG, WebP or GIF")
        return OutboundMedia("image", data, mimetype, name, caption or hit.title)

    def _document(self, source: str, caption: str) -> OutboundMedia:
        path = self.library.document_path(source)
        if path is None:
            raise LookupError(f"no document named {source!r}: use a source from a search")
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return OutboundMedia("document", self._read(path), mimetype, path.name, caption)

    def _read(self, path: Path) -> bytes:
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise LookupError(f"{path.name} is {size} bytes, over the "
                                  f"{self.max_bytes}-byte limit for sending")
            return path.read_bytes()
        except OSError as exc:
            raise LookupError(f"{path.name} cannot be read: {exc.strerror}") from exc

    async def _download(self, url: str) -> bytes:
        """The picture at a public https URL; each redirect is checked like the URL."""
        client = self.http or httpx.AsyncClient(timeout=20)
        try:
            for _ in range(REDIRECTS + 1):
                await public_url(url, self.urls)
                async with client.stream("GET", url, follow_redirects=False) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = str(resp.url.join(resp.headers["location"]))
                        continue
                    if resp.status_code != 200:
                        raise LookupError(f"the picture's URL answered {resp.status_code}")
                    data = bytearray()
                    async for block in resp.aiter_bytes():
                        data += block
                        if len(data) > self.max_bytes:
                            raise LookupError(f"the picture is over the {self.max_bytes}-byte "
                                              "limit for sending")
                    return bytes(data)
            raise LookupError(f"the picture's URL redirects more than {REDIRECTS} times")
        except httpx.HTTPError as exc:
            raise LookupError(f"the picture could not be downloaded: {exc}") from exc
        finally:
            if self.http is None:
                await client.aclose()

    def tool(self) -> Tool:
        return Tool(
            "send_media",
            "Send the customer a product's picture (product: its name or SKU from a search) "
            "or a document from the knowledge folder (document: its source from a search, "
            "e.g. a price list), with a short caption. Only when they ask or it clearly helps.",
            {"type": "object", "properties": {
                "product": {"type": "string"},
                "document": {"type": "string"},
                "caption": {"type": "string"},
            }},
            self.run)


def knowledge_tools(library: Library, gateway: Gateway, results: int,
                    max_media_bytes: int) -> list[Tool]:
    return [search_tool(library, results), MediaTool(library, gateway, max_media_bytes).tool()]

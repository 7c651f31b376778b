"""Where a product's picture may come from: a file inside the knowledge folder, or a public
https URL (issue #24: `../outside/x.png`, `/etc/passwd`, a symlink out of the folder,
`file://` and `http://127.0.0.1/…` were read and sent to a customer).

Checked when the catalog is imported (`picture_problem`: no network) and again when a
picture is sent (`local_picture`, and `public_url` for every URL fetched, redirects
included, with the host's addresses resolved: a public name may point inside).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")
KINDS = "a JPEG, PNG, WebP or GIF"


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """What a picture's URL may be; tests serving pictures on 127.0.0.1 loosen it."""

    https_only: bool = True
    public_only: bool = True


PUBLIC_HTTPS = UrlPolicy()


def is_url(image: str) -> bool:
    return "://" in image or image.lower().startswith(("http:", "https:", "file:"))


def picture_problem(image: str, folder: Path | None,
                    policy: UrlPolicy = PUBLIC_HTTPS) -> str | None:
    """Why this picture reference may not be used (None: it may), without the network."""
    try:
        if is_url(image):
            check_url(image, policy)
        else:
            local_picture(image, folder, must_exist=False)
    except LookupError as exc:
        return str(exc)
    return None


def local_picture(image: str, folder: Path | None, must_exist: bool = True) -> Path:
    """The picture's file, resolved (symlinks followed) and inside the knowledge folder."""
    path = Path(image)
    if path.is_absolute() or folder is None:
        raise LookupError(f"{image!r}: a picture is a file under the knowledge folder "
                          "(a path relative to it) or an https URL")
    root = folder.resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise LookupError(f"{image!r} is outside the knowledge folder")
    if resolved.suffix.lower() not in SUFFIXES:
        raise LookupError(f"{image!r} is not {KINDS} file")
    if must_exist and not resolved.is_file():
        raise LookupError(f"{image!r} is not a file in the knowledge folder")
    return resolved


def check_url(url: str, policy: UrlPolicy = PUBLIC_HTTPS) -> str:
    """The URL's host, when the scheme and a literal address are allowed."""
    parts = urlsplit(url)
    allowed = ("https",) if policy.https_only else ("https", "http")
    if parts.scheme.lower() not in allowed:
        raise LookupError(f"{url!r}: a picture's URL must be https")
    host = parts.hostname or ""
    if not host:
        raise LookupError(f"{url!r} names no host")
    if policy.public_only and (host.lower() == "localhost" or host.lower().endswith(".localhost")
                               or not _public_literal(host)):
        raise LookupError(f"{url!r} points at a private or local address")
    return host


async def public_url(url: str, policy: UrlPolicy = PUBLIC_HTTPS) -> None:
    """`check_url`, and every address the host resolves to is public."""
    host = check_url(url, policy)
    if not policy.public_only:
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None,
                                                             type=socket.SOCK_STREAM)
    except OSError as exc:
        raise LookupError(f"the picture's host {host} cannot be resolved: {exc}") from exc
    if any(not ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_global for info in found):
        raise LookupError(f"{url!r} points at a private or local address")


def _public_literal(host: str) -> bool:
    """True unless the host is an IP address that is not public (a name is checked later)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_global
    except ValueError:
        return True

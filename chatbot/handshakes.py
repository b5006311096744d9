"""Who is connecting, and how often: the client address behind trusted proxies, handshake limits.

Behind a load balancer every socket comes from the proxy's address; the client's is the one
the outermost trusted proxy appended to X-Forwarded-For. ``TRUSTED_PROXY_COUNT`` says how many
proxies append to it (0: trust no header, use the peer address). The limit counts handshakes
per address in fixed one-minute windows in the cache (shared by every process with Redis).
"""

from __future__ import annotations

import ipaddress
import time

from asgiref.sync import sync_to_async
from django.core.cache import cache

from chatbot.core.conf import setting

WINDOW_SECONDS = 60


def client_address(scope: dict) -> str:
    """The client's address: from X-Forwarded-For when proxies are trusted, else the peer's."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    forwarded = [value for name, value in scope.get("headers", []) if name == b"x-forwarded-for"]
    return forwarded_client(peer, b",".join(forwarded).decode("latin-1"))


def request_client_address(request) -> str | None:
    """The same address for a Django request (django-axes counts login failures per address with it);
    None when it is not an IP address (no peer, or a forged forwarded hop): PostgreSQL stores only those."""
    address = forwarded_client(request.META.get("REMOTE_ADDR") or "", request.META.get("HTTP_X_FORWARDED_FOR", ""))
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return None


def forwarded_client(peer: str, forwarded: str) -> str:
    """The address the outermost of TRUSTED_PROXY_COUNT proxies saw, given the peer and X-Forwarded-For."""
    proxies = int(setting("TRUSTED_PROXY_COUNT"))
    if proxies <= 0:
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    # Each trusted proxy appended the address it saw; fewer hops than proxies: the header is forged or absent.
    return hops[-proxies] if len(hops) >= proxies else peer


async def handshake_allowed(scope: dict) -> bool:
    """Count this handshake against its address; False once the address is over its limit."""
    limit = int(setting("CHAT_HANDSHAKES_PER_MINUTE"))
    if limit <= 0:
        return True
    window = int(time.time() // WINDOW_SECONDS)
    # Off the thread that serialises the ORM: a handshake storm must not queue behind database work.
    count = await sync_to_async(_handshake_count, thread_sensitive=False)(
        f"chat-handshakes:{client_address(scope)}:{window}"
    )
    return count <= limit


def _handshake_count(key: str) -> int:
    """Count one more handshake under ``key``; the window's count so far.

    The sync ``incr``: atomic in Redis (INCRBY) and in the local-memory cache (under its lock).
    Django's async ``aincr`` is a get then a set, so handshakes arriving together lost their counts.
    """
    cache.add(key, 0, timeout=2 * WINDOW_SECONDS)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: this is the window's first handshake
        cache.set(key, 1, timeout=2 * WINDOW_SECONDS)
        return 1

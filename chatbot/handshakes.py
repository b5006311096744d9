"""Who is connecting, and how often: the client address behind trusted proxies, handshake limits.

Behind a load balancer every socket comes from the proxy's address; the client's is the one
the outermost trusted proxy appended to X-Forwarded-For. ``TRUSTED_PROXY_COUNT`` says how many
proxies append to it (0: trust no header, use the peer address). The limit counts handshakes
per address in fixed one-minute windows in the cache (shared by every process with Redis).
"""

from __future__ import annotations

import time

from django.core.cache import cache

from chatbot.core.conf import setting

WINDOW_SECONDS = 60


def client_address(scope: dict) -> str:
    """The client's address: from X-Forwarded-For when proxies are trusted, else the peer's."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    proxies = int(setting("TRUSTED_PROXY_COUNT"))
    if proxies <= 0:
        return peer
    forwarded = [value for name, value in scope.get("headers", []) if name == b"x-forwarded-for"]
    hops = [hop.strip() for hop in b",".join(forwarded).decode("latin-1").split(",") if hop.strip()]
    # Each trusted proxy appended the address it saw; fewer hops than proxies: the header is forged or absent.
    return hops[-proxies] if len(hops) >= proxies else peer


async def handshake_allowed(scope: dict) -> bool:
    """Count this handshake against its address; False once the address is over its limit."""
    limit = int(setting("CHAT_HANDSHAKES_PER_MINUTE"))
    if limit <= 0:
        return True
    window = int(time.time() // WINDOW_SECONDS)
    key = f"chat-handshakes:{client_address(scope)}:{window}"
    await cache.aadd(key, 0, timeout=2 * WINDOW_SECONDS)
    try:
        count = await cache.aincr(key)
    except ValueError:  # expired between add and incr: this is the window's first handshake
        await cache.aset(key, 1, timeout=2 * WINDOW_SECONDS)
        count = 1
    return count <= limit

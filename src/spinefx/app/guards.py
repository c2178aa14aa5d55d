"""Request guards of the local web app: body size while streaming, same-origin + token, load.

Written as plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``) because the size
limit must count the body as it arrives: a chunked upload has no ``Content-Length``, and
FastAPI spools the whole multipart body to disk before a route runs. Starlette ships no
body-size limit and no CSRF guard, so both are written here.

* :class:`BodySizeLimit` answers 413 as soon as a request body passes the limit, with or
  without ``Content-Length``; at most ``limit`` bytes are ever read from the client.
* :class:`SameOriginToken` accepts state-changing requests (anything but GET/HEAD/OPTIONS)
  only with the app's own per-session token in the ``X-Spinefx-Token`` header, and refuses an
  ``Origin`` or ``Referer`` from another site. The custom header cannot be sent cross-site
  without a CORS preflight, which the app never answers, so a page on another site cannot
  post uploads to the local app.
* :class:`HeavyGate` bounds how many uploads are analysed at once; over the bound the app
  answers 429 with ``Retry-After`` instead of queuing work without end.
"""

from __future__ import annotations

import json
import secrets
import threading
from contextlib import contextmanager
from urllib.parse import urlsplit

TOKEN_HEADER = "x-spinefx-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _send_json(send, status: int, detail: str, headers: dict[str, str] | None = None):
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    """Raised inside ``receive`` once the body passes the limit."""


class BodySizeLimit:
    """Refuse request bodies over ``limit_bytes`` (413), counted while they stream in.

    Args:
        app: the wrapped ASGI app.
        limit_bytes: a callable returning the current limit (the app's state may change it).
        message: a callable ``(limit_bytes) -> str`` giving the 413 text.
    """

    def __init__(self, app, *, limit_bytes, message) -> None:
        self.app = app
        self.limit_bytes = limit_bytes
        self.message = message

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = int(self.limit_bytes())
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, self.message(limit))
            return
        seen = 0
        over = False
        started = False

        async def counted_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message):
            nonlocal started
            if over:  # the app turned our exception into its own answer: replace it
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not over:
                raise
        if over and not started:
            await _send_json(send, 413, self.message(limit))


def same_origin(scope) -> bool:
    """True when the request's ``Origin`` (or else ``Referer``) names the host it was sent to."""
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1").lower()
    for name in (b"origin", b"referer"):
        value = headers.get(name)
        if value is None:
            continue
        text = value.decode("latin-1")
        if text == "null":  # sandboxed frames, file:// pages
            return False
        return urlsplit(text).netloc.lower() == host
    return True  # neither header: not a browser form or fetch (curl, tests); the token decides


class SameOriginToken:
    """Accept state-changing requests only from the app's own page.

    Args:
        app: the wrapped ASGI app.
        token: the per-session secret the page carries (a ``<meta>`` tag) and sends back.
    """

    def __init__(self, app, *, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        if not same_origin(scope):
            await _send_json(send, 403, "cross-origin request refused: use the app's own page")
            return
        sent = dict(scope.get("headers") or []).get(TOKEN_HEADER.encode(), b"").decode("latin-1")
        if not secrets.compare_digest(sent, self.token):
            await _send_json(
                send,
                403,
                "missing or stale app token: reload the page (the token changes each time "
                "the app starts)",
            )
            return
        await self.app(scope, receive, send)


class Busy(Exception):
    """More heavy requests than the gate allows are running."""


class HeavyGate:
    """At most ``limit`` heavy requests (scan analyses) at once; the others are refused."""

    def __init__(self, limit: int) -> None:
        if int(limit) < 1:
            raise ValueError("the app needs at least one concurrent analysis")
        self.limit = int(limit)
        self._slots = threading.BoundedSemaphore(self.limit)

    @contextmanager
    def slot(self):
        if not self._slots.acquire(blocking=False):
            raise Busy(
                f"the app is already analysing {self.limit} scan(s); try again in a few "
                "seconds (start it with a larger --max-concurrent to allow more)"
            )
        try:
            yield
        finally:
            self._slots.release()


__all__ = [
    "TOKEN_HEADER",
    "BodySizeLimit",
    "Busy",
    "HeavyGate",
    "SameOriginToken",
    "same_origin",
]

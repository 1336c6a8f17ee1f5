"""Who may reach a server of the project (the live view, the study dashboard of `challenge serve`).

Every request is checked before it is answered (`Guard`):
- its Host must be an address the server was bound to (a loopback name on 127.0.0.1), which
  stops DNS rebinding: a web page whose domain resolves to 127.0.0.1 sends its own Host;
- a websocket, and any request that changes state (POST, PUT, PATCH, DELETE), whose Origin a
  browser sent must come from the server's own origin: browsers let any page send those to any
  address, so without this any site a team member opens could act on the server;
- on an address that is not loopback, a random token (printed in the URL at start, as Jupyter
  does) is required: as `?token=` once, then as the cookie the page sets.

`GuardedASGI` and `GuardedWSGI` put one guard in front of an app of either kind."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Guard:
    """Which requests a server answers: see the module docstring."""

    host: str  # the address it is bound to
    port: int
    token: str | None = None  # required when set (always set off loopback)
    cookie: str = "challenge_token"  # the cookie the page keeps the token in

    def refusal(self, method: str, headers: dict[str, str], query: str, websocket: bool = False) -> str | None:
        """Why a request is refused, or None. `headers` has lower-case names."""
        host = headers.get("host", "")
        if not self._known_host(host):
            return f"unknown Host {host!r}"
        origin = headers.get("origin")
        if (websocket or method.upper() in STATE_CHANGING) and origin is not None and not self._same_origin(origin, host):
            return f"{'websocket' if websocket else method.upper()} from another origin ({origin})"
        if self.token is not None and not self._token_given(headers, query):
            return "no valid token (open the URL printed at start, with its ?token=)"
        return None

    @staticmethod
    def _same_origin(origin: str, host: str) -> bool:
        try:
            return urlsplit(origin).netloc.lower() == host.lower()
        except ValueError:
            return False

    def _known_host(self, host: str) -> bool:
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if port and port != str(self.port):
            return False
        name = name or host
        if not is_loopback(self.host):
            return True  # reached through any of the machine's names: the token decides
        return name.lower() in LOOPBACK_NAMES or name == self.host

    def _token_given(self, headers: dict[str, str], query: str) -> bool:
        given = parse_qs(query).get("token", [])
        try:
            cookie = SimpleCookie(headers.get("cookie", "")).get(self.cookie)
        except CookieError:
            cookie = None
        given += [cookie.value] if cookie else []
        # bytes: compare_digest refuses str holding anything but ASCII (a forged token of 'été')
        return any(secrets.compare_digest(t.encode(), self.token.encode()) for t in given)

    def set_cookie_header(self) -> str:
        return f"{self.cookie}={self.token}; HttpOnly; SameSite=Strict; Path=/"


def _refused_body(why: str) -> bytes:
    return f"refused: {why}\n".encode()


class GuardedASGI:
    """ASGI wrapper: a refused HTTP request gets 403, a refused websocket is closed before it is accepted."""

    def __init__(self, app, guard: Guard):
        self.app, self.guard = app, guard

    async def __call__(self, scope, receive, send):
        why = None
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            why = self.guard.refusal(
                scope.get("method", "GET"),
                headers,
                scope.get("query_string", b"").decode("latin-1"),
                websocket=scope["type"] == "websocket",
            )
        if why is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # the connect event
            return await send({"type": "websocket.close", "code": 1008, "reason": why[:120]})
        await send({"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.body", "body": _refused_body(why)})


class GuardedWSGI:
    """WSGI wrapper (optuna-dashboard is a bottle app): a refused request gets 403. A request that
    brought the token in its URL gets the cookie, so the page's own API calls carry it."""

    def __init__(self, app, guard: Guard):
        self.app, self.guard = app, guard

    def __call__(self, environ, start_response):
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
        query = environ.get("QUERY_STRING", "")
        why = self.guard.refusal(environ.get("REQUEST_METHOD", "GET"), headers, query)
        if why is not None:
            start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8")])
            return [_refused_body(why)]
        if self.guard.token is None or "token=" not in query:
            return self.app(environ, start_response)

        def with_cookie(status, response_headers, exc_info=None):
            return start_response(status, [*response_headers, ("Set-Cookie", self.guard.set_cookie_header())], exc_info)

        return self.app(environ, with_cookie)

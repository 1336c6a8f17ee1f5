"""The web view: a FastAPI app serving one page and a websocket that sends each new reading
(annotated frame as JPEG, faces, fps, latency, dropped frames) as it is produced.

The page shows people's faces, so every request is checked before it is answered (`Guard`):
- its Host must be an address the view was bound to (a loopback name on 127.0.0.1), which
  stops DNS rebinding: a web page whose domain resolves to 127.0.0.1 sends its own Host;
- a websocket's Origin, when a browser sends one, must be the view's own: browsers let any
  page open a websocket to any address, so without this any site could watch the camera;
- on an address that is not loopback, a random token (printed in the URL at start, as Jupyter
  does) is required: as `?token=` once, then as the cookie the page sets."""

from __future__ import annotations

import asyncio
import secrets
import threading
from dataclasses import dataclass
from http.cookies import SimpleCookie
from importlib import resources
from urllib.parse import parse_qs, urlsplit

# at module level: FastAPI reads the handlers' annotations by name (this module postpones them)
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse

from challenge.loopback import is_loopback


class Latest:
    """The newest update message, handed from the pipeline thread to the websocket handlers."""

    def __init__(self):
        self._lock = threading.Lock()
        self.message: dict | None = None
        self.version = 0
        self.clients = 0

    def publish(self, message: dict) -> None:
        with self._lock:
            self.message, self.version = message, self.version + 1

    def read(self) -> tuple[int, dict | None]:
        with self._lock:
            return self.version, self.message


COOKIE = "challenge_live_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Guard:
    """Which requests the view answers: see the module docstring."""

    host: str  # the address it is bound to
    port: int
    token: str | None = None  # required when set (always set off loopback)

    def refusal(self, scope) -> str | None:
        """Why a request (an ASGI scope) is refused, or None."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not self._known_host(host):
            return f"unknown Host {host!r}"
        origin = headers.get("origin")
        if scope["type"] == "websocket" and origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return f"websocket from another origin ({origin})"
        if self.token is not None and not self._token_given(scope, headers):
            return "no valid token (open the URL printed at start, with its ?token=)"
        return None

    def _known_host(self, host: str) -> bool:
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if port and port != str(self.port):
            return False
        name = name or host
        if not is_loopback(self.host):
            return True  # reached through any of the machine's names: the token decides
        return name.lower() in LOOPBACK_NAMES or name == self.host

    def _token_given(self, scope, headers) -> bool:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        cookie = SimpleCookie(headers.get("cookie", "")).get(COOKIE)
        given = [*query, *([cookie.value] if cookie else [])]
        return any(secrets.compare_digest(t, self.token) for t in given)


class GuardedApp:
    """ASGI wrapper: a refused HTTP request gets 403, a refused websocket is closed before it is accepted."""

    def __init__(self, app, guard: Guard):
        self.app, self.guard = app, guard

    async def __call__(self, scope, receive, send):
        why = self.guard.refusal(scope) if scope["type"] in ("http", "websocket") else None
        if why is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # the connect event
            return await send({"type": "websocket.close", "code": 1008, "reason": why[:120]})
        await send({"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.body", "body": f"refused: {why}\n".encode()})


def make_app(latest: Latest, guard: Guard | None = None):
    app = FastAPI(title="challenge live")
    page = resources.files("challenge.live").joinpath("page.html").read_text()

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        response = HTMLResponse(page)
        if guard is not None and guard.token is not None:  # the page's own websocket sends it back
            response.set_cookie(COOKIE, guard.token, httponly=True, samesite="strict")
        return response

    @app.get("/latest")
    def latest_reading() -> dict:
        """The newest reading without its image (for scripts and checks)."""
        _, message = latest.read()
        return {k: v for k, v in (message or {}).items() if k != "image"}

    @app.websocket("/ws")
    async def updates(socket: WebSocket) -> None:
        await socket.accept()
        latest.clients += 1
        sent = 0
        try:
            while True:
                version, message = latest.read()
                if version != sent and message is not None:
                    await socket.send_json(message)
                    sent = version
                await asyncio.sleep(0.01)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            latest.clients -= 1

    return GuardedApp(app, guard) if guard is not None else app

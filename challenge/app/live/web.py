"""The web view: a FastAPI app serving one page and a websocket that sends each new reading
(annotated frame as JPEG, faces, fps, latency, dropped frames) as it is produced.

The page shows people's faces, so every request is checked before it is answered by the
project's server guard (`challenge.app.guard.Guard`: known Host, own Origin, the token off
loopback)."""

from __future__ import annotations

import asyncio
import threading
from importlib import resources

# at module level: FastAPI reads the handlers' annotations by name (this module postpones them)
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse

from challenge.app.guard import Guard, GuardedASGI


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


def make_app(latest: Latest, guard: Guard | None = None):
    app = FastAPI(title="challenge live")
    page = resources.files("challenge.app.live").joinpath("page.html").read_text()

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        response = HTMLResponse(page)
        if guard is not None and guard.token is not None:  # the page's own websocket sends it back
            response.set_cookie(guard.cookie, guard.token, httponly=True, samesite="strict")
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

    return GuardedASGI(app, guard) if guard is not None else app

"""optuna-dashboard behind the project's server guard, as `challenge serve` starts it:
`python -m challenge.app.dashboard STORAGE --host H --port P`.

optuna-dashboard answers any Host and any Origin, and one of its API calls deletes a study: a
web page that rebinds its domain to 127.0.0.1 could reach it. Its WSGI app is therefore served
here, wrapped in `challenge.app.guard.GuardedWSGI` (known Host, own Origin for every state change,
the token of CHALLENGE_DASHBOARD_TOKEN off loopback), by the same threaded wsgiref server its
own command uses."""

from __future__ import annotations

import argparse
import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from challenge.app.guard import Guard, GuardedWSGI

TOKEN_VARIABLE = "CHALLENGE_DASHBOARD_TOKEN"  # not an argument: a command line is visible to every user of the machine


class ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


def guarded_app(storage: str, host: str, port: int, token: str | None):
    import optuna_dashboard

    return GuardedWSGI(optuna_dashboard.wsgi(storage), Guard(host, port, token, cookie="challenge_dashboard_token"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m challenge.app.dashboard")
    parser.add_argument("storage")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    app = guarded_app(args.storage, args.host, args.port, os.environ.get(TOKEN_VARIABLE) or None)
    server = make_server(args.host, args.port, app, server_class=ThreadedServer, handler_class=QuietHandler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())

"""The dashboard's HTTP server, bound before anything heavy is imported: a busy port is one
line at once (it took 72 s of optuna-dashboard, plotly and Optuna imports on a loaded
machine before), and the port is held from that moment, so nothing can take it while the
rest loads. Standard library only."""

from __future__ import annotations

import socketserver
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from medslim.errors import UsageError


class _ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        return


def _not_ready(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"medslim dashboard is starting"]


def bind(host: str, port: int) -> WSGIServer:
    """A threaded WSGI server listening on `host:port` (its app set later with `set_app`);
    a port in use is a usage error."""
    try:
        return make_server(
            host, port, _not_ready, server_class=_ThreadedServer, handler_class=_QuietHandler
        )
    except OSError as error:
        raise UsageError(
            f"cannot serve on {host}:{port}: {error.strerror or error}; pick another --port "
            "(or stop what listens there)"
        ) from error

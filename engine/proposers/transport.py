"""An HTTP transport for the `openai` client whose in-flight requests can be aborted at once.

A request to a model blocks in a socket read for as long as the model thinks, or forever when
the server hangs; a stop request (SIGTERM) must not wait for that. Closing the client from
another thread does not help: on Linux `close()` leaves a read blocked in another thread
waiting, while `shutdown()` wakes it at once. So this transport learns each request's socket as
soon as it is connected (httpcore's public `trace` extension reports the connected stream),
and `abort_all()` shuts every socket of every request in flight down: each blocked read returns
immediately and the client raises a connection error, which the proposer reports as cancelled.

Every request opens its own connection (no keep-alive), so a socket belongs to exactly one
request: one TCP (and TLS) handshake per call is noise next to a call that takes seconds.
A request still connecting when `abort_all()` runs is aborted as soon as its connection is
made; the connect itself is bounded by the client's connect timeout. Requests that httpx routes
through a proxy from the environment (HTTP(S)_PROXY) bypass this transport and can only be
stopped by their timeouts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx2

_CONNECTED_EVENTS = frozenset({"connection.connect_tcp.complete", "connection.start_tls.complete"})

Trace = Callable[[str, dict[str, Any]], None]


class CancellableTransport(httpx2.BaseTransport):
    """`httpx2.HTTPTransport` without keep-alive, plus `abort_all()` (see the module docstring)."""

    def __init__(self) -> None:
        self._inner = httpx2.HTTPTransport(
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=0)
        )
        self._lock = threading.RLock()  # re-entrant: abort_all may run in a signal handler
        self._in_flight: set[_InFlight] = set()
        self._aborted = False

    @property
    def aborted(self) -> bool:
        return self._aborted

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet finished (their response read and closed)."""
        with self._lock:
            return len(self._in_flight)

    def abort_all(self) -> None:
        """Abort every request in flight now, and refuse every later one."""
        with self._lock:
            self._aborted = True
            requests = list(self._in_flight)
        for request in requests:
            request.abort()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        in_flight = _InFlight(request.extensions.get("trace"))
        with self._lock:
            if self._aborted:
                raise httpx2.ConnectError("the request was cancelled", request=request)
            self._in_flight.add(in_flight)
        request.extensions["trace"] = in_flight.trace
        try:
            response = self._inner.handle_request(request)
        except BaseException:
            self._forget(in_flight)
            raise
        response.stream = _ForgetOnClose(response.stream, lambda: self._forget(in_flight))
        return response

    def close(self) -> None:
        self._inner.close()

    def _forget(self, in_flight: _InFlight) -> None:
        with self._lock:
            self._in_flight.discard(in_flight)


class _InFlight:
    """One request's sockets, learnt from the trace events of its connection."""

    def __init__(self, chained: Trace | None) -> None:
        self._chained = chained
        self._lock = threading.RLock()  # re-entrant: abort_all may run in a signal handler
        self._sockets: list[socket.socket] = []
        self._aborted = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event in _CONNECTED_EVENTS:
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.append(sock)
                    aborted = self._aborted
                if aborted:  # abort_all() ran while this request was connecting
                    _shut(sock)
        if self._chained is not None:
            self._chained(event, info)

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for a TLS socket: SSLSocket.shutdown would first drop
    # its SSL object under the feet of the thread reading from it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _ForgetOnClose(httpx2.SyncByteStream):
    """The response body; the request stops counting as in flight once the body is closed."""

    def __init__(self, inner: Any, on_close: Callable[[], None]) -> None:
        self._inner = inner
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            if hasattr(self._inner, "close"):
                self._inner.close()
        finally:
            self._on_close()

"""A byte-forwarding proxy that can take a service down and bring it back, for fault injection.

    switch = Switch(listen=("127.0.0.1", 0), target=("127.0.0.1", 8000)).start()
    switch.down()    # open connections are cut, new ones are refused (nothing listens)
    switch.up()      # the same address listens again
    switch.stop()

It forwards raw bytes in both directions, half-closes included, so it carries HTTP, the Docker
engine's hijacked attach streams and anything else. Addresses are (host, port) pairs for TCP or
a path string for a unix socket. Taking the proxy down is what a client sees when the service
behind it restarts or dies, without touching the service: a Docker engine shared with other
work, or an LLM server, stays up while every client going through the switch loses it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any

Address = tuple[str, int] | str


def _family(address: Address) -> int:
    return socket.AF_UNIX if isinstance(address, str) else socket.AF_INET


class Switch:
    def __init__(self, listen: Address, target: Address) -> None:
        self.requested = listen
        self.target = target
        self.address: Address = listen
        self.connections_seen = 0
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Switch:
        self.up()
        return self

    def up(self) -> None:
        """Listen (again) on the same address."""
        if self._listener is not None:
            return
        listener = socket.socket(_family(self.address), socket.SOCK_STREAM)
        if isinstance(self.address, str):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)
        else:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(self.address)
        listener.listen(64)
        if not isinstance(self.address, str):
            self.address = listener.getsockname()[:2]
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def down(self) -> None:
        """Stop listening (connections are refused) and cut every open connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            if isinstance(self.address, str):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.address)
        if self._accepting is not None:
            self._accepting.join(timeout=5)
            self._accepting = None
        with self._lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def stop(self) -> None:
        self.down()

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def __enter__(self) -> Switch:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- forwarding --------------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.socket(_family(self.target), socket.SOCK_STREAM)
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    client.close()
                    upstream.close()
                    return
                self.connections_seen += 1
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # pass the half-close on
        except OSError:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

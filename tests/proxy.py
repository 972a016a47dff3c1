"""A TCP proxy between workers and the database that a test can cut, to make outages real
without stopping a server other tests share."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class CuttableProxy:
    """Forwards ``host``:<port> to ``target``; ``cut()`` drops every open connection, while
    ``refusing`` is set new connections are closed as soon as they arrive, and the server's
    answers are held back ``answer_delay`` seconds each (a link that TCP retransmits over:
    nothing is lost, everything is late)."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.refusing = threading.Event()
        self.answer_delay = 0.0
        self.refused = 0
        """Connections closed on arrival while ``refusing`` was set."""
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._cuts = 0
        """How many cuts there were: a connection accepted before a cut, and joined to the
        server after it, is cut too."""
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> int:
        """Drop every connection open through the proxy; returns how many sockets were cut."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
            self._cuts += 1
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return len(sockets)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                self.refused += 1
                client.close()
                continue
            cuts = self._cuts
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                cut = cuts != self._cuts
                if not cut:
                    self._sockets |= {client, upstream}
            if cut:
                client.close()
                upstream.close()
                continue
            for source, sink, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pipe, args=(source, sink, answers), daemon=True
                ).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self.answer_delay:
                    time.sleep(self.answer_delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # Both ends, for the other direction's thread too: a socket left to the garbage
            # collector is a ResourceWarning, an error in the tests.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

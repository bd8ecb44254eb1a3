"""A loopback TCP relay that counts the bytes each way, one listening port per device.

Flower's SuperNode talks to the SuperLink over short HTTP requests, so socket counters polled
from outside would miss connections that open and close between polls. Each SuperNode is
pointed at its own relay port instead; every byte it sends or receives is counted there.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass

CHUNK = 1 << 16


@dataclass
class Traffic:
    """Application bytes one device sent (up) and received (down) through the relay."""

    up: int = 0
    down: int = 0


class ByteProxy:
    """Relays `listen ports -> target_port` on 127.0.0.1 in a background event loop."""

    def __init__(self, target_port: int, names: list[str]) -> None:
        self.target_port = target_port
        self.traffic = {name: Traffic() for name in names}
        self.ports: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.base_events.Server] = []

    def __enter__(self) -> ByteProxy:
        self._thread.start()
        for name in self.traffic:
            future = asyncio.run_coroutine_threadsafe(self._listen(name), self._loop)
            self.ports[name] = future.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            self._loop.call_soon_threadsafe(server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _listen(self, name: str) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        server = await asyncio.start_server(lambda r, w: self._relay(name, r, w), sock=listener)
        self._servers.append(server)
        return int(listener.getsockname()[1])

    async def _relay(
        self, name: str, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        traffic = self.traffic[name]
        await asyncio.gather(
            self._pump(client_r, server_w, traffic, "up"),
            self._pump(server_r, client_w, traffic, "down"),
        )

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        traffic: Traffic,
        direction: str,
    ) -> None:
        try:
            while data := await reader.read(CHUNK):
                setattr(traffic, direction, getattr(traffic, direction) + len(data))
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

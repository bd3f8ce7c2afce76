"""The HTTP protocol `walletsvc serve` runs: uvicorn's httptools protocol (what its "auto" picks, on
uvloop) with a response's writes coalesced into one send.

uvicorn writes a response's status line and headers, then its body, each with a transport write of its
own, and uvloop sends each at once: two send() calls for every small answer. On loopback, or in a small
VM, a send costs about as much as the rest of a small answer; written once they cost half, for every
route. Its own module, so that `walletsvc serve --workers N` can hand the class to its worker processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CoalescedWrites:
    """A connection's transport that sends what was written in one turn of the event loop as one write:
    at the end of the turn (call_soon), at once past FLUSH_AT bytes, and before a close. All else is the
    transport's own."""

    FLUSH_AT = 64 * 1024

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size >= self.FLUSH_AT:
            self._flush()

    def writelines(self, lines: Iterable[bytes]) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending, self._size = [], 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._size + self._transport.get_write_buffer_size()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending, self._size = [], 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, set_protocol...
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (what "auto" picks, on uvloop) with coalesced writes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        coalesced = _CoalescedWrites(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(asyncio.Transport, coalesced))  # a Transport in all it uses

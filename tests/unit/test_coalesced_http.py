"""`walletsvc serve`'s transport wrapper: what is written in one turn of the event loop is sent as one
write, in order, before a close, and at once past FLUSH_AT bytes."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from walletsvc.coalesced_http import _CoalescedWrites


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else default


def _wrapped() -> tuple[_CoalescedWrites, _Transport]:
    transport = _Transport()
    return _CoalescedWrites(cast(asyncio.Transport, transport), asyncio.get_running_loop()), transport


async def test_the_writes_of_one_turn_go_out_as_one_at_its_end() -> None:
    coalesced, transport = _wrapped()
    coalesced.write(b"HTTP/1.1 201 Created\r\n\r\n")
    coalesced.write(b'{"id": "1"}')
    assert transport.writes == []
    assert coalesced.get_write_buffer_size() == len(b'HTTP/1.1 201 Created\r\n\r\n{"id": "1"}')
    await asyncio.sleep(0)  # the end of this turn of the loop
    assert transport.writes == [b'HTTP/1.1 201 Created\r\n\r\n{"id": "1"}']
    coalesced.write(b"next")
    await asyncio.sleep(0)
    assert transport.writes[1:] == [b"next"]


async def test_a_close_sends_what_is_buffered_first_and_an_abort_drops_it() -> None:
    coalesced, transport = _wrapped()
    coalesced.write(b"last answer")
    coalesced.close()
    assert transport.writes == [b"last answer"]
    assert transport.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing more to send
    assert transport.writes == [b"last answer"]

    coalesced, transport = _wrapped()
    coalesced.write(b"never sent")
    coalesced.abort()
    await asyncio.sleep(0)
    assert transport.writes == []
    assert transport.aborted


async def test_a_large_body_is_sent_at_once_and_the_rest_is_the_transports() -> None:
    coalesced, transport = _wrapped()
    coalesced.write(b"x" * 10)
    coalesced.write(b"y" * _CoalescedWrites.FLUSH_AT)
    assert transport.writes == [b"x" * 10 + b"y" * _CoalescedWrites.FLUSH_AT]
    assert coalesced.get_extra_info("peername") == ("127.0.0.1", 1234)

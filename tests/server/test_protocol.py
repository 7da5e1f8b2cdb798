"""The HTTP protocol's transport: writes of one loop turn leave together, in order."""

from __future__ import annotations

import asyncio
import socket

from modelpilot.server.rest.protocol import _CoalescingTransport


async def connected() -> tuple[_CoalescingTransport, asyncio.Transport, socket.socket]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    return _CoalescingTransport(transport, loop), transport, theirs


def received(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return b""


async def test_writes_of_one_turn_are_held_then_sent_in_order() -> None:
    wrapped, transport, peer = await connected()
    wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    wrapped.write(memoryview(b"{}"))
    assert received(peer) == b""  # nothing on the wire while the turn lasts
    assert wrapped.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert received(peer) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    wrapped.write(b"next")
    wrapped.close()  # closing sends what is held first
    await asyncio.sleep(0.01)
    assert received(peer) == b"next"
    assert transport.is_closing() and wrapped.is_closing()
    peer.close()


async def test_abort_drops_what_is_held_and_the_rest_is_the_real_transport() -> None:
    wrapped, transport, peer = await connected()
    assert wrapped.get_extra_info("socket") is transport.get_extra_info("socket")
    wrapped.write(b"never sent")
    wrapped.abort()
    await asyncio.sleep(0.01)
    try:
        data = peer.recv(100)  # an end of stream, a reset, or nothing yet: never the bytes
    except (BlockingIOError, ConnectionResetError):
        data = b""
    assert data == b""
    peer.close()

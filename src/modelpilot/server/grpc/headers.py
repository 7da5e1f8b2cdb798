"""Request header blocks (HPACK), decoded once per distinct block while they mean the same."""

from __future__ import annotations

from hpack import Decoder, HPACKError

from modelpilot.server.grpc.frames import COMPRESSION_ERROR, ProtocolError

HEADER_LIST_LIMIT = 64 * 1024
"""Largest header list a client may send (SETTINGS_MAX_HEADER_LIST_SIZE)."""
HEADER_CACHE_SIZE = 64
"""Decoded header blocks remembered per connection."""


class HeaderDecoder:
    """One connection's HPACK decoder, which remembers what repeated blocks decoded to.

    Clients repeat their headers call after call, as references to the dynamic table. A
    block that leaves the table as it was decodes the same way for as long as the table stays
    the same, so its result is remembered; any change to the table forgets all of them.
    Every block must pass through here, in order: the table must see each one.
    """

    def __init__(self) -> None:
        self._decoder = Decoder(max_header_list_size=HEADER_LIST_LIMIT)
        self._decoded: dict[bytes, list[tuple[str, str]]] = {}

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        headers = self._decoded.get(block)
        if headers is not None:
            return headers
        table = self._decoder.header_table
        entries = table.dynamic_entries
        count, newest, size = len(entries), entries[0] if entries else None, table.maxsize
        try:
            decoded = self._decoder.decode(block)
        except HPACKError as exc:
            raise ProtocolError(
                COMPRESSION_ERROR, f"a header block that does not decode: {exc}"
            ) from None
        headers = [(str(k), str(v)) for k, v in decoded]
        if (
            len(entries) == count
            and (entries[0] if entries else None) is newest
            and table.maxsize == size
        ):
            if len(self._decoded) >= HEADER_CACHE_SIZE:
                self._decoded.clear()
            self._decoded[block] = headers
        else:
            self._decoded.clear()
        return headers

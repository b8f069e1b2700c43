"""Large SSE frames are handed to the server in bounded pieces cut from the one shared frame."""

from __future__ import annotations

from flagstaff.realtime.events import Outgoing
from flagstaff.realtime.sse import PIECE, pieces


def test_pieces_keep_every_byte_in_order_and_none_is_larger_than_a_piece() -> None:
    small = Outgoing.of(1, "flag_updated", '{"key":"a"}')
    large = Outgoing.of(2, "put", '"' + "x" * (3 * PIECE + 123) + '"')
    batch = [small, large, small]
    out = list(pieces(batch, b"retry: 3000\n"))
    assert b"".join(out) == b"retry: 3000\n" + small.sse + large.sse + small.sse
    assert all(0 < len(piece) <= PIECE for piece in out)
    assert len(out) == 6  # prefix+small, four cuts of the large frame, the last small
    # A batch of small events stays one body, as before.
    assert list(pieces([small, small])) == [small.sse + small.sse]

"""Bytes and images per second of host link v2 (docs/protocol.md "Version 2", docs/boards.md).

One image travels as one IMAGE frame to the board (``n_inputs`` pixel bytes plus
:data:`~neurocore.boards.protocol.V2_OVERHEAD`) and one reply back
(:func:`~neurocore.boards.protocol.image_reply_bytes`); 8N1 puts 10 bits on the line per byte.
The line to the board is the bottleneck of the link (the reply direction runs at the same
time), so the link's rate is ``baud / 10 / bytes_to_board`` images per second.
"""

from __future__ import annotations

from ..boards.protocol import V2_OVERHEAD, image_reply_bytes

__all__ = ["BITS_PER_BYTE", "link_bytes_per_image", "link_images_per_second"]

#: Line bits per byte (8N1: start, 8 data, stop).
BITS_PER_BYTE = 10


def link_bytes_per_image(n_inputs: int, n_classes: int) -> tuple[int, int]:
    """(bytes to the board, bytes back) for one image of ``n_inputs`` pixels."""
    return n_inputs + V2_OVERHEAD, image_reply_bytes(n_classes)


def link_images_per_second(n_inputs: int, n_classes: int, baud: int) -> float:
    """Images per second the line allows at ``baud`` (the slower direction)."""
    to_board, to_host = link_bytes_per_image(n_inputs, n_classes)
    return baud / BITS_PER_BYTE / max(to_board, to_host)

"""Graph encodings of sparse networks (SPEC 3); all produce :class:`LayeredGraph`."""

from ..errors import EncodingError, GraphTooLargeError, UnsupportedModelError
from ._multipartite import (
    EncodingEstimate,
    check_memory,
    estimate,
    multipartite,
    multipartite_pair,
    residual_roles,
)
from ._rolled import rolled, rolled_channel
from ._unrolled import unrolled, unrolled_size
from .graph import LayeredGraph, Partition, from_edges

ENCODINGS = ("mge", "unrolled", "rolled", "rolled-channel")

__all__ = [
    "ENCODINGS",
    "EncodingError",
    "EncodingEstimate",
    "GraphTooLargeError",
    "LayeredGraph",
    "Partition",
    "UnsupportedModelError",
    "check_memory",
    "estimate",
    "from_edges",
    "multipartite",
    "multipartite_pair",
    "residual_roles",
    "rolled",
    "rolled_channel",
    "unrolled",
    "unrolled_size",
]

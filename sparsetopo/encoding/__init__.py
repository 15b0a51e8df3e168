"""Graph encodings of sparse networks (SPEC 3); all produce :class:`LayeredGraph`."""

from .graph import LayeredGraph, Partition, from_edges
from .multipartite import (
    EncodingError,
    EncodingEstimate,
    GraphTooLargeError,
    UnsupportedModelError,
    check_memory,
    estimate,
    multipartite,
    multipartite_pair,
)
from .rolled import rolled, rolled_channel
from .unrolled import unrolled, unrolled_size

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
    "rolled",
    "rolled_channel",
    "unrolled",
    "unrolled_size",
]

"""Graph encodings of sparse networks; every one produces :class:`LayeredGraph` objects.

- :func:`multipartite`: the multipartite graph encoding (MGE) of the whole network, for one
  input size (Cunegatti et al., TMLR 2024);
- :func:`unrolled`: one input-aware bipartite graph per conv/linear layer (unrolled BGE);
- :func:`rolled`: one bipartite graph per layer from the weight tensor alone (rolled BGE, Pal
  et al., ICML 2022);
- :func:`rolled_channel`: one channel-to-channel bipartite graph per layer (Prabhu et al.,
  ECCV 2018).

Every encoding is defined in ``docs/encodings.md``; :func:`estimate` sizes an MGE without
building it.
"""

from ..errors import EncodingError, GraphTooLargeError, UnsupportedModelError
from ._multipartite import (
    EncodingEstimate,
    TargetChunks,
    check_memory,
    estimate,
    memory_available,
    multipartite,
    multipartite_pair,
    residual_roles,
    target_chunks,
)
from ._rolled import rolled, rolled_channel
from ._unrolled import unrolled, unrolled_size
from .graph import LayeredGraph, Partition, from_edges

#: The encodings' names, as the command line spells them (``analyze --encoding``).
ENCODINGS = ("mge", "unrolled", "rolled", "rolled-channel")

__all__ = [
    "ENCODINGS",
    "EncodingError",
    "EncodingEstimate",
    "GraphTooLargeError",
    "LayeredGraph",
    "Partition",
    "TargetChunks",
    "UnsupportedModelError",
    "check_memory",
    "estimate",
    "from_edges",
    "memory_available",
    "multipartite",
    "multipartite_pair",
    "residual_roles",
    "rolled",
    "rolled_channel",
    "target_chunks",
    "unrolled",
    "unrolled_size",
]

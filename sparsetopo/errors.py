"""Every error sparsetopo raises on purpose, under one base class.

``InputError`` (also a ``ValueError``) means bad input: the command line reports it as one line
and exit code 2, and nothing has been half-written. ``StudyError`` means a study could not go on
(finished runs are stored); anything else is unexpected (exit code 1).
"""

from __future__ import annotations


class SparsetopoError(Exception):
    """Base class of sparsetopo's errors."""


class InputError(SparsetopoError, ValueError):
    """Bad input: a value, a file or a model the toolkit cannot use; the message names it and
    what is supported."""


class UsageError(InputError):
    """A command-line option that cannot be used as given."""


class OutputError(InputError):
    """An output location that cannot be created or written (a file in the way, no permission,
    a read-only file system)."""


class ModelSpecError(InputError):
    """A user model (``PATH.py:FACTORY``) that cannot be found or does not build a model."""


class DataError(InputError):
    """A dataset that is missing or malformed on disk."""


class WeightsError(InputError):
    """A weights file that cannot be loaded into the model."""


class TracingError(InputError):
    """A model whose dataflow cannot be traced or contains an op that cannot be encoded."""


class EncodingError(InputError):
    """A network that cannot be encoded as asked."""


class UnsupportedModelError(EncodingError, TracingError):
    """A model with an op the encodings do not support."""


class GraphTooLargeError(EncodingError, MemoryError):
    """A graph that would not fit in the available memory."""


class ConfigError(InputError):
    """A study configuration that cannot be used; the message names the offending key."""


class StoreError(InputError):
    """A results file that cannot be used (not a sparsetopo results file, other schema)."""


class PublishedDataError(InputError):
    """A published table is missing, unreadable or not in the expected format."""


class FitError(InputError):
    """A fitted study (``study fit`` output) that cannot be used for a prediction."""


class ResourceError(InputError):
    """Compute resources asked for that the machine or cluster does not have (e.g. GPUs per run
    where no GPU is visible); refused before anything runs instead of waiting for them."""


class StudyError(SparsetopoError, RuntimeError):
    """The study could not go on (e.g. a worker process died); finished runs are stored."""

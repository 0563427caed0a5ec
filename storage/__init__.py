"""Lineage, evaluations, traces and LLM calls in SQL (SQLite by default).

This package never runs code: it imports neither `sandbox` nor `engine`. Start at
`storage.repository.Store`; the read-only questions live in `storage.queries`.
"""

from storage.encode import env_key, holdout_env_key, seeds_key
from storage.errors import (
    AmbiguousIdError,
    AppendOnlyError,
    CorruptDatabaseError,
    InvalidInputError,
    NotFoundError,
    SchemaTooNewError,
    StorageError,
)
from storage.leases import Lease, LeaseHeldError, LeaseLostError
from storage.models import short_id
from storage.repository import Checkpoint, Store, StoredTrace
from storage.store_llm import LlmExchange
from storage.usage import RunUsage

__all__ = [
    "AmbiguousIdError",
    "AppendOnlyError",
    "Checkpoint",
    "CorruptDatabaseError",
    "InvalidInputError",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "LlmExchange",
    "NotFoundError",
    "RunUsage",
    "SchemaTooNewError",
    "StorageError",
    "Store",
    "StoredTrace",
    "env_key",
    "holdout_env_key",
    "seeds_key",
    "short_id",
]

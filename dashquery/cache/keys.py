"""Cache keys and decoded values: the namespace of one database identity and settings, the
keys of one request (memoised: they are the same for every call), and the values decoded
before, reused while Redis holds the same bytes."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from dashquery.catalog import CONTRACT_VERSION
from dashquery.config import Settings

T = TypeVar("T")


@functools.lru_cache(maxsize=64)
def _namespace(identity: str, source_schema: str, schema: str, timezone: str) -> str:
    # Unit separators: no schema name (which may hold ':' or spaces) can fake another's.
    parts = "\x1f".join([identity, source_schema, schema, timezone])
    return f"dq:v{CONTRACT_VERSION}:" + hashlib.sha256(parts.encode()).hexdigest()[:20]


def cache_namespace(identity: str, settings: Settings) -> str:
    """The key prefix of one database identity (``Computer.identity()``) and settings."""
    return _namespace(identity, settings.source_schema, settings.schema, settings.timezone)


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Where one request's result lives, and the prefix of its single-flight locks."""

    value: str
    lock: str


@dataclass(frozen=True, slots=True)
class Slot:
    """Everything a lookup needs of one request that does not change between calls: its
    keys, the MGET of its value and generations, and the document header it must carry."""

    key: CacheKey
    mget: tuple[str, str, str]
    header: list[str]


class Decoded(Generic[T]):
    """The value last decoded at each key, with the exact bytes it came from.

    Decoding is a pure function of the stored bytes (and of the key, which fixes the request
    and time zone they must match), so while Redis holds the very same bytes, checksum and
    document included, the result of decoding them again is known: ``copy`` of it is
    served, and only the generations (read afresh in every MGET) are checked again. Bounded:
    emptied when ``max_keys`` keys are held.
    """

    def __init__(self, copy: Callable[[T], T], max_keys: int = 1024) -> None:
        self.copy = copy
        self.max_keys = max_keys
        self._values: dict[str, tuple[bytes, T]] = {}

    def get(self, key: str, raw: bytes) -> T | None:
        known = self._values.get(key)
        return known[1] if known is not None and known[0] == raw else None

    def put(self, key: str, raw: bytes, value: T) -> None:
        if len(self._values) >= self.max_keys:
            self._values.clear()
        self._values[key] = (raw, value)

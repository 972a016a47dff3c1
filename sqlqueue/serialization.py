"""Arguments, results and failures as JSON: jobs are data, never pickled objects."""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from typing import Any

from sqlqueue.exceptions import SerializationError


def check_json(value: Any, what: str) -> int:
    """Refuse a value the JSON columns could not store faithfully, before anything is written;
    returns the size of its JSON encoding, in bytes."""
    return len(encode_json(value, what))  # ASCII: the encoder escapes everything else


def encode_json(value: Any, what: str) -> str:
    """The JSON text of a value the JSON columns can store faithfully, or a clear refusal."""
    if not value and isinstance(value, list | dict):
        return "{}" if isinstance(value, dict) else "[]"  # most sends have no kwargs
    try:
        encoded = _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"{what} must be JSON-serialisable (str, int, float, bool, None, list, dict): {exc}. "
            "Pass plain data, such as an id instead of an object."
        ) from exc
    if "\\u0000" in encoded:
        # PostgreSQL's JSONB cannot hold a NUL character; refuse it everywhere, before writing.
        raise SerializationError(
            f"{what} contains a NUL character (\\x00), which cannot be stored."
        )
    return encoded


_encoder = json.JSONEncoder(allow_nan=False)
"""One encoder for every value: ``json.dumps`` with an option builds a new one per call."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed run leaves in the job's row: data, not the exception object."""

    error_type: str
    error_message: str
    traceback: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failure:
        """Describe an exception, with the traceback of where it was raised."""
        # Text columns cannot hold NUL characters (PostgreSQL refuses them): spell them out.
        return cls(
            error_type=exception_path(type(exc)),
            error_message=str(exc).replace("\x00", "\\x00"),
            traceback="".join(traceback.format_exception(exc)).replace("\x00", "\\x00"),
        )

    def as_values(self) -> dict[str, Any]:
        """The column values of this failure."""
        return {
            "error_type": self.error_type,
            "error_message": self.error_message,
            "traceback": self.traceback,
        }


def exception_path(exc_type: type[BaseException]) -> str:
    """``ValueError`` for a builtin (as tracebacks name it), ``package.module.Error`` for any
    other: importable once ``builtins.`` is put before a bare name, as the Django backend does
    for ``TaskError.exception_class``."""
    if exc_type.__module__ == "builtins":
        return exc_type.__qualname__
    return f"{exc_type.__module__}.{exc_type.__qualname__}"

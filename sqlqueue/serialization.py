"""Arguments, results and failures as JSON: jobs are data, never pickled objects."""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from sqlqueue.exceptions import InvalidOptionError, SerializationError


def encode_json(value: Any, what: str) -> str:
    """The JSON text of a value the JSON columns can store faithfully, or a clear refusal."""
    if not value and isinstance(value, list | dict):
        return "{}" if isinstance(value, dict) else "[]"  # most sends have no kwargs
    try:
        encoded = _encode(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"{what} must be JSON-serialisable (str, int, float, bool, None, list, dict): {exc}. "
            "Pass plain data, such as an id instead of an object."
        ) from exc
    if "\\u0000" in encoded or "\\ud" in encoded:
        # Either a character the database cannot store, or harmless text that only looks
        # like its escape (an emoji, a backslash followed by "u0000"): find out which.
        refuse_unstorable_text(value, what)
    return encoded


def encode_calls(
    task_name: str, calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]], max_bytes: int
) -> tuple[list[str], list[str]]:
    """The JSON texts of the args and of the kwargs of each call of a task, or a clear
    refusal of the first call that cannot be stored: not JSON, or more than ``max_bytes``."""
    args_are = f"The arguments of task {task_name!r}"
    kwargs_are = f"The keyword arguments of task {task_name!r}"
    encoded_args, encoded_kwargs = [], []
    for args, kwargs in calls:
        args_json = encode_json(args, args_are)
        kwargs_json = encode_json(kwargs, kwargs_are) if kwargs else "{}"
        # The encoder escapes everything outside ASCII, so characters are bytes.
        size = len(args_json) + len(kwargs_json)
        if size > max_bytes:
            raise InvalidOptionError(
                f"The arguments of task {task_name!r} take {size} bytes as JSON, more than "
                f"app.conf.max_payload_bytes ({max_bytes}); pass a reference (an id, a URL) "
                "instead of the data, or raise the limit."
            )
        encoded_args.append(args_json)
        encoded_kwargs.append(kwargs_json)
    return encoded_args, encoded_kwargs


def refuse_unstorable_text(value: Any, what: str) -> None:
    """Refuse a NUL character (PostgreSQL's JSON and text types cannot hold one) and a lone
    surrogate (not Unicode text: it has no UTF-8 form, and ``\\udXXX`` escapes that happen
    to pair up would come back as another character) anywhere in a JSON value."""
    pending: list[tuple[Any, str]] = [(value, "")]
    while pending:  # a loop, not recursion: the encoder accepted this depth, Python may not
        item, where = pending.pop()
        if isinstance(item, str):
            texts = [(item, where)]
        elif isinstance(item, dict):
            texts = [(key, f"{where}[{key!r}] (the key)") for key in item if isinstance(key, str)]
            pending.extend((inner, f"{where}[{key!r}]") for key, inner in item.items())
        elif isinstance(item, list | tuple):
            texts = []
            pending.extend((inner, f"{where}[{index}]") for index, inner in enumerate(item))
        else:
            continue
        for text, place in texts:
            problem = _unstorable(text)
            if problem is not None:
                at = f" at {place}" if place else ""
                raise SerializationError(
                    f"{what} cannot be stored: {problem}{at}. Send binary data as base64; "
                    "decode bytes with errors='replace' (a lone surrogate usually comes from "
                    "errors='surrogateescape')."
                )


def _unstorable(text: str) -> str | None:
    """What in this text no column can hold, if anything."""
    if "\x00" in text:
        return "a NUL character (\\x00), which PostgreSQL cannot hold"
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        return f"a lone surrogate ({surrogate.group()!r}), which is not Unicode text"
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(text: str) -> str:
    """Text that a text column can hold: NUL characters and lone surrogates spelled out as
    escapes (``\\x00``, ``\\udce9``), for messages and tracebacks that must be kept anyway."""
    text = text.replace("\x00", "\\x00")
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_encoder = json.JSONEncoder(allow_nan=False)
"""One encoder for every value: ``json.dumps`` with an option builds a new one per call."""

_c_encoder = (
    c_make_encoder(
        None,  # no record of the containers open: nothing shared between threads
        _encoder.default,
        encode_basestring_ascii,
        _encoder.indent,
        _encoder.key_separator,
        _encoder.item_separator,
        _encoder.sort_keys,
        _encoder.skipkeys,
        _encoder.allow_nan,
    )
    if c_make_encoder is not None
    else None
)
"""``_encoder``'s own C encoder, made once: ``encode`` makes one per call, which was most of
the cost of encoding a job's arguments in a large send."""


def _encode(value: Any) -> str:
    """``_encoder.encode(value)``, the same text, faster."""
    if _c_encoder is not None:
        try:
            return "".join(_c_encoder(value, 0))
        except (RecursionError, TypeError, ValueError):
            pass  # refused (a cycle, here, as a RecursionError): let _encoder say why
    return _encoder.encode(value)


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed run leaves in the job's row: data, not the exception object."""

    error_type: str
    error_message: str
    traceback: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failure:
        """Describe an exception, with the traceback of where it was raised."""
        return cls(
            error_type=exception_path(type(exc)),
            error_message=storable_text(str(exc)),
            traceback=storable_text("".join(traceback.format_exception(exc))),
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

"""How a journal row holds an outcome's key and value (see :mod:`fastreq._journal`)."""

from __future__ import annotations

import json
import pickle
from typing import Any

from fastreq._journal_writer import loads
from fastreq.backends.base import NormalizedResponse

__all__ = ["PLAIN", "encode", "key_text", "key_value", "load"]

#: JSON values stored as they are, their size not counted (str is counted: text bodies)
PLAIN = frozenset({dict, list, int, float, bool, type(None)})


def key_text(key: Any) -> str:
    try:
        return json.dumps(key)
    except (TypeError, ValueError):
        return repr(key)


def key_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        key = json.loads(text)
    except ValueError:
        return text
    return tuple(key) if isinstance(key, list) else key


def encode(value: Any) -> tuple[str, Any]:
    """A value that is not plainly JSON: its kind and what the batch holds for it."""
    if isinstance(value, bytes):
        return "x", value.hex()
    if isinstance(value, NormalizedResponse):
        return "R", pickle.dumps((value.status_code, value.header_items, value.content,
                                  value.url, value.http_version, value.elapsed)).hex()
    return "j", value  # tuples, subclasses...: JSON if it can, else _dump_row pickles it


def load(kind: str | None, stored: Any) -> Any:
    if kind == "j":
        return loads(stored if stored is not None else "null")
    if kind == "x":
        return bytes.fromhex(stored or "")
    if kind in ("R", "r"):
        blob = bytes.fromhex(stored) if kind == "R" else stored
        status, items, content, url, version, elapsed = pickle.loads(blob)
        return NormalizedResponse(status, items, content, url=url, http_version=version,
                                  elapsed=elapsed)
    if kind in ("P", "p"):
        return pickle.loads(bytes.fromhex(stored) if kind == "P" else stored)
    if kind == "b":  # the one-table format's kinds (older journals)
        return bytes(stored or b"")
    if kind == "s":
        return bytes(stored or b"").decode()
    return None

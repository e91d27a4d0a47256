"""A journaled ``request(list, journal=...)`` fed by the curl lane in bulk.

The lane hands its outcomes back in batches (:data:`fastreq._curl_lane_feed.Batch`);
:func:`lane_sink` takes each batch at once: values straight into the result list, failures
into the failure list, and one journal row per outcome, the batch of rows handed to
:meth:`Journal.add_rows <fastreq._journal.Journal.add_rows>` in one call (no
:class:`~fastreq.Result`, no call per outcome).

A value the lane parsed from a JSON body (return_type json, no parse_func) is recorded as
that body (``orjson.Fragment``: embedded in the batch's JSON array as it came, not
serialized again); replay parses it with the same parser as the lane did, so the value
read back is the one returned. Other outcomes are recorded as :meth:`Journal.add` records
them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from time import perf_counter
from typing import Any

from fastreq._curl_lane_feed import BulkSink
from fastreq._journal import Journal
from fastreq._journal_codec import PLAIN, key_text
from fastreq._journal_writer import Fragment
from fastreq._models import FailureDetails, Request

__all__ = ["lane_sink"]



def lane_sink(journal: Journal, values: list[Any], failures: list[FailureDetails],
              keys: Sequence[Hashable] | None) -> BulkSink:
    """A bulk sink writing into ``values``/``failures`` and ``journal`` (see the module
    docstring); ``keys``: the plan's keys, if any (then every row is built here)."""
    add, add_rows = journal.add, journal.add_rows
    fragment, plain = Fragment, PLAIN

    def take(outcomes: list[tuple[Any, ...]]) -> None:
        now = perf_counter()
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        size = 0
        count = len(values)
        for index, item, url, status, value, error, attempts, started, body in outcomes:
            if status is not None and status.__class__ is not int:
                status = status.status_code
            if item.__class__ is Request and item.key is not None:
                key = item.key
            else:
                key = keys[index] if keys is not None else None
            if index >= count:
                values.extend([None] * (index + 1 - count))
                count = len(values)
            if error is not None:
                failures.append(FailureDetails(index, key, url, error, attempts))
                add(index, key, url, status, None, error, attempts, now - started)
                continue
            values[index] = value
            if body is not None and fragment is not None:
                append((index, None if key is None else key_text(key), url, status, 1, None,
                        attempts, now - started, "j", fragment(body)))
                size += len(body)
            elif value.__class__ in plain:
                append((index, None if key is None else key_text(key), url, status, 1, None,
                        attempts, now - started, "j", value))
            else:  # text, bytes, a response...: encoded (and counted) by add()
                add(index, key, url, status, value, None, attempts, now - started)
        if rows:
            add_rows(rows, size)

    if fragment is None or keys is not None:
        return BulkSink(take)
    return BulkSink(take, values, add_rows, fragment)

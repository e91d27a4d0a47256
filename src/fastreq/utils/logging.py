"""Logging under the ``fastreq`` logger; the host application's logging is never touched.

Example::

    import logging
    logging.getLogger("fastreq").setLevel(logging.DEBUG)   # or FastRequests(debug=True)
"""

from __future__ import annotations

import logging

__all__ = ["enable_debug", "get_logger"]

_ROOT = "fastreq"
_handler: logging.Handler | None = None


def get_logger(name: str = "") -> logging.Logger:
    """The ``fastreq`` logger or one of its children (``get_logger("client")``)."""
    return logging.getLogger(f"{_ROOT}.{name}" if name else _ROOT)


def enable_debug() -> None:
    """Turn the ``fastreq`` logger up to DEBUG, with a stderr handler on it alone.

    Only fastreq's own logger is changed: the root logger and other libraries' loggers keep
    whatever configuration the application gave them. Calling it twice adds one handler.
    """
    global _handler
    logger = logging.getLogger(_ROOT)
    logger.setLevel(logging.DEBUG)
    if _handler is None:
        _handler = logging.StreamHandler()
        _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(_handler)

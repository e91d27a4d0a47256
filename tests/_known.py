"""Known per-backend gaps: mark a test ``xfail(strict=True)`` for the named backends only."""

from __future__ import annotations

import pytest


def known_gap(request: pytest.FixtureRequest, backend_name: str, gaps: dict[str, str]) -> None:
    """If ``backend_name`` has a known gap here, expect this test to fail (strictly)."""
    reason = gaps.get(backend_name)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"{backend_name}: {reason}"))

"""Default headers and user-agent rotation.

User agents come from fake-useragent's data set (real, current browser strings collected
from traffic, shipped with the package and updated with its releases), or from a list or file
the user gives.

Example::

    pool = UserAgentPool()                    # desktop + mobile browsers from the data set
    pool.random()                             # 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) ...'
    UserAgentPool.from_file("agents.txt")     # one user agent per line
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from fastreq.exceptions import ConfigurationError

__all__ = ["UserAgentPool", "merge_headers"]


_UA_FIELD = re.compile(r'\s*"((?:[^"\\]|\\.)*)"')


def _load_data_set() -> list[str]:
    try:
        data = resources.files("fake_useragent").joinpath("data/browsers.jsonl").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigurationError(
            "random_user_agent=True needs the fake-useragent package (pip install fake-useragent)"
            " or pass user_agents=[...]"
        ) from exc
    # Plain string splitting instead of json.loads per record: ~50x faster start-up. A value
    # with an escape sequence (none today) is handed to the JSON parser.
    agents = []
    for part in data.split('"useragent":')[1:]:
        match = _UA_FIELD.match(part)
        if match:
            raw = match.group(1)
            agents.append(json.loads(f'"{raw}"') if "\\" in raw else raw)
    agents = [a for a in agents if a.startswith("Mozilla/5.0")]
    if not agents:
        raise ConfigurationError("fake-useragent's data set holds no user agents")
    return agents


_DATA_SET: list[str] | None = None


class UserAgentPool:
    """A pool of user-agent strings to pick from at random."""

    def __init__(self, agents: Iterable[str] | None = None, rng: random.Random | None = None):
        global _DATA_SET
        if agents is None:
            if _DATA_SET is None:
                _DATA_SET = _load_data_set()
            self.agents = _DATA_SET
        else:
            self.agents = [a.strip() for a in agents if a and a.strip()]
            if not self.agents:
                raise ConfigurationError("the user-agent list is empty")
            for agent in self.agents:
                if any(c in agent for c in "\r\n\x00"):
                    raise ConfigurationError(f"user agent contains CR/LF/NUL: {agent!r}")
        self._random = (rng or random.Random()).random

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> UserAgentPool:
        """One user agent per line; blank lines and ``#`` comments skipped."""
        try:
            lines = Path(path).read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read the user agents file {str(path)!r}: {exc}"
            ) from exc
        return cls(line for line in lines if not line.lstrip().startswith("#"))

    def random(self) -> str:
        agents = self.agents
        return agents[int(self._random() * len(agents))]


def merge_headers(*layers: dict[str, str] | None) -> dict[str, str]:
    """A new dict: later layers win, names compared case-insensitively; inputs not modified."""
    out: dict[str, str] = {}
    lower: dict[str, str] = {}
    for layer in layers:
        if not layer:
            continue
        for name, value in layer.items():
            previous = lower.get(name.lower())
            if previous is not None and previous != name:
                del out[previous]
            lower[name.lower()] = name
            out[name] = value
    return out

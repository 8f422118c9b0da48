"""Front-end overload detection: shed the lowest priority classes before they cost anything.

When the server is CPU-bound on its request path (parsing, the RPC layer), requests queue up
before they reach the scheduler, where priorities cannot help.  ``LagMonitor`` measures how
late the gRPC event loop wakes from a short sleep; that lag is the queueing delay every new
request meets at the door.  Once its moving average passes ``lag_target_s`` the lowest class
is refused at admission (RESOURCE_EXHAUSTED, before decoding anything), at twice the target
the next one, and so on, but only classes below the default class: a burst of lag (a version
being loaded, a noisy neighbour) must never fail ordinary traffic.  The default and higher
classes are only ever refused by a full scheduler queue.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

_LOG = logging.getLogger(__name__)
PROBE_INTERVAL_S = 0.005
_ALPHA = 0.25


def shed_level(lag_s: float, lag_target_s: float, max_level: int) -> int:
    """How many of the lowest classes to refuse for a measured lag.

    Args:
        lag_s: the smoothed event-loop lag.
        lag_target_s: the lag tolerated before shedding starts (<= 0 disables shedding).
        max_level: the most classes that may be shed (those below the default class).

    Returns:
        0 (admit all) up to ``max_level``.
    """
    if lag_target_s <= 0 or lag_s < lag_target_s:
        return 0
    return min(max_level, int(lag_s / lag_target_s))


class LagMonitor:
    """Probes an event loop's lag and publishes the shed level through ``publish``.

    Args:
        lag_target_s: lag tolerated before the lowest class is shed.
        max_level: the most classes that may be shed (those below the default class).
        publish: receives the new shed level whenever it changes.
    """

    def __init__(self, lag_target_s: float, max_level: int, publish: Callable[[int], None]) -> None:
        self._target = lag_target_s
        self._max_level = max_level
        self._publish = publish
        self.lag_s = 0.0
        self.level = 0

    def observe(self, lag_s: float) -> int:
        """Fold one lag sample into the average; returns the shed level."""
        self.lag_s = (1 - _ALPHA) * self.lag_s + _ALPHA * max(0.0, lag_s)
        level = shed_level(self.lag_s, self._target, self._max_level)
        if level != self.level:
            _LOG.info("front-end lag %.1f ms: shedding the lowest %d priority class(es)",
                      self.lag_s * 1e3, level)
            self.level = level
            self._publish(level)
        return level

    async def run(self) -> None:
        """Probe until cancelled (run as a task on the loop being measured)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(PROBE_INTERVAL_S)
            self.observe(loop.time() - started - PROBE_INTERVAL_S)

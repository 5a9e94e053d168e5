"""What time it is, as the janitor sees it: a collaborator, so tests can set "now".

Expiry is a comparison with the present; passing the clock in (arq's ``ctx["clock"]``)
lets a test put "now" on either side of an ``expiredAt`` without waiting or patching.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """The current time in UNIX seconds."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

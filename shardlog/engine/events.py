"""Things a storage user should hear about without reading logs: a lagging
group, a forced relocation. A client polls them with a cursor.

The log is bounded (oldest dropped first); a poller that fell further behind
than it holds learns so from ``missed``.
"""

import time
from collections import deque


class EventLog:
    def __init__(self, limit=1000):
        self._events = deque(maxlen=limit)
        #: Sequence number of the last event added (events count from 1).
        self.last = 0

    def add(self, kind, **fields):
        self.last += 1
        self._events.append({"seq": self.last, "time": time.time(), "kind": kind, **fields})

    def since(self, after=0):
        """``{"events": [...], "last": n, "missed": k}``: the events numbered above
        ``after``, the number to pass next time, and how many of those were
        already dropped."""
        events = [e for e in self._events if e["seq"] > after]
        first = events[0]["seq"] if events else self.last + 1
        return {"events": events, "last": self.last, "missed": max(0, first - after - 1)}

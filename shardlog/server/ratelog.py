"""Log lines a client can cause at any rate, without letting it flood the log.

A fuzzing or broken client sent 2,738 bad requests in one run, each logged.
Here the first of each kind is logged, then at most one line per interval
saying how many more came and what the last one was.
"""

import time


class RateLimitedLog:
    def __init__(self, logger, interval=60.0, clock=time.monotonic):
        self._log = logger
        self._interval = interval
        self._clock = clock
        #: kind -> [time of the last line logged, lines skipped since]
        self._kinds = {}

    def __call__(self, kind, level, message):
        now = self._clock()
        seen = self._kinds.get(kind)
        if seen is None:
            self._kinds[kind] = [now, 0]
            self._log.log(level, "%s (more of these are logged at most once per %g s)", message, self._interval)
            return
        if now - seen[0] < self._interval:
            seen[1] += 1
            return
        skipped, elapsed = seen[1], now - seen[0]
        seen[0], seen[1] = now, 0
        self._log.log(level, "%s (and %d more like it in the last %.0f s)", message, skipped, elapsed)

"""The fake timer the timed-cache tests share."""


class Clock:
    """A fake timer: ``clock.time`` is the time; ``tick()`` advances it; with ``auto=True``
    every call advances it by one first."""

    def __init__(self, auto=False, start=0):
        self.time = start
        self.auto = auto

    def __call__(self):
        if self.auto:
            self.time += 1
        return self.time

    def tick(self, n=1):
        self.time += n

"""Timeouts counted in sweeps, at a cost proportional to what falls due, not to what is open.

Theory of operation
- The gateway sweeps once a second, and every timeout is counted in sweeps (a limit of ``s``
  seconds fires at the ``int(s) + 1``-th sweep after its clock started, so between ``s`` and
  ``s + 1`` seconds later; see ``alloy.upstream.sweep_ticks``). Visiting every connection at every
  sweep would make 10,000 idle keep-alive connections cost 10,000 Python calls a second.
- Instead each watched object (a *member*: a client connection, an upstream connection) is filed in
  the bucket of the sweep at which its earliest deadline can fall. ``advance`` (one sweep) takes out
  that sweep's bucket, and only it, and calls ``member.on_due(now)`` on each member in it: the member
  works out its deadlines as they are now, acts on one that has passed, or files itself again for
  the next one.
- Activity that only moves a deadline later (bytes on an idle connection, a read on a stream) files
  nothing: the member writes the sweep number (``now``) into a field of its own, and moves itself to
  the later bucket when its old one comes up (lazy re-bucketing). Only a change that can bring a
  deadline earlier (a connection starts reading a request, whose read timeout is shorter than the
  keep-alive one) files the member again at once, with ``file``, which never moves it later.
- Invariant: a member is filed no later than the first sweep any of its deadlines can fall in, so
  every deadline fires at exactly the sweep a counter visited at every sweep would have fired it.

A member has a ``due`` field (the sweep it is filed for; 0: not filed) and an ``on_due(now)`` method.
"""

import math


class TimingWheel:
    __slots__ = ("now", "buckets")

    def __init__(self):
        self.now = 0  # sweeps so far; a deadline is the number of the sweep that enforces it
        self.buckets = {}  # sweep number -> the set of members filed for it

    def file(self, member, sweep):
        """Look at ``member`` no later than sweep ``sweep`` (the next one if that is not in the
        future). A member already filed for that sweep or an earlier one stays where it is."""
        due = member.due
        if due and due <= sweep:
            return
        now = self.now
        if sweep <= now:
            sweep = now + 1
            if due == sweep:
                return
        if due:
            bucket = self.buckets.get(due)
            if bucket is not None:
                bucket.discard(member)
        member.due = sweep
        bucket = self.buckets.get(sweep)
        if bucket is None:
            self.buckets[sweep] = {member}
        else:
            bucket.add(member)

    def drop(self, member):
        """``member`` needs no more looking at (it closed)."""
        due = member.due
        if due:
            member.due = 0
            bucket = self.buckets.get(due)
            if bucket is not None:
                bucket.discard(member)

    def advance(self):
        """One sweep: the members filed for it, and only those, are looked at. Returns how many."""
        self.now = now = self.now + 1
        bucket = self.buckets.pop(now, None)
        if not bucket:
            return 0
        for member in bucket:
            # A member dropped or filed elsewhere by another one's timeout during this loop is not
            # this sweep's any more.
            if member.due == now:
                member.due = 0
                member.on_due(now)
        return len(bucket)

    def file_all_next(self, members):
        """Look at every one of ``members`` at the next sweep (a drain started, or a reload changed
        the limits): they work out their deadlines again from there."""
        sweep = self.now + 1
        for member in members:
            self.drop(member)
            self.file(member, sweep)

    def filed(self):
        """How many members are filed (for tests and benchmarks)."""
        return sum(map(len, self.buckets.values()))


def sweep_ticks(seconds):
    """How many ticks of the once-a-second sweep make sure at least ``seconds`` have passed: the
    first tick comes anywhere within a second of the start, so a limit fires between ``seconds``
    and ``seconds + 1`` after it."""
    return math.ceil(seconds) + 1


def sweeps(seconds):
    """How many sweeps after its clock started a limit of ``seconds`` fires: the first sweep comes
    anywhere within a second of the start, so ``int(seconds) + 1`` sweeps make sure more than
    ``seconds`` have passed (the counters this replaces fired when ``count > seconds``)."""
    return int(seconds) + 1

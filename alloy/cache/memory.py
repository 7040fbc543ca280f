"""The in-memory store: entries of this process, least recently used first out, bounded in bytes.

An ``OrderedDict`` from key (``alloy.cache.keys``: the request's normalized bytes, or their
SHA-256) to ``Entry``: a hit moves its entry to the end; a store adds at the end and evicts from
the front until the stored bytes (each entry's ``size()``, its body plus a fixed allowance for the
objects around it, its namespace's and its key's length) fit ``max_bytes``; an entry bigger than
``max_bytes`` alone is not stored (it would evict everything, then itself).
An expired entry is dropped when a lookup meets it; eviction takes the rest. Every operation is
synchronous and O(1) except ``clear`` by namespace, an admin operation that walks the entries.
"""

from collections import OrderedDict


class MemoryStore:
    synchronous = True

    def __init__(self, max_bytes, stats):
        self.max_bytes = max_bytes
        self.entries = OrderedDict()
        self.bytes = 0
        self.stats = stats

    def get(self, key, now):
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            self._drop(key)
            return None
        self.entries.move_to_end(key)
        return entry

    def put(self, key, entry):
        if key in self.entries:
            self._drop(key)
        size = entry.size() + len(key)
        if size > self.max_bytes:
            return  # it could never fit: storing it would only push every other entry out first
        self.entries[key] = entry
        self.bytes += size
        self.stats.stored(size)
        while self.bytes > self.max_bytes:
            oldest = next(iter(self.entries))
            self._drop(oldest)
            self.stats.evictions += 1

    def clear(self, namespace=None):
        """Drop every entry, or those of ``namespace`` and the namespaces under it; how many."""
        if namespace is None:
            dropped = len(self.entries)
            self.entries.clear()
            self.bytes = 0
            return dropped
        under = namespace + "/"
        doomed = [k for k, e in self.entries.items() if e.namespace == namespace or e.namespace.startswith(under)]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    def _drop(self, key):
        entry = self.entries.pop(key)
        self.bytes -= entry.size() + len(key)

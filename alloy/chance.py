"""Random draws for the balancer, the retry backoff's jitter and access-log sampling.

Every draw Alloy makes is a float in [0, 1), so it takes that one function from the generator under
``random.random`` (``_random.Random``, a Mersenne Twister seeded from ``os.urandom``) rather than
the ``random`` module, which imports hashlib's sha512 and bisect and binds twenty methods for
features Alloy never uses (~0.25 MB held from the start of a gateway to its end). As ``random``
does, the generator is seeded again in a forked child, so the workers of ``alloy --workers N`` do
not all draw the same sequence.
"""

import os
from _random import Random

_generator = Random()
os.register_at_fork(after_in_child=_generator.seed)

random = _generator.random
"""A float in [0, 1)."""

"""What the service has built at start-up, kept out of the cyclic garbage collector's way.

Scoring allocates many short-lived containers (mentions, token lists, result dicts), so CPython's
collector runs often; every full collection walks each tracked object of the process again, and
after start-up most of them are imported modules, rule tables, vocabularies and loaded models that
live as long as the process (about 100,000 objects with the rule scorers alone). Walking them was a
quarter of the rule scorers' time with every text new (bench/RESULTS.md). Moving them to the
collector's permanent generation once the profiles are loaded stops that; reference counting still
frees them, and only reference cycles among them wait until :func:`release_startup_heap`.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Exempt every object alive now from future collections (call once start-up is done)."""
    gc.freeze()


def release_startup_heap() -> None:
    """Undo :func:`freeze_startup_heap` (at shutdown, or when a process builds and drops engines)."""
    gc.unfreeze()

"""The bottom layer, shared by ``reward_service``, ``clients`` and ``trainer``: the standard library only.

Modules: ``merging`` (one batch from the calls of one event-loop turn), ``fill`` (stand-ins for missing
rewards), ``openrlhf`` (OpenRLHF's reward protocol: the response inside a query, the answer's shape),
``extras`` (the optional parts of the distribution and how to install them), ``lru`` (a small
LRU with optional TTL), ``single_flight`` (concurrent callers of one key share one computation),
``retry_after`` (the Retry-After header, both forms). Nothing is imported here.
"""

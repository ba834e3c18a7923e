"""The playground page served at ``/ui``: its static files and its example report pairs.

The HTTP routes live in :mod:`reward_service.api.playground`; scoring goes through ``POST /v1/score``
like every other client, so the page adds nothing to the scoring path.
"""

from reward_service.playground.examples import Example, ExampleCandidate, Examples, playground_examples
from reward_service.playground.variants import Variant, make_variants

__all__ = ["Example", "ExampleCandidate", "Examples", "Variant", "make_variants", "playground_examples"]

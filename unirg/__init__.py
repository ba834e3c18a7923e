"""The UniRG distribution: the ``unirg`` command and what sits above or below its parts.

``reward_service`` (the HTTP service), ``clients`` (its trainer-side clients) and ``trainer`` (the TRL
trainer) are the parts. ``unirg.common`` is the layer under all three; ``unirg.cli`` (the command) and
``unirg.evaluation`` (``unirg eval``, which scores in-process or through the clients) sit above them.
docs/architecture.md says what each layer may import; ``lint-imports`` checks it.
"""

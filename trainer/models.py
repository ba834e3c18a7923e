"""Loading the policy model and its tokenizer or processor, from a hub id or a local directory."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

logger = logging.getLogger(__name__)

__all__ = [
    "image_only_processor_class",
    "load_model",
    "load_processing_class",
    "load_tokenizer",
    "processor_attributes",
]


def processor_attributes(processor_class: type[ProcessorMixin]) -> list[str]:
    """The sub-processors a processor class is built from (``image_processor``, ``tokenizer``, ...).

    transformers 4 lists them in the class's ``attributes``; transformers 5 reads them from the
    ``__init__`` signature (``get_attributes``).
    """
    get_attributes = getattr(processor_class, "get_attributes", None)
    if get_attributes is not None:
        return list(get_attributes())
    return list(processor_class.attributes)


def image_only_processor_class(base: type[ProcessorMixin]) -> type[ProcessorMixin]:
    """A variant of a Qwen-VL style processor class without its video processor.

    Qwen2-VL, Qwen2.5-VL and Qwen3-VL processors carry a video processor that transformers only builds when
    torchvision is installed. Report generation feeds still images only, so on a machine without torchvision
    (CPU boxes, the test suite) the processor is assembled from its image processor and tokenizer alone. The
    class keeps the base name so a saved processor still loads as the real class where torchvision exists.
    Both ways transformers finds a processor's parts are covered: ``attributes`` (4.x) and an ``__init__``
    without ``video_processor`` (5.x); the base's ``__init__`` gets ``video_processor=None``.
    """

    def __init__(
        self: ProcessorMixin,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: Any = None,
        **kwargs: Any,
    ) -> None:
        base.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    attributes = [a for a in processor_attributes(base) if a != "video_processor"]
    namespace = {"attributes": attributes, "__init__": __init__, "__module__": base.__module__}
    return type(base.__name__, (base,), namespace)


def _processor_class_name(model_id: str, **hub_kwargs: Any) -> str | None:
    from transformers.utils import cached_file

    for filename in ("processor_config.json", "preprocessor_config.json"):
        resolved = cached_file(
            model_id,
            filename,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **hub_kwargs,
        )
        if resolved and (name := json.loads(Path(resolved).read_text()).get("processor_class")):
            return name
    return None


#: Tokenizer classes that load a saved ``tokenizer.json`` exactly as it is.
GENERIC_TOKENIZER_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")


def _saved_tokenizer_class(model_id: str, **hub_kwargs: Any) -> str | None:
    from transformers.utils import cached_file

    resolved = cached_file(
        model_id,
        "tokenizer_config.json",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub_kwargs,
    )
    return json.loads(Path(resolved).read_text()).get("tokenizer_class") if resolved else None


def load_tokenizer(model_id: str, **kwargs: Any) -> PreTrainedTokenizerBase:
    """The tokenizer of ``model_id``, as saved.

    A tokenizer saved with a generic class (a custom ``tokenizer.json``, like the toy models' word-level
    one) is loaded with that class. ``AutoTokenizer`` of transformers 5 would replace it, for some model
    families (Qwen2 among them), with the family's own tokenizer rebuilt from vocabulary and merges, which
    drops a custom pre-tokenizer or model and turns every word into nothing.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    hub_kwargs = {key: kwargs[key] for key in ("revision", "cache_dir", "token") if key in kwargs}
    if _saved_tokenizer_class(model_id, **hub_kwargs) in GENERIC_TOKENIZER_CLASSES:
        return PreTrainedTokenizerFast.from_pretrained(model_id, **kwargs)
    return AutoTokenizer.from_pretrained(model_id, **kwargs)


def load_processing_class(
    model_id: str, kind: str, *, hub_kwargs: dict[str, Any] | None = None
) -> PreTrainedTokenizerBase | ProcessorMixin:
    """The tokenizer (``kind="text"``) or multimodal processor (``kind="vlm"``) of ``model_id``.

    Padding is on the left, as generation in GRPO requires. A VLM processor that needs torchvision for its
    video half falls back to an image-only processor when torchvision is missing.
    """
    import transformers
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    hub_kwargs = hub_kwargs or {}
    tokenizer = load_tokenizer(model_id, padding_side="left", **hub_kwargs)
    if kind == "text":
        return tokenizer
    try:
        return AutoProcessor.from_pretrained(model_id, tokenizer=tokenizer, padding_side="left", **hub_kwargs)
    except (ImportError, OSError):
        # Without torchvision, transformers 4 raises ImportError for the video processor; transformers 5
        # looks for a saved video processor config and raises OSError.
        name = _processor_class_name(model_id, **hub_kwargs)
        base = getattr(transformers, name, None) if name else None
        if is_torchvision_available() or base is None or "video_processor" not in processor_attributes(base):
            raise
        logger.warning("torchvision is not installed: loading %s without its video processor", name)
        return image_only_processor_class(base).from_pretrained(
            model_id, tokenizer=tokenizer, padding_side="left", **hub_kwargs
        )


def load_model(model_id: str, kind: str, *, init_kwargs: dict[str, Any] | None = None) -> PreTrainedModel:
    """The policy: ``AutoModelForImageTextToText`` for ``kind="vlm"``, ``AutoModelForCausalLM`` for text.

    ``AutoModelForImageTextToText`` resolves Qwen2-VL, Qwen2.5-VL and Qwen3-VL checkpoints to their
    conditional-generation classes in transformers 4.57. ``init_kwargs`` go to ``from_pretrained`` (dtype,
    attn_implementation, revision, ...; TRL's rules: dtype defaults to float32, strings name torch dtypes). A
    directory holding only a LoRA adapter is refused with a pointer to the merged model that ``unirg train``
    writes next to it.
    """
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
    from trl.trainer.utils import create_model_from_path

    path = Path(model_id)
    if (path / "adapter_config.json").exists() and not (path / "config.json").exists():
        raise ValueError(
            f"{model_id} holds a LoRA adapter, not a full model. Start the next stage from "
            f"{path / 'merged'} (written by `unirg train` when LoRA is on) or merge the adapter yourself."
        )
    auto_class = AutoModelForImageTextToText if kind == "vlm" else AutoModelForCausalLM
    # cast: trl annotates ``architecture`` as an instance of _BaseAutoModelClass; it takes the class.
    return create_model_from_path(model_id, architecture=cast(Any, auto_class), **(init_kwargs or {}))

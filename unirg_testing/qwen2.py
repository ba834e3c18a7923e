"""Tiny random-weight Qwen2 and Qwen2-VL models with locally built tokenizers and processors.

Tests and the CPU toy example need real transformers/TRL code paths without downloading weights, so these
builders make models of the real architectures (``Qwen2ForCausalLM``, ``Qwen2VLForConditionalGeneration``)
at a few hundred thousand parameters, and save them as ordinary model directories that ``unirg train``
loads exactly like a hub checkpoint.

The tokenizer is word-level: its vocabulary is the whitespace-separated words of a given corpus (punctuation
stays attached, so ``"Findings:"`` is one token), which makes decoding reproduce report text exactly and lets
a tiny model learn a report-phrase task within minutes on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast, ProcessorMixin

__all__ = [
    "CHAT_TEMPLATE",
    "build_tiny_qwen2",
    "build_tiny_qwen2_vl",
    "build_word_tokenizer",
    "save_tiny_qwen2",
    "save_tiny_qwen2_vl",
]

PAD, EOS, BOS = "<|endoftext|>", "<|im_end|>", "<|im_start|>"
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
ROLE_WORDS = ("system", "user", "assistant")

# ChatML as Qwen uses it; image parts become the vision placeholder that the Qwen2-VL processor expands.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


def build_word_tokenizer(corpus: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer whose vocabulary is every whitespace-separated word of ``corpus``.

    Words outside the corpus map to ``[UNK]``. Decoding restores the original spacing, so a completion made
    of corpus words decodes to the same string the reward service would score for a human-written report.
    """
    import transformers
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2TokenizerFast

    words = sorted({w for text in corpus for w in text.split()} | set(ROLE_WORDS))
    specials = [PAD, BOS, EOS, *VISION_TOKENS]
    vocab = {tok: i for i, tok in enumerate([*specials, "[UNK]", "\n"])}
    for word in words:
        vocab.setdefault("▁" + word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    # Newlines only occur in the chat template; as an added token they never glue onto a word.
    tok.add_tokens([AddedToken("\n", normalized=False, special=False)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials])
    # Saved and reloaded, the tokenizer must stay this word-level model. transformers 4's Qwen2TokenizerFast
    # reloads tokenizer.json as saved (and its Qwen2-VL processor accepts only Qwen2 tokenizers); transformers
    # 5's Qwen2 tokenizer rebuilds a BPE model on reload, while its generic backend loads the file as saved.
    major = int(transformers.__version__.split(".")[0])
    tokenizer_class = Qwen2TokenizerFast if major < 5 else PreTrainedTokenizerFast
    return tokenizer_class(
        tokenizer_object=tok,
        bos_token=None,
        unk_token="[UNK]",
        pad_token=PAD,
        eos_token=EOS,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=4096,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )


def _text_config_kwargs(tokenizer: PreTrainedTokenizerFast, hidden_size: int, num_layers: int) -> dict:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 2,
        "num_hidden_layers": num_layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": True,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,  # ChatML has no BOS; matching the tokenizer keeps TRL from re-aligning ids
    }


def build_tiny_qwen2(
    tokenizer: PreTrainedTokenizerFast, *, hidden_size: int = 32, num_layers: int = 2, seed: int = 0
) -> PreTrainedModel:
    """A random-weight ``Qwen2ForCausalLM`` sized to ``tokenizer``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**_text_config_kwargs(tokenizer, hidden_size, num_layers)))
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return model


def build_tiny_qwen2_vl(
    tokenizer: PreTrainedTokenizerFast, *, hidden_size: int = 32, num_layers: int = 2, seed: int = 0
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """A random-weight ``Qwen2VLForConditionalGeneration`` and a matching ``Qwen2VLProcessor``.

    The image processor keeps images between 28x28 and 56x56 pixels, i.e. 1 to 4 visual tokens, so a
    forward pass with an image costs about as much as one with a short text.
    """
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )
    from transformers.utils import is_torchvision_available

    from trainer.models import image_only_processor_class

    # mrope splits each head's rotary half-dimension into (temporal, height, width) sections in Qwen's
    # 2:3:3 ratio (16, 24, 24 for the real 128-dim heads).
    half = hidden_size // 2 // 2
    mrope_section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    text = _text_config_kwargs(tokenizer, hidden_size, num_layers)
    text["rope_scaling"] = {"type": "mrope", "mrope_section": mrope_section}
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=text,
        vision_config={
            "depth": 1,
            "embed_dim": 16,
            "hidden_size": hidden_size,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
        **{k: text[k] for k in ("vocab_size", "pad_token_id", "eos_token_id", "bos_token_id")},
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    pixels = {"min_pixels": 28 * 28, "max_pixels": 56 * 56, "patch_size": 14, "merge_size": 2}
    if is_torchvision_available():
        from transformers import Qwen2VLVideoProcessor

        processor_class, extra = Qwen2VLProcessor, {"video_processor": Qwen2VLVideoProcessor(**pixels)}
    else:
        # Without torchvision transformers cannot build the video processor; report generation needs images only.
        processor_class, extra = image_only_processor_class(Qwen2VLProcessor), {}
    processor = processor_class(
        image_processor=Qwen2VLImageProcessor(**pixels, temporal_patch_size=2),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        **extra,
    )
    return model, processor


def save_tiny_qwen2(path: str | Path, corpus: Iterable[str], **kwargs: int) -> Path:
    """Build a tiny Qwen2 for ``corpus`` and save model and tokenizer to ``path``; returns ``path``."""
    path = Path(path)
    tokenizer = build_word_tokenizer(corpus)
    build_tiny_qwen2(tokenizer, **kwargs).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_qwen2_vl(path: str | Path, corpus: Iterable[str], **kwargs: int) -> Path:
    """Build a tiny Qwen2-VL for ``corpus`` and save model and processor to ``path``; returns ``path``."""
    path = Path(path)
    model, processor = build_tiny_qwen2_vl(build_word_tokenizer(corpus), **kwargs)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path

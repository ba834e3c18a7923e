"""The ``unirg train`` configuration: UniRG's own fields plus TRL's ``SFTConfig`` / ``GRPOConfig``.

One flat YAML file holds both. Keys that are fields of :class:`UniRGArguments` (service, profile, data,
model, LoRA, prompt) configure UniRG; every other key goes to TRL's config class for the stage
(``SFTConfig`` for ``stage: sft``, ``GRPOConfig`` for ``stage: grpo``), so any TRL option passes through
unchanged, e.g. ``use_vllm: true``, ``vllm_mode: colocate``, ``beta: 0.03``, ``epsilon_high: 0.28``.
``transformers.HfArgumentParser`` does the mapping and rejects keys that neither class knows.

Example::

    stage: grpo
    model: Qwen/Qwen3-VL-8B-Instruct
    model_kind: vlm
    service_url: http://127.0.0.1:8000
    profile: unirg-stage1
    train_file: /data/mimic/train.json
    image_root: /data/mimic/files
    output_dir: outputs/grpo-stage1
    num_generations: 16
    learning_rate: 5.0e-6
    beta: 0.0
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import yaml

if TYPE_CHECKING:
    from transformers import TrainingArguments

__all__ = ["STAGES", "ConfigError", "UniRGArguments", "load_config", "read_config_file"]

STAGES = ("sft", "grpo")
MODEL_KINDS = ("vlm", "text")
DATA_FORMATS = ("auto", "rexrank", "jsonl")
REWARD_MODES = ("components", "composite")


class ConfigError(ValueError):
    """The configuration file is unreadable or asks for something the trainer cannot do."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class UniRGArguments:
    """UniRG's own training options; everything else in the YAML is a TRL config field."""

    # --- what to run --------------------------------------------------------------------------
    stage: str = field(
        default="grpo",
        metadata=_help(
            "sft: supervised fine-tuning on reference reports; grpo: GRPO against the reward service. The recipe "
            "runs sft, then grpo with beta 0 (stage 1), then grpo with beta 0.03 from the stage-1 checkpoint."
        ),
    )
    model: str = field(
        default="",
        metadata=_help(
            "Policy to start from: a hub id (Qwen/Qwen3-VL-8B-Instruct) or a local directory (the output of "
            "the previous stage; after a LoRA run use its `merged` subdirectory). With beta > 0 TRL uses this "
            "same checkpoint as the frozen KL reference, so stage 2 starts from the stage-1 output."
        ),
    )
    model_kind: str = field(
        default="vlm",
        metadata=_help(
            "vlm: a vision-language model fed the study images (Qwen2-VL, Qwen2.5-VL, Qwen3-VL via "
            "AutoModelForImageTextToText + AutoProcessor); text: a causal LM fed the text context only."
        ),
    )
    # --- the reward service (GRPO) --------------------------------------------------------------
    service_url: str = field(
        default="http://127.0.0.1:8000",
        metadata=_help("Base URL of the UniRG reward service (`unirg serve`)."),
    )
    profile: str = field(
        default="default",
        metadata=_help("Reward profile the service scores with: unirg-stage1, unirg-stage2, default, ..."),
    )
    reward_mode: str = field(
        default="components",
        metadata=_help(
            "components: one TRL reward function per weighted profile component (TRL logs rewards/<key>/mean and "
            "applies the profile weights as reward_weights); composite: the profile's combined reward alone."
        ),
    )
    service_wait_s: float = field(
        default=600.0,
        metadata=_help(
            "How long to wait for the service's /readyz before giving up (model scorers load slowly)."
        ),
    )
    # --- data ---------------------------------------------------------------------------------
    train_file: str = field(
        default="",
        metadata=_help("Training studies: a ReXrank-layout JSON file or a JSONL file (one study a line)."),
    )
    eval_file: str | None = field(default=None, metadata=_help("Optional evaluation studies, same formats."))
    data_format: str = field(
        default="auto", metadata=_help("rexrank, jsonl, or auto (by file extension: .jsonl is JSONL).")
    )
    image_root: str | None = field(
        default=None,
        metadata=_help("Directory image paths are relative to; default: the directory of the data file."),
    )
    split: str | None = field(
        default=None, metadata=_help("Keep only studies whose `split` field equals this (e.g. train).")
    )
    max_samples: int | None = field(
        default=None, metadata=_help("Use at most this many studies (smoke runs).")
    )
    max_images: int = field(
        default=1,
        metadata=_help(
            "Current-study images per prompt: 1 = the key (frontal) image as in UniRG; more adds further views."
        ),
    )
    use_prior: bool = field(
        default=True,
        metadata=_help(
            "Longitudinal generation: put the prior report (text) and prior image (VLM) into the prompt when a "
            "study has them (`prior_report`, `prior_image_path`)."
        ),
    )
    image_size: int = field(
        default=512,
        metadata=_help(
            "Largest image side in pixels the processor keeps (sets max_pixels = image_size**2 on Qwen-VL "
            "image processors; larger images are downscaled, aspect kept)."
        ),
    )
    # --- prompt -------------------------------------------------------------------------------
    system_prompt: str | None = field(
        default=None, metadata=_help("Optional system message; none by default, as in UniRG.")
    )
    prompt_template: str | None = field(
        default=None,
        metadata=_help(
            "User prompt with placeholders {indication}, {comparison} and {prior} (the prior-study block); "
            "default: trainer.data.DEFAULT_PROMPT_TEMPLATE, which asks for 'Findings: ... Impression: ...'."
        ),
    )
    # --- LoRA ---------------------------------------------------------------------------------
    lora: bool = field(default=False, metadata=_help("Train a LoRA adapter (peft) instead of all weights."))
    lora_r: int = field(default=16, metadata=_help("LoRA rank."))
    lora_alpha: int = field(default=32, metadata=_help("LoRA scaling alpha."))
    lora_dropout: float = field(default=0.05, metadata=_help("LoRA dropout."))
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata=_help("Modules LoRA wraps: all-linear, or names such as q_proj v_proj."),
    )
    merge_lora: bool = field(
        default=True,
        metadata=_help(
            "After a LoRA run also save base+adapter merged into output_dir/merged, the checkpoint the next "
            "stage starts from (and, with beta > 0, its KL reference)."
        ),
    )

    def __post_init__(self) -> None:
        for name, allowed in (
            ("stage", STAGES),
            ("model_kind", MODEL_KINDS),
            ("data_format", DATA_FORMATS),
            ("reward_mode", REWARD_MODES),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if not self.model:
            raise ConfigError("model: set a hub id or a local model directory")
        if not self.train_file:
            raise ConfigError("train_file: set the path of the training data (ReXrank JSON or JSONL)")
        if self.max_images < 1:
            raise ConfigError("max_images: must be at least 1")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in ``path``, with a readable error when the file is missing or not a mapping."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return raw


def _trl_config_class(stage: str) -> type[TrainingArguments]:
    from trl import GRPOConfig, SFTConfig

    return SFTConfig if stage == "sft" else GRPOConfig


def _warmup_ratio_as_steps(raw: dict[str, Any]) -> None:
    """Move ``warmup_ratio`` to ``warmup_steps``, where transformers 5 reads a value below 1 as that ratio.

    transformers 5 dropped ``warmup_ratio``; with this, one config file trains on both majors.
    """
    ratio = raw.pop("warmup_ratio")
    if raw.get("warmup_steps"):
        raise ConfigError("give warmup_ratio or warmup_steps, not both")
    try:
        ratio = float(ratio)
    except (TypeError, ValueError):
        raise ConfigError(f"warmup_ratio: {ratio!r} is not a number") from None
    if not 0 <= ratio < 1:
        raise ConfigError(f"warmup_ratio: {ratio} must be in [0, 1)")
    raw["warmup_steps"] = ratio


def load_config(
    source: str | Path | dict[str, Any], overrides: dict[str, Any] | None = None
) -> tuple[UniRGArguments, TrainingArguments]:
    """Split a YAML file (or an already-read mapping) into UniRG's fields and the stage's TRL config.

    ``overrides`` (e.g. from ``--set key=value``) win over the file. Unknown keys raise
    :class:`ConfigError` naming them.
    """
    from transformers import HfArgumentParser
    from transformers.hf_argparser import DataClassType

    raw = dict(source) if isinstance(source, dict) else read_config_file(source)
    raw.update(overrides or {})
    stage = raw.get("stage", UniRGArguments.stage)
    if stage not in STAGES:
        raise ConfigError(f"stage: {stage!r} is not one of {', '.join(STAGES)}")
    trl_class = _trl_config_class(stage)
    trl_fields = {f.name for f in fields(trl_class)}
    if "warmup_ratio" in raw and "warmup_ratio" not in trl_fields:
        _warmup_ratio_as_steps(raw)
    known = {f.name for f in fields(UniRGArguments)} | trl_fields
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)}: neither a UniRG field (see `unirg train --show-options`) "
            f"nor a field of trl.{trl_class.__name__}"
        )
    raw.setdefault("output_dir", f"outputs/{stage}")
    # PyYAML reads 5e-6 (no dot) as a string; argparse-style coercion for float fields fixes the common case.
    for f in fields(trl_class):
        if f.name in raw and isinstance(raw[f.name], str) and float in (f.type, *get_args(f.type)):
            try:
                raw[f.name] = float(raw[f.name])
            except ValueError:
                raise ConfigError(f"{f.name}: {raw[f.name]!r} is not a number") from None
    try:
        # DataClassType: transformers' name (a NewType) for the dataclass types the parser takes.
        ours, trl_args = HfArgumentParser((UniRGArguments, DataClassType(trl_class))).parse_dict(raw)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    return ours, trl_args

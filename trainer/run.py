"""Build and run one training stage: SFT, or GRPO against the reward service."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config import UniRGArguments

if TYPE_CHECKING:
    from transformers import (
        PreTrainedTokenizerBase,
        ProcessorMixin,
        Trainer,
        TrainerCallback,
        TrainerControl,
        TrainerState,
        TrainingArguments,
    )
    from trl import GRPOConfig

    from clients.trl import RewardFunctions

logger = logging.getLogger("trainer")

__all__ = ["REWARD_RECORD", "build_trainer", "run_training", "save_outputs"]

# Written into output_dir so a checkpoint always says which reward produced it.
REWARD_RECORD = "unirg_reward.json"
METRICS_LOG = "metrics.jsonl"


def _metrics_callback() -> TrainerCallback:
    from transformers import TrainerCallback

    class MetricsJsonl(TrainerCallback):
        """Appends every logged metrics dict (rewards, KL, loss, ...) to output_dir/metrics.jsonl."""

        def on_train_begin(
            self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
        ) -> None:
            # A fresh run into an old output_dir starts a fresh log; a resumed run keeps appending.
            if state.is_world_process_zero and state.global_step == 0:
                (_output_dir(args) / METRICS_LOG).unlink(missing_ok=True)

        def on_log(
            self,
            args: TrainingArguments,
            state: TrainerState,
            control: TrainerControl,
            logs: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            if state.is_world_process_zero and logs:
                path = _output_dir(args) / METRICS_LOG
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return MetricsJsonl()


def _output_dir(args: TrainingArguments) -> Path:
    """``args.output_dir``: optional when the arguments are built, always set once they are (transformers
    fills in a default and :func:`trainer.config.load_config` names one per stage)."""
    if args.output_dir is None:
        raise ValueError("the training arguments name no output_dir")
    return Path(args.output_dir)


def _limit_image_pixels(processor: PreTrainedTokenizerBase | ProcessorMixin, image_size: int) -> None:
    """Cap the pixels the image processor keeps at ``image_size**2`` (Qwen-VL processors resize to fit)."""
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return
    max_pixels = image_size * image_size
    capped = False
    if hasattr(image_processor, "max_pixels"):
        image_processor.max_pixels = max_pixels
        capped = True
    size = getattr(image_processor, "size", None)  # a dict on transformers 4, a SizeDict on 5
    if size is not None and "longest_edge" in size:
        image_processor.size = type(size)(**{**dict(size), "longest_edge": max_pixels})
        capped = True
    if not capped:
        logger.warning(
            "%s has no pixel budget to set; image_size=%d is not applied",
            type(image_processor).__name__,
            image_size,
        )


def _suppress_vision_tokens(trl_args: GRPOConfig, model_config: Any) -> None:
    """Keep transformers generation from sampling any vision placeholder token.

    TRL suppresses the image token only; a sampled ``<|vision_start|>`` (or video / vision-end token) makes
    Qwen-VL's multimodal rotary index fail on the training forward pass. A user-set ``suppress_tokens`` in
    ``generation_kwargs`` wins.
    """
    names = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
    ids = sorted({i for name in names if isinstance(i := getattr(model_config, name, None), int)})
    # Typed dict | str for the command line; a string is parsed into a dict when the config is built.
    configured = trl_args.generation_kwargs
    kwargs = dict(configured) if isinstance(configured, dict) else {}
    if ids and "suppress_tokens" not in kwargs:
        trl_args.generation_kwargs = {**kwargs, "suppress_tokens": ids}


def _reward_record(
    ours: UniRGArguments, trl_args: TrainingArguments, reward_funcs: RewardFunctions
) -> dict[str, Any]:
    beta = getattr(trl_args, "beta", 0.0)
    return {
        "profile": reward_funcs.profile.name,
        "profile_version": reward_funcs.profile.version,
        "profile_hash": reward_funcs.profile_hash,
        "service_url": ours.service_url,
        "reward_mode": ours.reward_mode,
        "reward_functions": [f.__name__ for f in reward_funcs],
        "components": [asdict(c) for c in reward_funcs.profile.components],
        "stage": ours.stage,
        "model": ours.model,
        # TRL's KL reference is the starting checkpoint (or, with LoRA, the model without the adapter).
        "kl_reference": ours.model if beta else None,
        "beta": beta,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _write_reward_record(directory: Path, record: dict[str, Any]) -> Path:
    path = directory / REWARD_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def build_trainer(
    ours: UniRGArguments,
    trl_args: TrainingArguments,
    *,
    callbacks: Sequence[TrainerCallback] = (),
) -> Trainer:
    """The configured ``SFTTrainer`` or ``GRPOTrainer``, ready for ``.train()``.

    For GRPO this first waits until the reward service is ready, reads the profile from it and writes
    ``output_dir/unirg_reward.json`` (profile name, hash, service URL, components), so a misconfigured
    service fails the run before any model is loaded.
    """
    from trl import GRPOConfig

    from trainer.data import build_dataset, load_studies
    from trainer.models import load_model, load_processing_class

    data_options = {
        "data_format": ours.data_format,
        "image_root": ours.image_root,
        "split": ours.split,
        "max_samples": ours.max_samples,
    }
    train_dataset = build_dataset(load_studies(ours.train_file, **data_options), ours)
    eval_dataset = (
        build_dataset(load_studies(ours.eval_file, **data_options), ours) if ours.eval_file else None
    )

    reward_funcs = None
    if ours.stage == "grpo":
        from clients.trl import make_reward_functions

        reward_funcs = make_reward_functions(
            ours.service_url,
            ours.profile,
            include_composite=ours.reward_mode == "composite",
            id_column="study_id",
            wait_timeout=ours.service_wait_s,
        )
        record = _reward_record(ours, trl_args, reward_funcs)
        if trl_args.process_index == 0:
            _write_reward_record(_output_dir(trl_args), record)
        logger.info(
            "reward: profile %s (hash %s) from %s; functions %s; recorded in %s",
            record["profile"],
            record["profile_hash"],
            ours.service_url,
            ", ".join(record["reward_functions"]),
            _output_dir(trl_args) / REWARD_RECORD,
        )

    processing_class = load_processing_class(ours.model, ours.model_kind)
    if ours.model_kind == "vlm":
        _limit_image_pixels(processing_class, ours.image_size)
    # SFTConfig and GRPOConfig both have model_init_kwargs; TrainingArguments, their base, does not.
    init_kwargs = getattr(trl_args, "model_init_kwargs", None)
    model = load_model(
        ours.model, ours.model_kind, init_kwargs=init_kwargs if isinstance(init_kwargs, dict) else None
    )
    if ours.model_kind == "vlm" and isinstance(trl_args, GRPOConfig) and not trl_args.use_vllm:
        _suppress_vision_tokens(trl_args, model.config)
    peft_config = None
    if ours.lora:
        from peft import LoraConfig

        targets = ours.lora_target_modules
        peft_config = LoraConfig(
            r=ours.lora_r,
            lora_alpha=ours.lora_alpha,
            lora_dropout=ours.lora_dropout,
            target_modules=targets[0] if targets == ["all-linear"] else targets,
            task_type="CAUSAL_LM",
        )

    common: dict[str, Any] = {
        "model": model,
        "args": trl_args,
        "train_dataset": train_dataset,
        "eval_dataset": eval_dataset,
        "processing_class": processing_class,
        "peft_config": peft_config,
        "callbacks": [_metrics_callback(), *callbacks],
    }
    if ours.stage == "sft":
        from trl import SFTTrainer

        return SFTTrainer(**common)
    from trl import GRPOTrainer

    return GRPOTrainer(reward_funcs=reward_funcs, **common)


def save_outputs(trainer: Trainer, ours: UniRGArguments) -> Path:
    """Save the final model and processor to output_dir (and output_dir/merged after LoRA); returns the
    directory the next stage should start from."""
    directory = _output_dir(trainer.args)
    trainer.save_model(str(directory))
    next_model = directory
    if ours.lora and ours.merge_lora and trainer.is_world_process_zero():
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        next_model = directory / "merged"
        merged.save_pretrained(next_model)
        if trainer.processing_class is not None:
            trainer.processing_class.save_pretrained(next_model)
    from clients.trl import RewardFunctions

    # GRPOTrainer keeps the list it was given, so the functions' profile hash is reachable from it.
    reward_funcs = getattr(trainer, "reward_funcs", None)
    if isinstance(reward_funcs, RewardFunctions) and trainer.is_world_process_zero():
        # The service reports the hash with every batch; keep the last one it answered with.
        record_path = directory / REWARD_RECORD
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if reward_funcs.profile_hash != record["profile_hash"]:
            logger.warning(
                "the service's profile hash changed during training: %s -> %s",
                record["profile_hash"],
                reward_funcs.profile_hash,
            )
        record["profile_hash_at_end"] = reward_funcs.profile_hash
        _write_reward_record(directory, record)
    return next_model


def run_training(
    ours: UniRGArguments, trl_args: TrainingArguments, *, callbacks: Sequence[TrainerCallback] = ()
) -> Path:
    """Run one stage end to end and save it; returns the checkpoint directory for the next stage."""
    trainer = build_trainer(ours, trl_args, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=trl_args.resume_from_checkpoint)
    return save_outputs(trainer, ours)

"""The TRL trainer (``unirg train``): configs, data, SFT, GRPO stages 1 and 2 against a live service.

Models are tiny random-weight Qwen2 / Qwen2-VL built here with a locally built tokenizer and processor;
the reward service is a real ``unirg serve`` subprocess on loopback.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_service import REPO_ROOT, SHARED_REPORTS, ServiceProcess, launch_service
from prometheus_client.parser import text_string_to_metric_families

from trainer.config import ConfigError, load_config
from trainer.data import DataError, build_dataset, load_studies, parse_context, reference_report
from trainer.toy_data import toy_corpus, write_toy_dataset
from unirg_testing.qwen2 import build_word_tokenizer, save_tiny_qwen2, save_tiny_qwen2_vl

pytest.importorskip("trl")

CONFIGS = REPO_ROOT / "trainer" / "configs"
# Small enough for a CPU step in about a second: 2 prompts x 4 generations of at most 16 tokens.
TINY_GRPO = {
    "max_steps": 2,
    "per_device_train_batch_size": 8,
    "num_generations": 4,
    "max_completion_length": 16,
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": "none",
    "disable_tqdm": True,
}


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A real reward service on the default profile, shared by this module's training runs."""
    process = launch_service(tmp_path_factory.mktemp("trainer-service"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Toy studies whose prompts are all different, plus a tiny Qwen2 and a tiny Qwen2-VL."""
    root = tmp_path_factory.mktemp("toy")
    data = write_toy_dataset(root, n_studies=8, with_priors=True)
    # One distinct indication per study, so a logged prompt identifies its study (and reference).
    records = [json.loads(line) for line in data.read_text().splitlines()]
    for index, record in enumerate(records):
        record["context"] = f"Indication: case {index} Comparison: None."
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    save_tiny_qwen2(root / "text-model", toy_corpus())
    save_tiny_qwen2_vl(root / "vlm-model", toy_corpus())
    return root


def _items_scored(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "unirg_items"
        for sample in family.samples
        if sample.name == "unirg_items_total"
    )


def _tiny_grpo_config(toy: Path, service: ServiceProcess, output: Path, **extra: object) -> dict:
    return {
        "stage": "grpo",
        "model": str(toy / "text-model"),
        "model_kind": "text",
        "service_url": service.base_url,
        "profile": "default",
        "train_file": str(toy / "train.jsonl"),
        "output_dir": str(output),
        "use_cpu": True,
        "bf16": False,
        **TINY_GRPO,
        **extra,
    }


@pytest.fixture(scope="module")
def stage1(toy: Path, service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A GRPO stage-1 run (beta 0) of the tiny Qwen2 against the live service, kept for inspection."""
    from trainer.run import build_trainer, save_outputs

    output = tmp_path_factory.mktemp("stage1")
    before = _items_scored(service.base_url)
    config = _tiny_grpo_config(toy, service, output, beta=0.0, epsilon_high=0.28)
    ours, trl_args = load_config(CONFIGS / "tiny-grpo-stage1.yaml", config)
    trainer = build_trainer(ours, trl_args)
    trainer.train()
    next_model = save_outputs(trainer, ours)
    return {
        "trainer": trainer,
        "output": output,
        "next_model": next_model,
        "items_scored": _items_scored(service.base_url) - before,
    }


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "config_class", "beta"),
    [
        ("unirg-sft", "SFTConfig", None),
        ("unirg-grpo-stage1", "GRPOConfig", 0.0),
        ("unirg-grpo-stage2", "GRPOConfig", 0.03),
    ],
)
def test_shipped_gpu_configs_follow_the_recipe(name: str, config_class: str, beta: float | None) -> None:
    # bf16 is refused on a CPU-only machine when the config is parsed; everything else is as shipped.
    ours, trl_args = load_config(CONFIGS / f"{name}.yaml", {"bf16": False})
    assert type(trl_args).__name__ == config_class
    assert ours.model_kind == "vlm"
    if config_class == "GRPOConfig":
        assert trl_args.beta == beta
        assert trl_args.num_generations == 16
        assert trl_args.learning_rate == 5e-6
        assert trl_args.epsilon_high > trl_args.epsilon  # DAPO clip-higher
        assert trl_args.use_vllm and trl_args.vllm_mode == "colocate"  # TRL options pass through
        assert ours.profile == ("unirg-stage1" if beta == 0 else "unirg-stage2")
    else:
        assert ours.model == "Qwen/Qwen3-VL-8B-Instruct"
        # warmup_ratio: 0.03 on both majors (transformers 5 reads it from warmup_steps).
        assert trl_args.get_warmup_steps(1000) == 30
    if name == "unirg-grpo-stage2":
        _, stage1_trl = load_config(CONFIGS / "unirg-grpo-stage1.yaml", {"bf16": False})
        assert ours.model == stage1_trl.output_dir  # stage 2 starts from (and is regularised to) stage 1


def test_config_rejects_unknown_keys_and_reads_yaml_floats(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("stage: grpo\nmodel: m\ntrain_file: t.jsonl\nlearning_rate: 5e-6\nuse_cpu: true\n")
    _, trl_args = load_config(path)
    assert trl_args.learning_rate == 5e-6  # PyYAML reads 5e-6 as a string
    with pytest.raises(ConfigError, match="num_generatoins"):
        load_config(path, {"num_generatoins": 8})
    with pytest.raises(ConfigError, match="model_kind"):
        load_config(path, {"model_kind": "audio"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_unirg_cli_does_not_import_training_libraries() -> None:
    code = (
        "import sys, unirg.cli\n"
        "heavy = [m for m in ('trl', 'torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert result.stdout.strip() == ""


# --- data ---------------------------------------------------------------------------------------


def test_context_parsing() -> None:
    assert parse_context("Indication: Chest pain, dyspnea Comparison: None.") == {
        "indication": "Chest pain, dyspnea",
        "comparison": "None.",
    }
    assert parse_context("History: cough. Comparison: 2010 study") == {
        "indication": "cough.",
        "comparison": "2010 study",
    }
    assert parse_context("") == {}


@pytest.mark.skipif(not SHARED_REPORTS.is_file(), reason="../shared/data is absent")
def test_rexrank_layout_on_real_iu_xray_file() -> None:
    raw = json.loads(SHARED_REPORTS.read_text())
    studies = load_studies(SHARED_REPORTS)
    assert len(studies) == len(raw)
    for study in studies:
        record = raw[study.study_id]
        # ReXrank's `report` is exactly the two sections composed as the trainer composes them.
        sections = {k: v for k, v in record.items() if k != "report"}
        assert reference_report(sections) == record["report"] == study.reference
        assert study.images[0].name == Path(record["key_image_path"]).name
        # The parsed context puts back together into the original (labels given once).
        context = record["context"]
        if max(context.lower().count(label) for label in ("indication:", "comparison:")) > 1:
            continue
        rebuilt = [
            f"{label}: {value}"
            for label, value in (("Indication", study.indication), ("Comparison", study.comparison))
            if value
        ]
        assert " ".join(rebuilt) == " ".join(context.split())


def test_longitudinal_prompts(toy: Path) -> None:
    from trainer.config import UniRGArguments

    studies = load_studies(toy / "train.jsonl")
    assert all(s.prior_report and s.prior_images for s in studies)
    base = {"model": "m", "train_file": "t", "stage": "grpo"}

    vlm = build_dataset(studies, UniRGArguments(**base, model_kind="vlm"))
    row = vlm[0]
    assert len(row["images"]) == 2  # prior image first, then the key image
    parts = row["prompt"][-1]["content"]
    assert [p["type"] for p in parts] == ["image", "image", "text"]
    assert f"Prior report: {studies[0].prior_report}" in parts[-1]["text"]
    assert '"Findings: ... Impression: ..."' in parts[-1]["text"]
    assert row["reference"] == studies[0].reference and row["prior_report"] == studies[0].prior_report

    current_only = build_dataset(studies, UniRGArguments(**base, model_kind="vlm", use_prior=False))
    assert len(current_only[0]["images"]) == 1
    assert "Prior report" not in current_only[0]["prompt"][-1]["content"][-1]["text"]

    text = build_dataset(studies, UniRGArguments(**base, model_kind="text"))
    assert "images" not in text.column_names
    assert (
        isinstance(text[0]["prompt"][-1]["content"], str)
        and "Prior report" in text[0]["prompt"][-1]["content"]
    )

    sft = build_dataset(studies, UniRGArguments(**{**base, "stage": "sft"}, model_kind="text"))
    assert sft[0]["completion"] == [{"role": "assistant", "content": studies[0].reference}]


def test_missing_image_fails_before_training(tmp_path: Path) -> None:
    from trainer.config import UniRGArguments

    data = tmp_path / "d.jsonl"
    data.write_text(
        json.dumps({"study_id": "s", "image_path": ["nope.png"], "report": "Findings: x."}) + "\n"
    )
    with pytest.raises(DataError, match=r"nope\.png"):
        build_dataset(load_studies(data), UniRGArguments(model="m", train_file=str(data)))


def test_qwen_vl_families_resolve_to_their_generation_classes() -> None:
    from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor, Qwen3VLProcessor
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES as MAPPING

    from trainer.models import image_only_processor_class, processor_attributes

    # model_kind: vlm loads through AutoModelForImageTextToText; these are the classes it must pick.
    assert MAPPING["qwen2_vl"] == "Qwen2VLForConditionalGeneration"
    assert MAPPING["qwen2_5_vl"] == "Qwen2_5_VLForConditionalGeneration"
    assert MAPPING["qwen3_vl"] == "Qwen3VLForConditionalGeneration"
    for processor_class in (Qwen2VLProcessor, Qwen2_5_VLProcessor, Qwen3VLProcessor):
        image_only = image_only_processor_class(processor_class)
        assert processor_attributes(image_only) == ["image_processor", "tokenizer"]
        assert image_only.__name__ == processor_class.__name__  # saves as, and reloads into, the real class


def test_word_tokenizer_round_trips_reports(tmp_path: Path) -> None:
    from trainer.models import load_tokenizer

    tokenizer = build_word_tokenizer(toy_corpus())
    tokenizer.save_pretrained(tmp_path)
    reloaded = load_tokenizer(str(tmp_path))  # as `unirg train` loads it
    reports = [text for text in toy_corpus() if text.startswith("Findings:")]
    assert len(reports) == 4
    for text in reports:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
        assert reloaded(text, add_special_tokens=False)["input_ids"] == ids


def test_image_size_caps_the_visual_tokens(toy: Path) -> None:
    from PIL import Image

    from trainer.models import load_processing_class
    from trainer.run import _limit_image_pixels

    processor = load_processing_class(str(toy / "vlm-model"), "vlm")
    big = Image.new("RGB", (1024, 1024), (128, 128, 128))
    for image_size in (112, 224):
        _limit_image_pixels(processor, image_size)
        grid = processor.image_processor(images=[big], return_tensors="pt")["image_grid_thw"][0].tolist()
        # Qwen2-VL patches are 14 px: a side of at most image_size px gives at most image_size / 14 patches.
        assert grid[1] * 14 <= image_size and grid[2] * 14 <= image_size
        assert grid[1] * 14 > image_size - 28  # and it uses the budget (sides round to 28 px)


def test_vlm_sft_step(toy: Path, tmp_path: Path) -> None:
    from trainer.run import run_training

    config = {
        "stage": "sft",
        "model": str(toy / "vlm-model"),
        "model_kind": "vlm",
        "train_file": str(toy / "train.jsonl"),
        "output_dir": str(tmp_path / "vlm-sft"),
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
        "disable_tqdm": True,
        "logging_steps": 1,
        "save_strategy": "no",
    }
    next_model = run_training(*load_config(config))
    logged = [json.loads(line) for line in (next_model / "metrics.jsonl").read_text().splitlines()]
    assert [math.isfinite(entry["loss"]) for entry in logged if "loss" in entry] == [True, True]
    # The processor is saved with the model (in preprocessor_config.json on transformers 4,
    # processor_config.json on 5) and loads back from there.
    from trainer.models import load_processing_class

    processor = load_processing_class(str(next_model), "vlm")
    assert processor.image_processor is not None
    report = next(text for text in toy_corpus() if text.startswith("Findings:"))
    ids = processor.tokenizer(report, add_special_tokens=False)["input_ids"]
    assert processor.tokenizer.decode(ids) == report  # the word-level tokenizer survives the reload


# --- training against the live service ----------------------------------------------------------


def test_grpo_rewards_are_what_the_service_returned(stage1: dict, service: ServiceProcess, toy: Path) -> None:
    trainer = stage1["trainer"]
    generated = TINY_GRPO["max_steps"] * TINY_GRPO["per_device_train_batch_size"]
    assert stage1["items_scored"] >= generated  # the service scored every completion

    # TRL keeps the last generation batch: prompts, completions and each reward function's values.
    prompts = list(trainer._logs["prompt"])
    completions = [c[0]["content"] for c in trainer._logs["completion"]]
    trl_rewards = {name: list(values) for name, values in trainer._logs["rewards"].items()}
    assert len(completions) == TINY_GRPO["per_device_train_batch_size"]

    studies = {s.indication: s for s in load_studies(toy / "train.jsonl")}
    scored_studies = []
    for prompt in prompts:
        (indication,) = [s for s in studies if f"Indication: {s}\n" in prompt[-1]["content"]]
        scored_studies.append(studies[indication])

    # Re-score the same completions with a plain HTTP request, independent of the trainer's client, with
    # what the trainer sends beside them: the prior report (clinical_errors checks change claims on it).
    response = httpx.post(
        f"{service.base_url}/v1/score",
        json={
            "profile": "default",
            "items": [
                {"reference": s.reference, "candidate": c, "prior_report": s.prior_report}
                for s, c in zip(scored_studies, completions, strict=True)
            ],
        },
        timeout=30,
    )
    response.raise_for_status()
    items = response.json()["items"]
    profile = httpx.get(f"{service.base_url}/v1/profiles/default", timeout=10).json()
    weighted = [c["key"] or c["name"] for c in profile["components"] if c["weight"]]  # key defaults to name
    assert sorted(trl_rewards) == sorted(weighted)  # one TRL reward function per weighted component
    for key in weighted:
        assert trl_rewards[key] == pytest.approx(
            [item["components"][key]["contribution"] for item in items], abs=1e-6
        )
    total = [sum(trl_rewards[key][i] for key in weighted) for i in range(len(items))]
    assert total == pytest.approx([item["reward"] for item in items], abs=1e-5)

    # TRL's logged per-component means are the means of those values.
    last = [entry for entry in trainer.state.log_history if "reward" in entry][-1]
    for key in weighted:
        expected = sum(item["components"][key]["contribution"] for item in items) / len(items)
        assert last[f"rewards/{key}/mean"] == pytest.approx(expected, abs=1e-5)


def test_the_trainers_reward_functions_pickle_after_a_grpo_run(stage1: dict, toy: Path) -> None:
    """What AsyncGRPOTrainer needs: the used reward functions pickle and score in a spawned process."""
    from spawned_rewards import rewards_in_spawned_process

    trainer = stage1["trainer"]
    completions = [c[0]["content"] for c in trainer._logs["completion"]]
    studies = {s.indication: s for s in load_studies(toy / "train.jsonl")}
    references = [
        studies[next(i for i in studies if f"Indication: {i}\n" in prompt[-1]["content"])].reference
        for prompt in trainer._logs["prompt"]
    ]
    columns = {"reference": references}
    here = asyncio.run(_call_in_process(trainer.reward_funcs, completions, columns))
    there = rewards_in_spawned_process(trainer.reward_funcs, completions, columns)
    assert sorted(there) == sorted(trainer._logs["rewards"])  # the functions TRL trained with
    assert sorted(there) == sorted(here)
    for name, values in there.items():
        assert values == pytest.approx(here[name], abs=1e-6)


async def _call_in_process(functions: list, completions: list, columns: dict) -> dict[str, list]:
    values = await asyncio.gather(
        *(func(prompts=[None] * len(completions), completions=completions, **columns) for func in functions)
    )
    return {func.__name__: list(value) for func, value in zip(functions, values, strict=True)}


def test_grpo_records_the_reward_profile(stage1: dict, service: ServiceProcess) -> None:
    record = json.loads((stage1["output"] / "unirg_reward.json").read_text())
    profile = httpx.get(f"{service.base_url}/v1/profiles/default", timeout=10).json()
    assert record["profile"] == "default"
    assert record["profile_hash"] == profile["profile_hash"] == record["profile_hash_at_end"]
    assert record["service_url"] == service.base_url
    assert record["beta"] == 0.0 and record["kl_reference"] is None
    logged = [json.loads(line) for line in (stage1["output"] / "metrics.jsonl").read_text().splitlines()]
    assert any("reward" in entry for entry in logged)
    assert (stage1["next_model"] / "model.safetensors").is_file()


def test_stage2_starts_from_stage1_with_kl(
    stage1: dict, service: ServiceProcess, toy: Path, tmp_path: Path
) -> None:
    from trainer.run import build_trainer

    stage1_dir = str(stage1["next_model"])
    config = _tiny_grpo_config(toy, service, tmp_path / "stage2", model=stage1_dir, max_steps=1)
    ours, trl_args = load_config(CONFIGS / "tiny-grpo-stage2.yaml", config)
    assert trl_args.beta == 0.03
    trainer = build_trainer(ours, trl_args)
    # TRL's KL reference is the checkpoint the run starts from: the stage-1 policy.
    assert trainer.ref_model is not None and trainer.ref_model.config._name_or_path == stage1_dir
    trainer.train()
    kl = [entry["kl"] for entry in trainer.state.log_history if "kl" in entry]
    assert kl and all(math.isfinite(v) and v >= 0 for v in kl)
    record = json.loads((tmp_path / "stage2" / "unirg_reward.json").read_text())
    assert record["beta"] == 0.03 and record["kl_reference"] == stage1_dir


def test_sft_through_the_cli(toy: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from unirg.cli import app

    output = tmp_path / "sft"
    overrides = {
        "model": toy / "text-model",
        "train_file": toy / "train.jsonl",
        "output_dir": output,
        "max_steps": 3,
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
        "disable_tqdm": True,
    }
    args = ["train", "-c", str(CONFIGS / "tiny-sft.yaml")]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    losses = [json.loads(line).get("loss") for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert len([loss for loss in losses if loss is not None]) == 3
    from trainer.models import load_model

    assert load_model(str(output), "text").config.model_type == "qwen2"


def test_cli_reports_config_errors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from unirg.cli import app

    path = tmp_path / "bad.yaml"
    path.write_text("stage: grpo\nmodel: m\ntrain_file: t.jsonl\nlearning_rat: 1\n")
    result = CliRunner().invoke(app, ["train", "-c", str(path)])
    assert result.exit_code == 2
    assert "learning_rat" in result.output


def test_vlm_grpo_step_with_prior_image(toy: Path, service: ServiceProcess, tmp_path: Path) -> None:
    from trainer.run import build_trainer

    before = _items_scored(service.base_url)
    config = _tiny_grpo_config(toy, service, tmp_path / "vlm", model=str(toy / "vlm-model"), model_kind="vlm")
    ours, trl_args = load_config({**config, "max_steps": 1})
    trainer = build_trainer(ours, trl_args)
    assert type(trainer.model).__name__ == "Qwen2VLForConditionalGeneration"
    trainer.train()
    assert _items_scored(service.base_url) - before >= TINY_GRPO["per_device_train_batch_size"]
    (entry,) = [e for e in trainer.state.log_history if "reward" in e]
    assert math.isfinite(entry["reward"])
    # Both images (prior and current) reached the model as visual tokens.
    assert all(len(images) == 2 for images in trainer._logs["images"])


def test_lora_run_saves_a_merged_model_for_the_next_stage(
    toy: Path, service: ServiceProcess, tmp_path: Path
) -> None:
    from trainer.models import load_model
    from trainer.run import run_training

    config = _tiny_grpo_config(toy, service, tmp_path / "lora", lora=True, lora_r=4, max_steps=1)
    next_model = run_training(*load_config(config))
    assert next_model == tmp_path / "lora" / "merged"
    assert load_model(str(next_model), "text").config.model_type == "qwen2"
    with pytest.raises(ValueError, match="merged"):
        load_model(str(tmp_path / "lora"), "text")


@pytest.mark.slow
def test_toy_example_reward_rises(tmp_path: Path) -> None:
    """The newcomer's example: one command, its own service, and a reward that goes up."""
    workdir = tmp_path / "toy_run"
    # Half the default GRPO steps keep the test short; the rise happens in the first ten or so.
    command = [sys.executable, str(REPO_ROOT / "examples" / "toy_grpo.py"), "--workdir", str(workdir)]
    result = subprocess.run(
        [*command, "--grpo-steps", "15"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    curve = json.loads((workdir / "reward_curve.json").read_text())
    rewards = curve["rewards"]
    assert len(rewards) == 15
    assert curve["last_mean"] > curve["first_mean"] + 0.05, rewards
    assert (workdir / "reward_curve.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((workdir / "grpo-stage1" / "unirg_reward.json").read_text())["profile"] == "default"


def test_composite_reward_mode(toy: Path, service: ServiceProcess, tmp_path: Path) -> None:
    from trainer.run import build_trainer

    config = _tiny_grpo_config(toy, service, tmp_path / "composite", reward_mode="composite", max_steps=1)
    trainer = build_trainer(*load_config(config))
    trainer.train()
    assert list(trainer._logs["rewards"]) == ["composite"]
    prompts = list(trainer._logs["prompt"])
    completions = [c[0]["content"] for c in trainer._logs["completion"]]
    studies = {s.indication: s for s in load_studies(toy / "train.jsonl")}
    scored_studies = [
        next(s for ind, s in studies.items() if f"Indication: {ind}\n" in p[-1]["content"]) for p in prompts
    ]
    items = [
        {"reference": s.reference, "candidate": c, "prior_report": s.prior_report}
        for s, c in zip(scored_studies, completions, strict=True)
    ]
    scored = httpx.post(f"{service.base_url}/v1/score", json={"items": items}, timeout=30).json()["items"]
    assert list(trainer._logs["rewards"]["composite"]) == pytest.approx(
        [i["reward"] for i in scored], abs=1e-6
    )


def test_dry_run_checks_data_and_service(toy: Path, service: ServiceProcess, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from unirg.cli import app

    config = tmp_path / "grpo.yaml"
    config.write_text(
        f"stage: grpo\nmodel: {toy / 'vlm-model'}\nmodel_kind: vlm\ntrain_file: {toy / 'train.jsonl'}\n"
        f"service_url: {service.base_url}\nuse_cpu: true\nbf16: false\noutput_dir: {tmp_path / 'out'}\n"
    )
    result = CliRunner().invoke(app, ["train", "-c", str(config), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "8 training studies" in result.output and "configuration OK" in result.output
    profile = httpx.get(f"{service.base_url}/v1/profiles/default", timeout=10).json()
    assert profile["profile_hash"] in result.output.replace("\n", "")
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written

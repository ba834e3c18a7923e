"""BERTScore, CheXbert labels, SembScore and RadCliQ-v1 against their reference implementations.

Every model is a tiny random-weight one built at test time (unirg_testing.encoders):
the numbers are meaningless, but the reference packages and our batched path must agree on them.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from pathlib import Path

import httpx
import pytest
import torch
import yaml
from fidelity import (
    CANDIDATES,
    REFERENCES,
    TOKENIZER_EDGE_CASES,
    one_report_forward,
    original_chexbert,
    original_chexbert_ids,
    pairs,
    score_with,
    scorer_settings,
    transformers4_only,
)

from reward_service.models.hub import MissingWeightsError
from reward_service.models.weights import minilm_dir
from reward_service.scorers import ScoreItem, ScoreResult, scorer_class
from unirg_testing.encoders import (
    build_bert_encoder,
    build_chexbert_checkpoint,
    build_roberta_encoder,
)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    encoder = build_bert_encoder(root / "tiny-bert", seed=1)
    checkpoint = build_chexbert_checkpoint(root / "chexbert.pth", encoder, seed=2)
    baseline = root / "baseline.tsv"
    baseline.write_text("LAYER,P,R,F\n0,0.1,0.2,0.3\n1,0.6,0.55,0.58\n2,0.7,0.65,0.68\n", encoding="utf-8")
    roberta = build_roberta_encoder(root / "tiny-roberta", seed=4)
    return {"encoder": encoder, "roberta": roberta, "chexbert": checkpoint, "baseline": baseline}


@transformers4_only
@pytest.mark.parametrize("encoder", ["encoder", "roberta"])
@pytest.mark.parametrize("layer", [1, 2])
@pytest.mark.parametrize("rescale", [False, True])
async def test_bertscore_equals_bert_score_package(
    tiny_models: dict[str, Path], tmp_path: Path, encoder: str, layer: int, rescale: bool
) -> None:
    from bert_score import BERTScorer

    items = pairs()
    options = {"model": str(tiny_models[encoder]), "layer": layer}
    if rescale:
        options["baseline"] = str(tiny_models["baseline"])
    ours = await score_with("bertscore", options, scorer_settings(tmp_path), items)
    peer = BERTScorer(
        model_type=str(tiny_models[encoder]),
        num_layers=layer,
        device="cpu",
        lang="en",
        rescale_with_baseline=rescale,
        baseline_path=str(tiny_models["baseline"]) if rescale else None,
    )
    precision, recall, f1 = peer.score([i.candidate for i in items], [i.reference for i in items])
    for index, result in enumerate(ours):
        assert result.error is None
        assert result.score == pytest.approx(float(f1[index]), abs=1e-5)
        assert result.details["precision"] == pytest.approx(float(precision[index]), abs=1e-5)
        assert result.details["recall"] == pytest.approx(float(recall[index]), abs=1e-5)
    # The tiny encoder scores pairs differently, so agreeing with the package means something.
    assert len({round(float(value), 4) for value in f1}) > len(items) // 2


@transformers4_only
@pytest.mark.parametrize("encoder", ["encoder", "roberta"])
def test_encode_sentence_gives_the_ids_of_sent_encode(tiny_models: dict[str, Path], encoder: str) -> None:
    from bert_score.utils import get_tokenizer, sent_encode

    from reward_service.models.tokenization import CachedWordIds, SpecialTokens
    from reward_service.scorers.bertscore import encode_sentence

    tokenizer = get_tokenizer(str(tiny_models[encoder]), use_fast=False)
    special = SpecialTokens.of(tokenizer)
    word_ids = CachedWordIds.for_tokenizer(tokenizer)
    assert (word_ids is not None) == (encoder == "encoder")  # the BERT tokenizer has a word cache
    for text in [*CANDIDATES, *TOKENIZER_EDGE_CASES]:
        expected = sent_encode(tokenizer, text)
        assert encode_sentence(tokenizer, special, text) == expected, text
        assert encode_sentence(tokenizer, special, text, word_ids) == expected, text
    for ids in ([], [7], [5, 6, 7]):
        assert special.wrap(ids) == tokenizer.build_inputs_with_special_tokens(ids)


@transformers4_only
async def test_bertscore_default_is_the_packaged_minilm(tmp_path: Path) -> None:
    from bert_score import BERTScorer

    from reward_service.models.weights import minilm_dir

    items = pairs()[16:24]  # reference 2 against every candidate, one of them identical
    ours = await score_with("bertscore", {}, scorer_settings(tmp_path), items)
    peer = BERTScorer(model_type=str(minilm_dir()), num_layers=6, device="cpu")
    _, _, f1 = peer.score([i.candidate for i in items], [i.reference for i in items])
    assert [r.score for r in ours] == pytest.approx([float(v) for v in f1], abs=1e-5)
    identical = [r.score for i, r in zip(items, ours, strict=True) if i.reference == i.candidate]
    assert identical and all(score == pytest.approx(1.0, abs=1e-5) for score in identical)


async def test_missing_weights_name_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="unirg models fetch"):
        await score_with("bertscore", {"model": str(tmp_path / "absent")}, scorer_settings(tmp_path), [])
    with pytest.raises(MissingWeightsError, match="distilroberta-base"):
        await score_with("bertscore", {"model": "distilroberta-base"}, scorer_settings(tmp_path), [])
    with pytest.raises(MissingWeightsError, match=r"chexbert\.pth"):
        await score_with("semb", {"encoder": str(tmp_path)}, scorer_settings(tmp_path), [])
    # Downloads allowed but the hub is unreachable (HF_HUB_OFFLINE in tests): still a clear error.
    with pytest.raises(MissingWeightsError, match="download failed"):
        await score_with(
            "bertscore", {"model": "distilroberta-base"}, scorer_settings(tmp_path, model_download=True), []
        )


@transformers4_only
async def test_chexbert_labels_and_semb_match_a_direct_forward_pass(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import BertTokenizer

    items = pairs()
    options = {"checkpoint": str(tiny_models["chexbert"]), "encoder": str(tiny_models["encoder"])}
    config = scorer_settings(tmp_path, batch_token_budget=64)  # several batches, mixed lengths
    labels = await score_with("chexbert", options, config, items)
    semb = await score_with("semb", options, config, items)

    model = original_chexbert(tiny_models["encoder"], tiny_models["chexbert"])
    tokenizer = BertTokenizer.from_pretrained(tiny_models["encoder"])
    names = [
        "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
        "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
        "Support Devices", "No Finding",
    ]  # fmt: skip
    top5 = {"Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion"}

    def present(classes: list[int]) -> set[str]:  # f1chexbert "rrg": positive (1) or uncertain (3)
        return {name for name, c in zip(names, classes, strict=True) if c in (1, 3)}

    def f1(a: set[str], b: set[str]) -> float:
        return 1.0 if not a and not b else 2 * len(a & b) / (len(a) + len(b))

    for item, label_result, semb_result in zip(items, labels, semb, strict=True):
        ref_classes, ref_cls = one_report_forward(model, tokenizer, item.reference)
        cand_classes, cand_cls = one_report_forward(model, tokenizer, item.candidate)
        ref, cand = present(ref_classes), present(cand_classes)
        assert label_result.details["reference_labels"] == sorted(ref)
        assert label_result.details["candidate_labels"] == sorted(cand)
        assert label_result.score == pytest.approx(f1(ref, cand))
        assert label_result.details["f1_micro5"] == pytest.approx(f1(ref & top5, cand & top5))
        cosine = torch.nn.functional.cosine_similarity(ref_cls, cand_cls, dim=0)
        # Batched, padded float32 passes through a model with weights at std 1.0 round differently from
        # one report at a time, by how much depends on the CPU's kernels (4.9e-5 seen on one machine, under
        # 1e-5 on another): the check is for the computation, not for the last bits.
        assert semb_result.score == pytest.approx(float(cosine), abs=5e-4)


@transformers4_only
async def test_tiny_chexbert_labels_vary_between_reports_and_match_the_original(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import BertTokenizer

    from reward_service.models.chexbert import CHEXBERT_LABELS

    # A model giving every report the same 14 labels would match any tokenisation, mask or head order.
    texts = [*REFERENCES, *CANDIDATES]
    options = {"checkpoint": str(tiny_models["chexbert"]), "encoder": str(tiny_models["encoder"])}
    items = [ScoreItem(str(i), text, text) for i, text in enumerate(texts)]
    ours = [
        r.details["candidate_labels"]
        for r in await score_with("chexbert", options, scorer_settings(tmp_path), items)
    ]
    model = original_chexbert(tiny_models["encoder"], tiny_models["chexbert"])
    tokenizer = BertTokenizer.from_pretrained(tiny_models["encoder"])
    classes = [one_report_forward(model, tokenizer, text)[0] for text in texts]
    original = [sorted(n for n, c in zip(CHEXBERT_LABELS, cs, strict=True) if c in (1, 3)) for cs in classes]
    assert ours == original
    assert len({tuple(labels) for labels in ours}) >= len(texts) // 2
    # Every head's decision depends on the text: each gives at least two classes over these reports.
    assert all(len({report[head] for report in classes}) >= 2 for head in range(len(CHEXBERT_LABELS)))


@transformers4_only
def test_chexbert_tokenization_equals_the_original(tiny_models: dict[str, Path]) -> None:
    from transformers import BertTokenizer

    from reward_service.models.chexbert import tokenize_report
    from reward_service.models.tokenization import CachedWordIds

    tokenizer = BertTokenizer.from_pretrained(tiny_models["encoder"])
    word_ids = CachedWordIds(tokenizer)
    for text in [*REFERENCES, *CANDIDATES, *TOKENIZER_EDGE_CASES]:
        expected = original_chexbert_ids(tokenizer, text)
        assert tokenize_report(text, tokenizer) == expected, text
        assert tokenize_report(text, tokenizer, word_ids) == expected, text


@transformers4_only
@pytest.mark.parametrize("model", ["tiny", "minilm"])
def test_cached_word_ids_equal_the_slow_tokenizer_on_any_text(
    tiny_models: dict[str, Path], shared_reports: dict[str, dict], model: str
) -> None:
    from bert_score.utils import get_tokenizer

    from reward_service.models.tokenization import CachedWordIds

    directory = tiny_models["encoder"] if model == "tiny" else minilm_dir()
    tokenizer = get_tokenizer(str(directory), use_fast=False)
    word_ids = CachedWordIds(tokenizer)
    reports = [study["report"] for study in shared_reports.values()]
    variants = [f(report) for report in reports[:300] for f in (str.upper, _broken_lines, _bracketed)]
    # Random texts of plain characters, added tokens and long words, each family with one character that
    # the tokenizer drops or reads otherwise than str.split (so the word cache must not read it).
    plain = [*"aZ09 .,;:-/()%'\"[]#", "\t", "\n", "\r", "[SEP]", "[MASK]", "effusion", "x" * 101]
    odd = ["\x0b", "\x0c", "\x1c", "\x1f", "\x7f", "\x00", "\x85", "\u2028", "\u3000", "é", "–", "\ufffd"]
    rng = random.Random(11)
    fuzz = [
        "".join(rng.choice([*plain, extra]) for _ in range(rng.randrange(0, 30)))
        for extra in ["", *odd]
        for _ in range(300)
    ]
    for text in [*reports, *variants, *TOKENIZER_EDGE_CASES, *fuzz]:
        assert word_ids(text) == word_ids.tokenizer_ids(text), repr(text)
    assert word_ids.chunk_ids.cache_info().hits > len(reports)  # reports share words: most were cached
    # An added token may hold a space, which no word holds: text with one is tokenized whole.
    tokenizer.add_tokens(["pleural effusion"])
    word_ids = CachedWordIds(tokenizer)
    text = "Small left pleural effusion."
    added = tokenizer.convert_tokens_to_ids("pleural effusion")
    expected = [*word_ids.tokenizer_ids("Small left"), added, *word_ids.tokenizer_ids(".")]
    assert word_ids(text) == word_ids.tokenizer_ids(text) == expected


def _broken_lines(report: str) -> str:
    return report.replace(". ", ".\n\t ").replace(",", " ,  ")


def _bracketed(report: str) -> str:
    return report.replace("heart", "[heart]").replace("lungs", "lungs[SEP]", 1)


async def test_chexbert_and_semb_share_one_model(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    from reward_service.models.registry import MODELS

    options = {"checkpoint": str(tiny_models["chexbert"]), "encoder": str(tiny_models["encoder"])}
    config = scorer_settings(tmp_path)
    scorers = []
    for name in ("chexbert", "semb"):
        cls = scorer_class(name)
        scorer = cls(name, cls.Options.model_validate(options), config)
        await scorer.load()
        scorers.append(scorer)
    assert scorers[0]._model is scorers[1]._model
    assert scorers[0].fingerprint() == scorers[1].fingerprint()
    key = scorers[0]._key
    await scorers[0].close()
    assert key in MODELS
    await scorers[1].close()
    assert key not in MODELS


async def test_radcliq_on_hand_computed_features(tmp_path: Path) -> None:
    mu = [0.53792312, 0.61757256, 0.76479421, 0.44738335]
    sigma = [0.30282584, 0.22430938, 0.25394391, 0.29892717]
    w = [-0.3770837, -0.3703001, -0.2526162, 4.3e-12]
    b = 2.47e-10
    perfect = sum(wi * (1 - m) / s for wi, m, s in zip(w, mu, sigma, strict=True)) + b
    assert perfect == pytest.approx(-1.4407, abs=1e-4)  # "a perfect match gives about -1.44"
    # An item with features radgraph 0.2, bertscore 0.3, semb 0.5, bleu2 0.1:
    # z = (-1.11590, -1.41578, -1.04273, -1.16212); RadCliQ = 0.42079 + 0.52426 + 0.26341 - 0 = 1.20846
    features = {"radgraph": [1.0, 0.2], "bertscore": [1.0, 0.3], "semb": [1.0, 0.5], "bleu2": [1.0, 0.1]}
    upstream = {key: [ScoreResult(v) for v in values] for key, values in features.items()}
    upstream["semb"].append(ScoreResult.failed("no model"))
    for key in ("radgraph", "bertscore", "bleu2"):
        upstream[key].append(ScoreResult(0.5))
    cls = scorer_class("radcliq")
    scorer = cls("radcliq", cls.Options(), scorer_settings(tmp_path))
    items = [ScoreItem(id=str(i), reference="r", candidate="c") for i in range(3)]
    results = await scorer.score_batch(items, upstream)
    assert results[0].details["radcliq"] == pytest.approx(perfect, abs=1e-9)
    assert results[0].score == pytest.approx(-perfect, abs=1e-9)
    assert results[1].details["radcliq"] == pytest.approx(1.20846, abs=1e-4)
    assert results[1].details["inverse"] == pytest.approx(1 / 1.20846, abs=1e-4)
    assert results[2].score is None and "semb" in results[2].error


def write_profile(path: Path, tiny_models: dict[str, Path]) -> Path:
    chexbert = {"checkpoint": str(tiny_models["chexbert"]), "encoder": str(tiny_models["encoder"])}
    profile = {
        "name": "tiny-models",
        "description": "tiny random models for tests",
        "components": [
            {
                "name": "bertscore",
                "weight": 0.4,
                "options": {"model": str(tiny_models["encoder"]), "layer": 2},
            },
            {"name": "semb", "weight": 0.3, "options": chexbert},
            {"name": "chexbert", "weight": 0.3, "options": chexbert},
        ],
    }
    path.write_text(yaml.safe_dump(profile), encoding="utf-8")
    return path


def test_concurrent_requests_equal_one_big_request(
    tiny_models: dict[str, Path], tmp_path: Path, start_service
) -> None:
    profile = write_profile(tmp_path / "tiny.yaml", tiny_models)
    base_url = start_service(
        profile=str(profile), env={"UNIRG_DEVICE": "cpu", "UNIRG_BATCH_MAX_WAIT_MS": "1"}
    )
    items = [
        {"id": f"{i}", "reference": REFERENCES[i % 4], "candidate": CANDIDATES[(i * 3) % 8] + f" Item {i}."}
        for i in range(64)
    ]

    async def run() -> tuple[list[dict], list[dict]]:
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
            big = await client.post("/v1/score", json={"items": items})
            big.raise_for_status()
            chunks = [items[i : i + 2] for i in range(0, 64, 2)]
            responses = await asyncio.gather(*(client.post("/v1/score", json={"items": c}) for c in chunks))
            small = []
            for response in responses:
                response.raise_for_status()
                small += response.json()["items"]
            return big.json()["items"], small

    big, small = asyncio.run(run())
    assert len(big) == len(small) == 64
    for one, many in zip(big, small, strict=True):
        assert one["id"] == many["id"]
        assert one["reward"] is not None and math.isfinite(one["reward"])
        assert json.dumps(one["components"], sort_keys=True) == json.dumps(many["components"], sort_keys=True)
        assert one["reward"] == many["reward"]


@pytest.mark.parametrize("name", ["bertscore", "chexbert", "semb"])
async def test_scores_do_not_depend_on_batching(
    tiny_models: dict[str, Path], tmp_path: Path, name: str
) -> None:
    options = (
        {"model": str(tiny_models["encoder"]), "layer": 2}
        if name == "bertscore"
        else {"checkpoint": str(tiny_models["chexbert"]), "encoder": str(tiny_models["encoder"])}
    )
    # Many distinct lengths, so batches of different compositions pad differently.
    items = [
        ScoreItem(f"{i}", REFERENCES[i % 4], CANDIDATES[(i * 3) % 8] + " Stable." * (i % 7) + f" Item {i}.")
        for i in range(48)
    ]
    together = await score_with(name, options, scorer_settings(tmp_path, batch_token_budget=100_000), items)
    small_batches = await score_with(name, options, scorer_settings(tmp_path, batch_token_budget=48), items)
    alone = [(await score_with(name, options, scorer_settings(tmp_path), [item]))[0] for item in items[::5]]
    assert [r.score for r in together] == [r.score for r in small_batches]  # exactly, not approximately
    assert [r.score for r in together[::5]] == [r.score for r in alone]


def test_full_model_queue_answers_429_with_retry_after(
    tiny_models: dict[str, Path], tmp_path: Path, start_service
) -> None:
    profile = write_profile(tmp_path / "tiny.yaml", tiny_models)
    base_url = start_service(profile=str(profile), env={"UNIRG_DEVICE": "cpu", "UNIRG_BATCH_QUEUE_SIZE": "4"})
    items = [{"reference": REFERENCES[0], "candidate": f"{CANDIDATES[0]} Item {i}."} for i in range(8)]
    response = httpx.post(f"{base_url}/v1/score", json={"items": items}, timeout=120)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert "UNIRG_BATCH_QUEUE_SIZE" in response.json()["detail"]
    # Work that fits is still scored, and the refusal is counted.
    fits = httpx.post(f"{base_url}/v1/score", json={"items": items[:1]}, timeout=120)
    assert fits.status_code == 200 and fits.json()["items"][0]["reward"] is not None
    assert "unirg_requests_rejected_total 1.0" in httpx.get(f"{base_url}/metrics").text

"""The CheXprompt error taxonomy has one home (rules/error_taxonomy.yaml), read by the clinical scorer,
the judge prompts, the judge parsers and the evaluation report."""

from __future__ import annotations

import hashlib
import json

import pytest

from reward_service.judge.parsing import parse_chexprompt, parse_green
from reward_service.judge.prompts import (
    CHEXPROMPT_JSON_SCHEMA,
    CHEXPROMPT_SYSTEM,
    GREEN_INSTRUCTIONS,
    PROMPT_IDS,
)
from reward_service.taxonomy import LETTERS, TAXONOMY, parse_taxonomy
from reward_service.text.clinical_errors import CATEGORIES, compare_reports
from unirg.evaluation.metrics import ERROR_KINDS

#: sha256 of each prompt's fixed text. A change to the wording (a taxonomy description included)
#: must come with a new prompt id, which starts fresh judge cache entries and a new profile hash.
PROMPT_TEXT_SHA256 = {
    "chexprompt-json-v1": "1831eebb6f97a9704f4ed486ff1569d92def775e00c6b7014877d06d9f235a71",
    "green-sections-v1": "f8b57b754f184a06b7dc6430915335fea29d52d6efa0e21f77a801ca22db6a02",
}


def test_prompt_text_changes_only_with_a_new_prompt_id() -> None:
    texts = {
        "chexprompt": CHEXPROMPT_SYSTEM + json.dumps(CHEXPROMPT_JSON_SCHEMA, sort_keys=True),
        "green": GREEN_INSTRUCTIONS,
    }
    hashes = {PROMPT_IDS[style]: hashlib.sha256(text.encode()).hexdigest() for style, text in texts.items()}
    assert hashes == PROMPT_TEXT_SHA256, (
        "the prompt text changed: bump its id in PROMPT_IDS, then the hash here"
    )


def test_every_user_reads_the_same_six_categories() -> None:
    assert LETTERS == ("A", "B", "C", "D", "E", "F")
    assert {c.letter.lower(): c.kind for c in TAXONOMY} == CATEGORIES
    assert tuple(CATEGORIES.items()) == ERROR_KINDS
    assert set(CHEXPROMPT_JSON_SCHEMA["properties"]["clinically_significant"]["required"]) == set(LETTERS)
    for category in TAXONOMY:
        assert f"({category.letter}) {category.description}." in CHEXPROMPT_SYSTEM
        assert f"({category.letter.lower()}) {category.description}: <the number" in GREEN_INSTRUCTIONS
        by_key = parse_chexprompt(json.dumps({"clinically_significant": {category.chexprompt_key: 2}}))
        assert by_key.significant == {letter: 2 * (letter == category.letter) for letter in LETTERS}
        section = f"({category.letter.lower()}) {category.description}: 3. an error"
        green = parse_green(f"[Clinically Significant Errors]:\n{section}\n\n[Matched Findings]:\n1. heart")
        assert green.significant[category.letter] == 3


def test_clinical_errors_are_named_by_the_taxonomy_kind() -> None:
    errors = compare_reports("Small right pleural effusion.", "Large left pleural effusion. Rib fracture.")
    kinds = {error.as_dict()["kind"] for error in errors}
    assert {"wrong_location", "wrong_severity", "false_finding"} <= kinds
    assert all(error.as_dict()["kind"] == CATEGORIES[error.category] for error in errors)


def test_a_malformed_taxonomy_file_is_refused() -> None:
    entry = "  - {{letter: {0}, kind: {1}, chexprompt_key: key_{0}, description: d}}\n"
    six = "categories:\n" + "".join(entry.format(letter, f"kind_{letter}") for letter in "ABCDEF")
    assert [c.kind for c in parse_taxonomy(six)] == [f"kind_{letter}" for letter in "ABCDEF"]
    with pytest.raises(ValueError, match="A-F in order"):
        parse_taxonomy(
            "categories:\n" + "".join(entry.format(letter, f"kind_{letter}") for letter in "ABCDFE")
        )
    with pytest.raises(ValueError, match="kind names repeat"):
        parse_taxonomy("categories:\n" + "".join(entry.format(letter, "same") for letter in "ABCDEF"))

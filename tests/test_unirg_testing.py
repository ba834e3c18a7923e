"""The test-only model builders (unirg_testing/): outside the installed product, and models whose outputs
depend on their input (a tiny model that answers every text alike would let fidelity tests pass on bugs).

The CheXbert, BERTScore and DyGIE builders are checked for this where their fidelity tests use them
(tests/test_model_scorers.py, tests/test_radgraph.py); the trainer's tiny Qwen2 here.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
from live_service import REPO_ROOT

PRODUCT_PACKAGES = ("unirg", "reward_service", "clients", "trainer")


def test_unirg_testing_is_not_packaged() -> None:
    from setuptools import find_packages

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packaged = find_packages(str(REPO_ROOT), include=include)
    assert {package.split(".")[0] for package in packaged} == set(PRODUCT_PACKAGES)


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("package", PRODUCT_PACKAGES)
def test_the_product_never_imports_unirg_testing(package: str) -> None:
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        if any(module.split(".")[0] == "unirg_testing" for module in imported_modules(path))
    ]
    assert not offenders


def test_tiny_qwen2_continues_prompts_differently(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.toy_data import toy_corpus
    from unirg_testing.qwen2 import save_tiny_qwen2

    corpus = toy_corpus()
    path = save_tiny_qwen2(tmp_path / "qwen2", corpus)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    prompts = list(dict.fromkeys(" ".join(report.split()[:6]) for report in corpus))[:8]
    continuations = set()
    for prompt in prompts:
        inputs = tokenizer(prompt, return_tensors="pt")
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        continuations.add(tuple(output[0, inputs["input_ids"].shape[1] :].tolist()))
    assert len(prompts) == 8 and len(continuations) >= 4

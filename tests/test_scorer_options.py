"""A scorer's options model is the type argument of its base: ``class X(RuleScorer[XOptions])``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reward_service.composite import ProfileError, load_profile
from reward_service.scorers import RuleScorer, ScoreItem, ScoreResult, ScorerOptions, scorer_class
from reward_service.scorers.chexpert_labels import CheXpertLabelsOptions
from reward_service.scorers.clinical_errors import ClinicalErrorsOptions
from reward_service.scorers.judge import JudgeOptions
from reward_service.scorers.report_guard import ReportGuardOptions
from reward_service.settings import Settings


class ScaleOptions(ScorerOptions):
    factor: float = 1.0


class WideScaleOptions(ScaleOptions):
    offset: float = 0.0


class Scale(RuleScorer[ScaleOptions]):
    description = "length of the candidate times a factor"

    def score_one(self, item: ScoreItem) -> ScoreResult:
        return ScoreResult(len(item.candidate) * self.options.factor)


def test_the_type_argument_is_the_options_model_the_scorer_reads() -> None:
    assert Scale.Options is ScaleOptions
    options = Scale.Options.model_validate({"factor": 2.5})
    scorer = Scale("scale", options, Settings())
    assert scorer.score_one(ScoreItem("0", "ref", "abcd")).score == 10.0
    with pytest.raises(ValueError, match="facter"):
        Scale.Options.model_validate({"facter": 2})


def test_a_subclass_without_a_type_argument_keeps_its_parents_options() -> None:
    class Narrowed(Scale):
        Options = WideScaleOptions

    class Inherits(Narrowed):
        pass

    assert Narrowed.Options is WideScaleOptions
    assert Inherits.Options is WideScaleOptions


def test_an_options_attribute_that_contradicts_the_type_argument_is_refused() -> None:
    class Other(ScorerOptions):
        pass

    with pytest.raises(TypeError, match="Other, not the ScaleOptions"):

        class Wrong(RuleScorer[ScaleOptions]):
            Options = Other

            def score_one(self, item: ScoreItem) -> ScoreResult:
                return ScoreResult(0.0)


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("report_guard", ReportGuardOptions),
        ("chexpert_labels", CheXpertLabelsOptions),
        ("clinical_errors", ClinicalErrorsOptions),
        ("judge", JudgeOptions),
        ("rouge_l", ScorerOptions),
    ],
)
def test_a_registered_scorer_validates_a_profile_with_its_type_argument(
    tmp_path: Path, name: str, model: type[ScorerOptions]
) -> None:
    assert scorer_class(name).Options is model
    path = tmp_path / "profile.yaml"
    components = [{"name": name, "weight": 1, "options": {"no_such_option": 1}}]
    path.write_text(yaml.safe_dump({"name": "custom", "components": components}))
    with pytest.raises(ProfileError, match="no_such_option"):
        load_profile(str(path))

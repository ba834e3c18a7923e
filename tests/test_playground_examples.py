"""The playground's example reports and their generated variants."""

from __future__ import annotations

from reward_service.playground import make_variants, playground_examples
from reward_service.playground.variants import dropped_finding, negation_flip, paraphrase_variant, side_swap
from reward_service.text.chexpert import chexpert_labels, present_observations
from reward_service.text.clinical_errors import compare_reports
from reward_service.text.variants import paraphrase

#: The error category each variant is meant to cause, as the rule-based clinical-error scorer names it.
EXPECTED_CATEGORIES = {"negation_flip": {"a", "b"}, "side_swap": {"c"}, "dropped_finding": {"b"}}

REPORT = (
    "Findings: Heart size is normal. There is a small left pleural effusion. No pneumothorax. "
    "The lungs are otherwise clear. Impression: Small left pleural effusion."
)


def present(report: str) -> frozenset[str]:
    return present_observations(chexpert_labels(report))


def error_categories(reference: str, candidate: str) -> set[str]:
    return {error.category for error in compare_reports(reference, candidate)}


def assert_variant_does_what_it_says(report: str, kind: str, text: str) -> None:
    assert text != report
    if kind == "paraphrase":
        assert present(text) == present(report)
        assert not [error for error in compare_reports(report, text) if error.significant]
    else:
        assert error_categories(report, text) & EXPECTED_CATEGORIES[kind], (kind, text)


def test_negation_flip_states_the_most_significant_ruled_out_finding() -> None:
    variant = negation_flip(REPORT)
    assert variant is not None
    assert variant.text == REPORT.replace("No pneumothorax.", "Pneumothorax.")
    assert "a" in error_categories(REPORT, variant.text)


def test_negation_flip_prefers_a_finding_alone_and_skips_findings_stated_elsewhere() -> None:
    report = "Findings: No effusion or consolidation. No pneumothorax. Small right effusion."
    variant = negation_flip(report)
    assert variant is not None
    # Effusion is stated, so its list is left alone; the lone pneumothorax is flipped.
    assert variant.text == "Findings: No effusion or consolidation. Pneumothorax. Small right effusion."
    # A list is flipped when no finding stands alone.
    variant = negation_flip(
        "Findings: The heart is enlarged. There is no focal consolidation or pneumothorax."
    )
    assert variant is not None
    assert variant.text.endswith("There is focal consolidation or pneumothorax.")
    assert negation_flip("Findings: Small left pleural effusion. Impression: Effusion.") is None


def test_side_swap_moves_the_one_sided_finding_wherever_it_is_stated() -> None:
    variant = side_swap(REPORT)
    assert variant is not None
    assert variant.text == REPORT.replace("left", "right").replace("Left", "Right")
    assert "c" in error_categories(REPORT, variant.text)
    assert (
        side_swap("Findings: No pneumothorax. Left lung is clear.") is None
    )  # no stated finding with a side
    # A finding on both sides stays on both sides: the swap would change nothing clinically.
    assert side_swap("Small left pleural effusion. Small right pleural effusion.") is None
    # Only the sentences stating the finding change; "the right lung is clear" stays as written.
    report = "Findings: The right lung is clear. Left basilar atelectasis."
    variant = side_swap(report)
    assert variant is not None
    assert variant.text == "Findings: The right lung is clear. Right basilar atelectasis."


def test_dropped_finding_removes_every_sentence_stating_it_and_keeps_section_headers() -> None:
    variant = dropped_finding(REPORT)
    assert variant is not None
    assert variant.text == "Findings: Heart size is normal. No pneumothorax. The lungs are otherwise clear."
    assert "b" in error_categories(REPORT, variant.text)
    report = "Findings: Large right pneumothorax. Heart size is normal. Impression: Right pneumothorax. Call placed."
    variant = dropped_finding(report)
    assert variant is not None
    assert variant.text == "Findings: Heart size is normal. Impression: Call placed."
    # A section left empty loses its header.
    variant = dropped_finding("Findings: Right pneumothorax. Impression: Heart size is normal.")
    assert variant is not None and variant.text == "Impression: Heart size is normal."
    assert dropped_finding("Findings: No pneumothorax. Heart size is normal.") is None
    assert dropped_finding("Findings: Right pneumothorax.") is None  # nothing would be left


def test_paraphrase_rewords_with_the_shared_table_only_where_findings_survive() -> None:
    variant = paraphrase_variant(REPORT)
    assert variant is not None
    assert variant.text == paraphrase(REPORT)
    assert variant.text != REPORT
    assert_variant_does_what_it_says(REPORT, "paraphrase", variant.text)
    assert paraphrase_variant("Gibberish words only.") is None  # nothing of the table in it


def test_every_shipped_example_has_all_four_variants_doing_what_they_say() -> None:
    examples = playground_examples()
    assert len(examples.examples) >= 5
    assert "MIT" in examples.license and "ReXrank" in examples.source
    for example in examples.examples:
        kinds = [candidate.kind for candidate in example.candidates]
        assert kinds == ["identical", "paraphrase", "negation_flip", "side_swap", "dropped_finding"], (
            example.id
        )
        assert example.candidates[0].text == example.reference
        for candidate in example.candidates[1:]:
            assert_variant_does_what_it_says(example.reference, candidate.kind, candidate.text)
            assert candidate.note


def test_shipped_sample_is_copied_unchanged_from_the_shared_reports(shared_reports: dict[str, dict]) -> None:
    for example in playground_examples().examples:
        study = shared_reports[example.id]
        assert example.reference == study["report"]
        assert example.context == study["context"]


def test_variants_of_every_shared_report_do_what_they_say(shared_reports: dict[str, dict]) -> None:
    """Over all 590 IU X-ray test reports: a variant is only generated where it makes its error."""
    generated: dict[str, int] = {}
    for study in shared_reports.values():
        report = study["report"]
        for variant in make_variants(report):
            generated[variant.kind] = generated.get(variant.kind, 0) + 1
            assert_variant_does_what_it_says(report, variant.kind, variant.text)
    # Measured on 2026-12-01: paraphrase 581, negation_flip 464, dropped_finding 255, side_swap 101 of 590
    # (a side swap needs a finding stated on one side only; a paraphrase is withheld where the shared
    # synonym table would change what the analysis reads).
    assert generated["paraphrase"] >= 0.9 * len(shared_reports), generated
    assert min(generated.values()) >= 100, generated

"""Rule-based finding extraction from chest X-ray reports (NegBio / CheXpert style).

One scan finds every phrase that names a finding ("effusion", "cardiomegaly", "the heart"), another
every cue word that changes its meaning ("no", "may", "left", "small", "unchanged", "but"); both try
at each word only the phrases that can start with its first four letters. Each mention then gets,
from the cues in its sentence:

* a **status**: positive (1), negative (0) or uncertain (-1), decided in CheXpert's order:
  pre-negation uncertainty ("cannot exclude X", "X cannot be ruled out") first, then negation
  ("no", "without", "free of", "negative for", "clear of", "X has resolved", "X is not seen"), then
  uncertainty ("may", "possible", "likely", "suggestive of", "concerning for", "X versus Y",
  "X or Y"), else positive. Forward cues reach to the end of their clause; a clause ends at the
  sentence end or at "but", "however", "which", "although", "except", ";", ":", "there is", ...
  Backward cues ("X is not seen") reach only to the next mention, and are shared along a list
  joined by "and" / "or" / commas ("effusion and pneumothorax have resolved").
* **laterality** (left / right / both), **severity** (1 small-mild, 2 moderate, 3 large-severe) and
  **change** (new, worse, better, same): each such word belongs to the mention it modifies, the
  next mention in its clause ("small left effusion") unless it follows a preposition ("opacity in
  the left base"), when it belongs to the previous one.

Anatomic *descriptor* mentions ("the heart", "cardiac silhouette", "mediastinum") only count when
the clause qualifies them: "normal", "unremarkable", "within normal limits" make them negative,
"enlarged", "large", "widened", "prominent" positive (and then negation and uncertainty apply as
above, so "the heart is not enlarged" is negative and "borderline enlarged" uncertain); an
unqualified "the heart and lungs ..." is no mention at all.

Deliberate deviations from the CheXpert labeler, chosen for use as a reward: "no new X" is a
negation (CheXpert: uncertain); "stable cardiomediastinal silhouette" alone is no mention
(CheXpert: uncertain); "densities" count as lung opacity; an unqualified "the heart" is not
cardiomegaly; "X likely" after a finding does not hedge it ("opacities, likely atelectasis").

The phrase tables (:data:`CONCEPTS`) and clinical significance weights (:data:`FINDINGS`) live here,
in one place; :mod:`reward_service.text.chexpert` turns mentions into the 14 CheXpert labels and
:mod:`reward_service.text.clinical_errors` compares the findings of two reports.
"""

from __future__ import annotations

import re
import re._constants as _re_constants  # the parser tells which letters a phrase can start with
import re._parser as _re_parser
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

POSITIVE = 1
NEGATIVE = 0
UNCERTAIN = -1
#: Several mentions of one thing resolve positive > uncertain > negative (CheXpert's aggregation).
STATUS_RANK = {POSITIVE: 2, UNCERTAIN: 1, NEGATIVE: 0}

#: Label of findings that are not among the 13 CheXpert observations but still rule out "No Finding"
#: (CheXpert's ``no_finding`` mention list: emphysema, scoliosis, granuloma, hernia, ...).
OTHER = "Other"


@dataclass(frozen=True, slots=True)
class Finding:
    """A clinical finding that the error scorer compares between reports."""

    name: str
    weight: float


#: Clinical significance of each finding: the weight of one error about it. 2.0 = critical (a miss
#: changes management today), 1.5 = high, 1.0 = moderate, 0.5 = low, 0.25 = incidental. The
#: clinical-error scorer counts an error as significant when its weight reaches ``min_weight`` (0.5).
FINDINGS: dict[str, Finding] = {
    "pneumothorax": Finding("pneumothorax", 2.0),
    "pneumomediastinum": Finding("pneumomediastinum", 2.0),
    "pneumoperitoneum": Finding("free intraperitoneal air", 2.0),
    "mass": Finding("mass / tumour", 2.0),
    "device_malposition": Finding("malpositioned line or tube", 2.0),
    "airspace": Finding("airspace opacity / consolidation / pneumonia", 1.5),
    "edema": Finding("pulmonary edema / congestion", 1.5),
    "pleural_effusion": Finding("pleural effusion", 1.5),
    "mediastinal_widening": Finding("enlarged cardiomediastinum", 1.5),
    "fracture": Finding("fracture", 1.5),
    "cardiomegaly": Finding("cardiomegaly", 1.0),
    "atelectasis": Finding("atelectasis", 1.0),
    "nodule": Finding("pulmonary nodule", 1.0),
    "hilar": Finding("hilar enlargement / adenopathy", 1.0),
    "interstitial": Finding("interstitial markings", 1.0),
    "support_devices": Finding("line, tube or device", 1.0),
    "emphysema": Finding("emphysema / COPD", 0.5),
    "hyperinflation": Finding("hyperinflation", 0.5),
    "pleural_thickening": Finding("pleural thickening / plaque", 0.5),
    "scarring": Finding("scarring / fibrosis", 0.5),
    "airway": Finding("airway wall thickening / bronchitis", 0.5),
    "hernia": Finding("hiatal hernia", 0.5),
    "elevated_hemidiaphragm": Finding("elevated hemidiaphragm", 0.5),
    "granuloma": Finding("granuloma", 0.25),
    "calcification": Finding("calcification", 0.25),
    "aortic": Finding("aortic atherosclerosis / tortuosity", 0.25),
    "degenerative": Finding("degenerative spine changes", 0.25),
    "spine_curvature": Finding("scoliosis / kyphosis", 0.25),
    "healed_fracture": Finding("old healed fracture", 0.25),
    "osteopenia": Finding("osteopenia", 0.25),
    "low_lung_volumes": Finding("low lung volumes", 0.25),
    "post_surgical": Finding("post-surgical change", 0.25),
}


@dataclass(frozen=True, slots=True)
class Concept:
    """A set of phrases that name one thing.

    ``finding`` is the :data:`FINDINGS` key compared by the error scorer (None: not compared),
    ``label`` the CheXpert observation (or :data:`OTHER`; None: no label). ``descriptor`` phrases name
    anatomy and need a qualifier; ``hedged`` phrases are uncertain unless negated (CheXpert reads
    "vascular congestion" as possible edema). Phrases are regexes matched on lower-cased text at word
    boundaries.
    """

    key: str
    finding: str | None
    label: str | None
    pattern: str
    descriptor: bool = False
    hedged: bool = False


_EC = "Enlarged Cardiomediastinum"

# Order matters: at one position the first concept whose phrase matches wins, so unmentions and
# longer, more specific phrases come before the general ones they contain.
CONCEPTS: tuple[Concept, ...] = (
    # Unmentions: phrases that contain a mention but mean something else.
    Concept(
        "unmention",
        None,
        None,
        r"pericardial effusions?|(?:joint|knee|shoulder|elbow) effusions?|midclavicular lines?|"
        r"kerley (?:b )?lines?|septal lines?|suture lines?|lung lines|massengale",
    ),
    Concept("pneumothorax", "pneumothorax", "Pneumothorax", r"(?:hydro)?pneumothora(?:x|ces)"),
    Concept("pneumomediastinum", "pneumomediastinum", OTHER, r"pneumomediastinum"),
    Concept(
        "pneumoperitoneum",
        "pneumoperitoneum",
        OTHER,
        r"pneumoperitoneum|free (?:intraperitoneal |intra-abdominal |subdiaphragmatic )?air",
    ),
    Concept("heart_failure", "edema", "Edema", r"(?:congestive )?heart failure|chf"),
    Concept(
        "congestion",
        "edema",
        "Edema",
        r"(?:pulmonary |vascular |venous )+congestion|indistinctness|vascular prominence|"
        r"(?:pulmonary )?vascular engorgement|cephalization",
        hedged=True,
    ),
    Concept(
        "edema", "edema", "Edema", r"(?:pulmonary |interstitial |alveolar )?edema|(?:fluid|volume) overload"
    ),
    Concept(
        "pleural_effusion",
        "pleural_effusion",
        "Pleural Effusion",
        r"(?:pleural )?effusions?|pleural fluid(?: collections?)?|hydrothorax|"
        r"fluid (?:in|within) the (?:\w+ )?(?:pleural space|fissure)s?",
    ),
    Concept(
        "blunting",
        "pleural_effusion",
        OTHER,
        r"blunt\w*(?: of the (?:\w+ )?costophrenic (?:angles?|sulc[iu]s?))?|costophrenic (?:angle )?blunting",
        hedged=True,
    ),
    Concept(
        "pleural_other",
        "pleural_thickening",
        "Pleural Other",
        r"pleural (?:thickening|scar\w*|plaques?|calcifications?|densit(?:y|ies)|reaction)|fibrothorax|"
        r"pleuro-?(?:parenchymal|pericardial) scar\w*|apical (?:pleural )?capp?(?:ing)?",
    ),
    Concept("fibrosis", "scarring", "Pleural Other", r"(?:pulmonary |interstitial )?fibros[ie]s"),
    Concept(
        "healed_fracture",
        "healed_fracture",
        "Fracture",
        r"(?:old|healed|healing|remote|chronic)(?: (?!fracture)[\w-]+){0,3} fractures?",
    ),
    Concept("fracture", "fracture", "Fracture", r"fractures?|fractured"),
    Concept(
        "device_malposition",
        "device_malposition",
        "Support Devices",
        r"malposit\w*|mal-positioned|coiled (?:in|within) the (?:esophagus|pharynx|oropharynx|hypopharynx|neck)|"
        r"too (?:low|high|deep)|(?:should|could|can) be (?:advanced|withdrawn|retracted|pulled back)|"
        r"(?:in|into|within) the (?:right |left )?main(?: ?stem)? bronchus|(?:right|left) main ?stem intubation",
    ),
    Concept(
        "support_devices",
        "support_devices",
        "Support Devices",
        r"pacemakers?|pacers?|a?icds?|defibrillators?|picc(?: lines?)?|"
        r"(?:central venous |venous |dialysis |swan[- ]ganz |pulmonary artery )?catheters?|"
        r"(?:endotracheal|tracheostomy|nasogastric|orogastric|feeding|chest|et|ng|og|dobhoff|enteric) tubes?|"
        r"tubes?|lines?|drains?|(?:prosthetic )?valves?|valve replacement|stents?|"
        r"(?:pacer|pacemaker|icd) leads?|leads|hardware|arthroplast\w*|markers?|devices?|cannula\w*|"
        r"apparatus|coils?|mediport|port-?a-?cath|(?:chest |power |infusion |right-sided |left-sided )?port|"
        r"plates?|screws?|tracheostomy|endotracheal|support",
    ),
    Concept(
        "post_surgical",
        "post_surgical",
        None,
        r"(?:median )?sternotomy(?: wires?)?|sternal wires?|cabg|post-?(?:operative|surgical) changes?|"
        r"surgical (?:clips?|changes?)|clips",
    ),
    Concept("granuloma", "granuloma", OTHER, r"(?:calcified )?granulom\w*|calcified nodul\w*"),
    Concept(
        "nodule",
        "nodule",
        "Lung Lesion",
        r"nodular (?:densit(?:y|ies)|opacit(?:y|ies)|opacification)|nodul\w*",
    ),
    Concept(
        "mass",
        "mass",
        "Lung Lesion",
        r"mass(?:es)?|tumou?rs?|carcinomas?|neoplasm\w*|malignan\w*|cavitary (?:lesion|mass)\w*|cavitation|lump",
    ),
    Concept("metastasis", "mass", OTHER, r"metasta\w*"),
    Concept("atelectasis", "atelectasis", "Atelectasis", r"atelecta\w*|collapsed?"),
    Concept("consolidation", "airspace", "Consolidation", r"consolidat\w*"),
    Concept(
        "pneumonia",
        "airspace",
        "Pneumonia",
        r"(?:broncho)?pneumonias?|pneumonitis|infections?|infectious(?: process)?",
    ),
    Concept(
        "interstitial",
        "interstitial",
        "Lung Opacity",
        r"interstiti(?:um|al (?:(?:lung )?markings?|pattern|prominence|opacit(?:y|ies)|thickening|changes?|lung disease|"
        r"disease|infiltrates?|densit(?:y|ies)))|reticul\w*",
    ),
    Concept(
        "airway_thickening",
        "airway",
        "Lung Opacity",
        r"peribronchial (?:wall )?thickening|bronchial wall thickening|wall thickening",
    ),
    Concept(
        "airway_disease",
        "airway",
        OTHER,
        r"peribronchial cuffing|(?:small )?airways? disease|bronchitis|bronchiolitis|bronchiectasis|bronchospasm|asthma",
    ),
    Concept(
        "scarring",
        "scarring",
        "Lung Opacity",
        r"(?:parenchymal |linear |apical |lingular )?scar(?:s|ring|red)?|fibrotic (?:changes?|scarring)",
    ),
    Concept(
        "lung_opacity",
        "airspace",
        "Lung Opacity",
        r"(?:air[- ]?space|alveolar) (?:disease|opacit(?:y|ies)|process)|opacit(?:y|ies)|opacification|"
        r"opacified|infiltrat\w*|increased densit(?:y|ies)|densit(?:y|ies)|decreased translucency",
    ),
    Concept(
        "emphysema",
        "emphysema",
        OTHER,
        r"emphysem\w*|copd|chronic obstructive (?:pulmonary|lung|airway) disease|bullae|bullous|blebs?",
    ),
    Concept(
        "hyperinflation",
        "hyperinflation",
        OTHER,
        r"hyperinflat\w*|hyper-?expan\w*|over-?inflat\w*|hyperaerat\w*",
    ),
    Concept(
        "low_lung_volumes",
        "low_lung_volumes",
        None,
        r"(?:low|decreased|reduced|diminished|small) lung volumes?|lung volumes (?:are|remain|is) (?:low|reduced|decreased)|"
        r"hypoinflat\w*|hypoventilat\w*|(?:poor|shallow|limited) (?:inspiration|inspiratory effort)",
    ),
    Concept("hernia", "hernia", OTHER, r"(?:hiatal |hiatus |diaphragmatic )?hernia\w*"),
    Concept(
        "spine_curvature",
        "spine_curvature",
        OTHER,
        r"(?:dextro|levo)?scolio\w*|(?:dextro|levo)-?curvature|kyphos[ie]s|kyphotic|curvature of the (?:\w+ )?spine",
    ),
    Concept(
        "degenerative",
        "degenerative",
        OTHER,
        r"degenerat\w*(?: (?:changes?|disease))?|osteophyt\w*|spondylo\w*|osteoarthrit\w*|arthrit\w*|arthropath\w*",
    ),
    Concept("osteopenia", "osteopenia", OTHER, r"osteopeni\w*|osteoporo\w*|demineraliz\w*"),
    Concept(
        "aortic",
        "aortic",
        OTHER,
        r"(?:aortic|aorta) (?:atherosclero\w*|calcifi\w*|tortuosity|ectasia)|atherosclero\w*|"
        r"(?:tortuous|ectatic|unfolded|(?:unfolding|tortuosity|ectasia) of the) (?:thoracic |descending )?aort\w*|"
        r"aort\w* (?:is |are )?(?:tortuous|ectatic|unfolded)",
    ),
    Concept(
        "hilar",
        "hilar",
        OTHER,
        r"(?:lymph)?adenopath\w*|hilar (?:fullness|enlargement|prominence)|"
        r"(?:fullness|enlargement|prominence) of the (?:(?:left|right) )?hil(?:um|a)|"
        r"(?:enlarged|prominent|full) (?:(?:left|right) )?hil(?:um|a|ar)|enlarged (?:hilar |mediastinal )?lymph nodes?",
    ),
    Concept("elevated_hemidiaphragm", "elevated_hemidiaphragm", OTHER, r"elevat\w*|eventration"),
    Concept("calcification", "calcification", OTHER, r"calcifi\w*"),
    # CheXpert's other "no finding" phrases: they rule out No Finding but are not compared.
    Concept(
        "other",
        None,
        OTHER,
        r"thickening|deformit(?:y|ies)|aspiration|contusions?|hemorrhage|hematoma|hypertension|inflam\w*|"
        r"volume loss|bullets?|foreign bod(?:y|ies)|radiopaque",
    ),
    Concept("cardiomegaly", "cardiomegaly", "Cardiomegaly", r"cardiomegaly|cardiac enlargement"),
    Concept(
        "heart",
        "cardiomegaly",
        "Cardiomegaly",
        r"heart(?: size| silhouette| shadow| contours?| borders?)?|"
        r"cardiac (?:size|silhouette|shadow|contours?|borders?|dimensions?)|cardiac(?= and mediastinal)|"
        r"cardiopericardial silhouette",
        descriptor=True,
    ),
    Concept(
        "mediastinum",
        "mediastinal_widening",
        _EC,
        r"(?:cardio-? ?)?mediastin\w*(?: (?:silhouettes?|contours?|size|width|shadow|configuration))?",
        descriptor=True,
    ),
)

# --- cue roles (bit flags) -------------------------------------------------------------------------
NEG = 1 << 0  # forward negation over the rest of the clause: "no X", "without X"
POST_NEG = 1 << 1  # backward negation: "X is not seen", "X has resolved"
PRE_UNC = 1 << 2  # forward uncertainty that outranks negation: "cannot exclude X"
POST_PRE_UNC = 1 << 3  # backward: "X cannot be excluded", "X is not ruled out"
UNC = 1 << 4  # forward uncertainty over the rest of the clause: "possible X", "may represent X"
POST_UNC = 1 << 5  # backward uncertainty: "X is likely", "X is not well seen", "X?"
CONJ_UNC = 1 << 6  # "X or Y", "X versus Y": uncertain for the mentions on both sides
TERM = 1 << 7  # ends a clause: "but", "however", "which", ";"
NORMAL = 1 << 8  # descriptor qualifier: "normal", "within normal limits"
ABNORMAL = 1 << 9  # descriptor qualifier: "enlarged", "large", "widened"
LEFT = 1 << 10
RIGHT = 1 << 11
SEV1 = 1 << 12  # trace, small, mild, minimal
SEV2 = 1 << 13  # moderate
SEV3 = 1 << 14  # large, severe, massive, marked
NEW = 1 << 15
WORSE = 1 << 16
BETTER = 1 << 17
SAME = 1 << 18
COMPARISON = 1 << 19  # mentions a prior study: "compared with", "prior", "interval"

_LATERALITY = LEFT | RIGHT
_SEVERITY = SEV1 | SEV2 | SEV3
_CHANGE = NEW | WORSE | BETTER | SAME
_ATTRIBUTE = _LATERALITY | _SEVERITY | _CHANGE
_QUALIFIER = NORMAL | ABNORMAL

# Each cue phrase with its roles; first match wins at a position, so longer phrases come first.
_CUES: tuple[tuple[str, int], ...] = (
    # Clause terminators.
    (r"with the exception of|aside from|apart from|other than|except", TERM),
    (r"but|however|although|though|which|whereas|while|yet", TERM),
    (r"there (?:is|are|was|were|has been|have been)|and (?:there|a|an)", TERM),
    # Pre-negation uncertainty.
    (
        r"(?:cannot|can ?not|could not|difficult to|unable to) (?:entirely |completely |definitely )?(?:exclude|rule out)",
        PRE_UNC,
    ),
    (
        r"(?:cannot|can ?not|could not) (?:be )?(?:entirely |completely |definitely )?(?:excluded|ruled out)|"
        r"(?:is |are )?not (?:entirely |completely |definitely )?(?:excluded|ruled out)",
        POST_PRE_UNC,
    ),
    # Phrases that contain a negation word but do not negate the finding.
    (
        r"no (?:significant |interval |appreciable |definite )*change|not (?:significantly )?changed|"
        r"without (?:significant |interval )*change|no (?:significant )?(?:increase|decrease)",
        SAME | COMPARISON,
    ),
    (r"not only|gram[- ]negative", 0),
    (r"no longer", POST_NEG | BETTER | COMPARISON),
    (r"no new|without new", NEG | COMPARISON),
    (
        r"not well (?:seen|visuali[sz]ed|evaluated|assessed)|poorly (?:seen|visuali[sz]ed|evaluated|assessed)|"
        r"obscur\w*",
        UNC | POST_UNC,
    ),
    (
        r"(?:(?:is|are|was|were) )?not (?:\w+ )?(?:seen|identified|present|visuali[sz]ed|demonstrated|appreciated|"
        r"evident|noted|detected|apparent|definitely seen)",
        POST_NEG,
    ),
    (
        r"(?:(?:has|have|had) )?(?:since )?(?:resolved|cleared)|(?:has |have )?been removed|absent",
        POST_NEG | BETTER,
    ),
    (r"resolution of|clearing of|removal of", NEG | BETTER),
    (
        r"no|not|without|free of|negative for|clear of|absence of|lack of|rule out|ruled out|neither|nor|never",
        NEG,
    ),
    # Uncertainty.
    (r"or|and/or|versus|vs", CONJ_UNC),
    # Backward only after a copula ("pneumonia is likely"): in "opacity, likely atelectasis" the
    # opacity itself is certain.
    (
        r"(?:is|are|was|were|appears?|seems?) (?:most |more |less )?(?:likely|unlikely|possible|probable|"
        r"questionable|suspected|equivocal|favou?red|considered|doubtful)|(?:may|might|could) be (?:present|seen)",
        POST_UNC,
    ),
    (
        r"possible|possibly|probable|probably|likely|unlikely|questionable|questioned|suspected|suspicious|"
        r"equivocal|indeterminate|presumed|presumably|favou?red|considered|uncertain|doubtful",
        UNC,
    ),
    (
        r"may|might|could|perhaps|suspect|suspicion|question of|concern(?:ing)? for|worrisome|suggest\w*|"
        r"consider|differential|correlat\w*|(?:to )?(?:evaluate|assess) for",
        UNC,
    ),
    (r"borderline", UNC | ABNORMAL),
    # Descriptor qualifiers.
    (
        r"upper (?:limits?|range) of normal|(?:within|at) (?:the )?(?:normal limits|limits of normal)|top[- ]normal|"
        r"normal|unremarkable|wnl",
        NORMAL,
    ),
    (
        r"enlarg(?:ed|ement)|widen(?:ed|ing)|wide|prominen(?:t|ce)|big|increased(?! (?:in|since|from|compared))",
        ABNORMAL,
    ),
    (r"enlarging|larger", ABNORMAL | WORSE | COMPARISON),
    # Severity.
    (r"small(?:-| to )moderate", SEV1 | SEV2),
    (r"moderate(?:-| to )(?:large|severe)", SEV2 | SEV3),
    (r"trace|tiny|minimal|minimally|small|mild|mildly|slight|slightly|subtle|minor|trivial", SEV1),
    (r"moderate|moderately|moderate-sized", SEV2),
    (r"large|severe|severely|massive|marked|markedly|extensive|huge", SEV3 | ABNORMAL),
    # Laterality.
    (r"bilateral|bilaterally|both|bibasi?lar|bibasal|biapical|bihilar", LEFT | RIGHT),
    (r"left-sided|left|lt", LEFT),
    (r"right-sided|right|rt", RIGHT),
    # Change since a prior study.
    (r"new|newly|interval (?:development|appearance)|recurr\w*", NEW | COMPARISON),
    (
        r"increas(?:ing|ed in|ed since|ed from|ed compared|e in)|(?:has|have) increased|interval increase|"
        r"worse\w*|worsen\w*|progress\w*",
        WORSE | COMPARISON,
    ),
    (
        r"decreas(?:ing|ed in|ed since|ed from|ed compared|e in)|(?:has|have) decreased|interval decrease|"
        r"improv\w*|smaller|resolving|diminish\w*|regress\w*",
        BETTER | COMPARISON,
    ),
    (
        r"unchanged|stable|persist\w*|again (?:seen|noted|demonstrated|identified)|redemonstrat\w*|"
        r"remain\w*|continued|similar|re-demonstrat\w*",
        SAME | COMPARISON,
    ),
    (r"compared (?:to|with)|comparison|prior|previous\w*|interval\w*|since", COMPARISON),
)


_PREFIX = 4  # phrases are dispatched on the first four characters of a word
_DISPATCH_CACHE_LIMIT = 50_000


def _prefixes(pattern: str) -> frozenset[str] | None:
    """The first four characters a match of ``pattern`` can start with; None if the parse is not understood.

    A shorter entry means a match can end after it. Uses the standard library's
    regex parser, so a phrase is never skipped: anything it cannot analyse falls back to None
    (try the phrase at every word).
    """
    try:
        return frozenset(_sequence_prefixes(list(_re_parser.parse(pattern)), _PREFIX))
    except (ValueError, TypeError, AttributeError, IndexError):
        return None


def _sequence_prefixes(items: list, limit: int) -> set[str]:
    done: set[str] = set()
    partial = {""}
    for op, argument in items:
        following: set[str] = set()
        for prefix in partial:
            for extension in _op_prefixes(op, argument, limit - len(prefix)):
                (done if len(prefix) + len(extension) == limit else following).add(prefix + extension)
        partial = following
        if not partial:
            break
    return done | partial


def _op_prefixes(op: object, argument: Any, limit: int) -> set[str]:
    constants = _re_constants
    if op is constants.LITERAL:
        return {chr(argument)}
    if op is constants.IN:
        characters: set[str] = set()
        for kind, value in argument:
            if kind is constants.LITERAL:
                characters.add(chr(value))
            elif kind is constants.RANGE:
                characters.update(chr(code) for code in range(value[0], value[1] + 1))
            elif kind is constants.CATEGORY and value is constants.CATEGORY_WORD:
                characters.update(_WORD_CHARACTERS)
            else:
                raise ValueError(f"unhandled character class {kind}")
        return characters
    if op is constants.SUBPATTERN:
        return _sequence_prefixes(list(argument[3]), limit)
    if op is constants.BRANCH:
        return set().union(*(_sequence_prefixes(list(branch), limit) for branch in argument[1]))
    if op in (constants.MAX_REPEAT, constants.MIN_REPEAT):
        low, high, body = argument
        counts = range(low, min(high, low + limit) + 1)
        return set().union(*(_sequence_prefixes(list(body) * count, limit) for count in counts))
    if op in (constants.ASSERT, constants.ASSERT_NOT, constants.AT):
        return {""}
    raise ValueError(f"unhandled regex op {op}")


_WORD_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"


class _PhraseScanner:
    """Finds phrases (regexes) at word starts, the first phrase in table order winning at a position.

    Equivalent to one big alternation scanned with ``finditer``, but at each word only the phrases
    that can start with its first four characters are tried (one regex per distinct four-character
    start, built on first sight), which makes scanning several times faster.
    """

    def __init__(self, patterns: list[str]) -> None:
        self._patterns = patterns
        self._prefixes = [_prefixes(pattern) for pattern in patterns]
        self._dispatch: dict[str, re.Pattern[str] | None] = {}  # four-letter word start -> its regex
        self._compiled: dict[tuple[int, ...], re.Pattern[str]] = {}  # one regex per distinct phrase set
        self._index = {f"g{index}": index for index in range(len(patterns))}

    def _regex_for(self, start: str) -> re.Pattern[str] | None:
        candidates = [
            index
            for index, prefixes in enumerate(self._prefixes)
            if prefixes is None
            or any(
                start == prefix if len(prefix) == _PREFIX else start.startswith(prefix) for prefix in prefixes
            )
        ]
        key = tuple(candidates)
        regex = self._compiled.get(key)
        if regex is None and candidates:
            # Each phrase must end at a word end; the scan only tries word starts.
            regex = self._compiled[key] = re.compile(
                "|".join(f"(?P<g{i}>(?:{self._patterns[i]})(?![\\w-]))" for i in candidates)
            )
        if len(self._dispatch) < _DISPATCH_CACHE_LIMIT:
            self._dispatch[start] = regex
        return regex

    def scan(self, text: str, word_starts: list[int]) -> list[tuple[int, int, int]]:
        """``(start, end, phrase index)`` of non-overlapping phrases, left to right."""
        found = []
        covered = 0
        dispatch = self._dispatch
        index = self._index
        for position in word_starts:
            if position < covered:
                continue
            start = text[position : position + _PREFIX]
            regex = dispatch[start] if start in dispatch else self._regex_for(start)
            if regex is None:
                continue
            match = regex.match(text, position)
            if match is not None:
                found.append((position, match.end(), index[match.lastgroup]))  # type: ignore[index]
                covered = match.end()
        return found


_MENTIONS = _PhraseScanner([concept.pattern for concept in CONCEPTS])
_CUE_SCANNER = _PhraseScanner([pattern for pattern, _ in _CUES])
_CUE_ROLES = [roles for _, roles in _CUES]
# An attribute word right after one of these modifies the mention before it ("opacity in the left base").
_AFTER_PREPOSITION = re.compile(
    r"\b(?:in|at|on|of|within|involving|throughout|over|along|from|overlying)\s+(?:the\s+)?$"
)
# Text between two mentions that makes them one list ("effusion and pneumothorax have resolved").
_LIST_JOIN = re.compile(r"[\s,]*(?:(?:and|or|and/or|nor)\b)?[\s,]*(?:[\w-]+\s+){0,3}$")

# At most two words, none a preposition or conjunction, between an adjective and the noun it modifies.
_MODIFIER_GAP = re.compile(r"\s+(?:(?!(?:with|and|or|of|in|to|for|at|on|by|from)\b)[\w-]+\s+){0,2}")

# How far (characters) backward cues reach after a mention, and attribute words before/after one.
_BACKWARD_REACH = 40
_ATTACH_FORWARD = 35
_ATTACH_BACKWARD = 40
_QUALIFIER_BEFORE = 30
_QUALIFIER_AFTER = 60


class Mention(NamedTuple):
    """One finding mentioned in a report, with everything the rules read from its sentence."""

    concept: Concept
    status: int
    laterality: frozenset[str]
    severity: frozenset[int]
    change: frozenset[str]
    start: int
    end: int
    sentence: str

    @property
    def present(self) -> bool:
        """Positive or uncertain: the report says, or does not rule out, that the finding is there."""
        return self.status != NEGATIVE


@dataclass(frozen=True, slots=True)
class ReportFindings:
    """Every mention in one report, and the first sentence that compares with a prior study."""

    text: str
    mentions: tuple[Mention, ...]
    #: The first sentence that refers to a prior study or a change, or None when none does.
    comparison_sentence: str | None

    @property
    def compares_with_prior(self) -> bool:
        return self.comparison_sentence is not None


def normalize_report(text: str) -> str:
    """Lower-cased report with "vs.", "e.g.", "i.e." kept inside their sentence (offsets refer to this text)."""
    return text.lower().replace("vs.", "vs ").replace("e.g.", "eg ").replace("i.e.", "ie ")


# Words (phrases start at a letter that follows no letter, digit or hyphen) and punctuation: sentence
# ends as :func:`reward_service.text.sentences.split_sentences` splits ("." "!" "?" before whitespace,
# line breaks), ";" and ":" ending a clause, "?" marking uncertainty.
_WORDS = re.compile(r"[\w-]+")
_PUNCTUATION = re.compile(r"[.!?;:\n]")


@dataclass(slots=True)
class _Span:
    """A mention being labelled; ``claim_*`` include a descriptor's qualifier ("heart ... enlarged")."""

    concept: Concept
    start: int
    end: int
    claim_start: int
    claim_end: int
    qualifier: int  # roles of a descriptor's qualifier
    clause_start: int
    clause_end: int
    head: int  # forward cues count up to here: the mention, or a descriptor's qualifier after it


# A qualifier may end up to _QUALIFIER_BEFORE characters before a descriptor; no cue phrase is longer than this.
_LONGEST_CUE = 30


@lru_cache(maxsize=8192)
def extract_findings(text: str) -> ReportFindings:
    """All finding mentions of a report with status, laterality, severity and change.

    Cached by text: in RL every candidate of a group shares one reference, so references are
    extracted once per group.
    """
    text = normalize_report(text)
    word_starts, sentence_ends, punctuation = _layout(text)
    cues = [(start, end, _CUE_ROLES[index]) for start, end, index in _CUE_SCANNER.scan(text, word_starts)]
    if punctuation:
        cues = sorted(cues + punctuation)
    sentences: dict[int, str] = {}

    def sentence_of(position: int) -> str:
        index = bisect_right(sentence_ends, position)
        sentence = sentences.get(index)
        if sentence is None:  # one copy per sentence, however many mentions it holds
            start = sentence_ends[index - 1] if index else 0
            sentence = sentences[index] = text[start : sentence_ends[index]].strip()
        return sentence

    comparison = next((start for start, _, roles in cues if roles & (COMPARISON | _CHANGE)), None)
    comparison_sentence = None if comparison is None else sentence_of(comparison)
    spans = _spans(text, _MENTIONS.scan(text, word_starts), cues, sentence_ends)
    if not spans:
        return ReportFindings(text, (), comparison_sentence)
    cue_starts = [start for start, _, _ in cues]
    backward = _backward_roles(text, spans, cues, cue_starts)
    attributes = [0] * len(spans)
    starts = [span.start for span in spans]
    for cue_start, cue_end, roles in cues:
        if roles & _ATTRIBUTE:
            owner = _attribute_owner(text, spans, starts, cue_start, cue_end)
            if owner is not None:
                attributes[owner] |= roles
    mentions = []
    for span, status, found in zip(
        spans, _statuses(spans, cues, cue_starts, backward), attributes, strict=True
    ):
        mentions.append(
            Mention(
                span.concept,
                status,
                _LATERALITY_NAMES[found & _LATERALITY],
                _severity(found & _SEVERITY),
                _change(found & _CHANGE),
                span.claim_start,
                span.claim_end,
                sentence_of(span.start),
            )
        )
    return ReportFindings(text, tuple(mentions), comparison_sentence)


def _layout(text: str) -> tuple[list[int], list[int], list[tuple[int, int, int]]]:
    """Word starts, sentence ends (plus a sentinel past the end) and punctuation cues of ``text``."""
    word_starts = [match.start() for match in _WORDS.finditer(text) if "a" <= text[match.start()] <= "z"]
    sentence_ends: list[int] = []
    punctuation: list[tuple[int, int, int]] = []
    for match in _PUNCTUATION.finditer(text):
        position = match.start()
        character = text[position]
        if character in ";:":
            punctuation.append((position, position + 1, TERM))
            continue
        if character == "?":
            punctuation.append((position, position + 1, UNC | POST_UNC))
        if character == "\n" or text[position + 1 : position + 2].isspace():
            sentence_ends.append(position + 1)
    sentence_ends.append(len(text) + 1)
    return word_starts, sentence_ends, punctuation


def _spans(
    text: str,
    found: list[tuple[int, int, int]],
    cues: list[tuple[int, int, int]],
    sentence_ends: list[int],
) -> list[_Span]:
    """The mentions with their clauses; descriptors only where their clause qualifies them."""
    # Clauses end at sentence ends and at terminator cues.
    breaks = sorted(sentence_ends + [start for start, _, roles in cues if roles & TERM])
    break_ends = sorted(sentence_ends + [end for _, end, roles in cues if roles & TERM])
    cue_starts = [start for start, _, _ in cues]
    finding_starts = [start for start, _, index in found if not CONCEPTS[index].descriptor]
    spans = []
    for start, end, index in found:
        concept = CONCEPTS[index]
        if concept.key == "unmention":
            continue
        before = bisect_right(break_ends, start)
        clause_start = break_ends[before - 1] if before else 0
        clause_end = breaks[bisect_right(breaks, start)]
        if not concept.descriptor:
            spans.append(_Span(concept, start, end, start, end, 0, clause_start, clause_end, start))
            continue
        # The nearest qualifier in the clause wins.
        best = None
        low = bisect_left(cue_starts, max(clause_start, start - _QUALIFIER_BEFORE - _LONGEST_CUE))
        high = bisect_right(cue_starts, min(clause_end, end + _QUALIFIER_AFTER))
        for cue_start, cue_end, roles in cues[low:high]:
            if not roles & _QUALIFIER or cue_start < clause_start or cue_end > clause_end:
                continue
            if start - _QUALIFIER_BEFORE <= cue_end <= start:
                distance = start - cue_end
            elif end <= cue_start:
                # "... mediastinum, secondary to a large hernia": the word modifies the next finding.
                following = bisect_left(finding_starts, cue_end)
                if (
                    following < len(finding_starts)
                    and finding_starts[following] < clause_end
                    and _MODIFIER_GAP.fullmatch(text, cue_end, finding_starts[following])
                ):
                    continue
                distance = cue_start - end
            else:
                continue
            if best is None or distance < best[0]:
                best = (distance, cue_start, cue_end, roles)
        if best is not None:
            _, cue_start, cue_end, roles = best
            head = cue_start if cue_start > start else start
            spans.append(
                _Span(
                    concept,
                    start,
                    end,
                    min(start, cue_start),
                    max(end, cue_end),
                    roles,
                    clause_start,
                    clause_end,
                    head,
                )
            )
    return spans


def _backward_roles(
    text: str, spans: list[_Span], cues: list[tuple[int, int, int]], cue_starts: list[int]
) -> list[int]:
    """Roles of the cues after each mention, up to the next one, shared along "X and Y" lists."""
    backward = [0] * len(spans)
    for index in range(len(spans) - 1, -1, -1):
        span = spans[index]
        head = span.claim_end
        limit = min(span.clause_end, head + _BACKWARD_REACH)
        following = spans[index + 1] if index + 1 < len(spans) else None
        if following is not None and following.start < limit:
            limit = following.start
        roles = 0
        for cue_index in range(bisect_left(cue_starts, head), bisect_left(cue_starts, limit)):
            roles |= cues[cue_index][2]
        if (
            following is not None
            and following.clause_start == span.clause_start
            and _LIST_JOIN.match(text, head, following.start)
        ):
            roles |= backward[index + 1] & (POST_NEG | POST_PRE_UNC | POST_UNC)
        backward[index] = roles
    return backward


def _statuses(
    spans: list[_Span], cues: list[tuple[int, int, int]], cue_starts: list[int], backward: list[int]
) -> list[int]:
    """Each mention's status from the cues before it in its clause and the backward cues after it."""
    statuses = []
    previous_end = previous_clause = -1
    forward = 0  # roles of the cues from the clause start up to the current mention
    clause_cue = next_cue = 0
    for span, after in zip(spans, backward, strict=True):
        if previous_clause != span.clause_start:
            forward = 0
            clause_cue = next_cue = bisect_left(cue_starts, span.clause_start)
        adjacent_from = previous_end if previous_clause == span.clause_start else span.clause_start
        stop = bisect_left(cue_starts, span.head)
        while next_cue < stop:
            forward |= cues[next_cue][2]
            next_cue += 1
        before = forward
        if stop < next_cue:  # the previous descriptor's qualifier lies beyond this mention
            before = 0
            for cue_index in range(clause_cue, stop):
                before |= cues[cue_index][2]
        adjacent = 0  # cues since the previous mention: "X or Y"
        for cue_index in range(bisect_left(cue_starts, adjacent_from), stop):
            adjacent |= cues[cue_index][2]
        previous_end, previous_clause = span.claim_end, span.clause_start
        statuses.append(_status(span.concept, span.qualifier, before, adjacent, after))
    return statuses


def _status(concept: Concept, qualifier: int, forward: int, adjacent: int, backward: int) -> int:
    if qualifier & NORMAL:
        return NEGATIVE
    if forward & PRE_UNC or backward & POST_PRE_UNC:
        return UNCERTAIN
    if forward & NEG or backward & POST_NEG or (concept.hedged and backward & NORMAL):
        return NEGATIVE
    if (
        concept.hedged
        or qualifier & UNC
        or forward & UNC
        or adjacent & CONJ_UNC
        or backward & (POST_UNC | CONJ_UNC)
    ):
        return UNCERTAIN
    return POSITIVE


def _attribute_owner(text: str, spans: list[_Span], starts: list[int], start: int, end: int) -> int | None:
    """The mention a laterality / severity / change word at ``start:end`` belongs to, if any."""
    after = bisect_right(starts, start)
    before = after - 1
    if before >= 0 and start < spans[before].claim_end:
        return before  # the word is part of the mention's own phrase or its qualifier
    forward = (
        after
        if after < len(spans)
        and spans[after].clause_start <= start
        and spans[after].start - end <= _ATTACH_FORWARD
        else None
    )
    backward = (
        before
        if before >= 0
        and spans[before].clause_end >= end
        and start - spans[before].claim_end <= _ATTACH_BACKWARD
        else None
    )
    if backward is not None and (
        forward is None or _AFTER_PREPOSITION.search(text, max(0, start - 20), start)
    ):
        return backward
    return forward


_LATERALITY_NAMES = {
    0: frozenset(),
    LEFT: frozenset({"left"}),
    RIGHT: frozenset({"right"}),
    LEFT | RIGHT: frozenset({"left", "right"}),
}
_SEVERITY_LEVELS = ((SEV1, 1), (SEV2, 2), (SEV3, 3))
_CHANGE_NAMES = ((NEW, "new"), (WORSE, "worse"), (BETTER, "better"), (SAME, "same"))


@lru_cache(maxsize=64)
def _severity(roles: int) -> frozenset[int]:
    return frozenset(level for flag, level in _SEVERITY_LEVELS if roles & flag)


@lru_cache(maxsize=64)
def _change(roles: int) -> frozenset[str]:
    return frozenset(name for flag, name in _CHANGE_NAMES if roles & flag)

"""The playground in a real browser: Debian's chromium, driven by Playwright, against a real uvicorn server.

Every number and highlight the page shows is checked against ``POST /v1/score`` for the same input.
Playwright is pointed at the system chromium (``apt-get install chromium``; `.ci/run` installs it), so
nothing is downloaded. Screenshots go to the test's temporary folder, and also to the folder named by
``UNIRG_SCREENSHOTS_DIR`` when it is set (``UNIRG_SCREENSHOTS_DIR=docs`` refreshes docs/playground.md's).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from judge_server import JudgeServer
from live_service import ServiceProcess, free_port, launch_service

from reward_service.api import playground

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"Debian's chromium is not installed ({CHROMIUM} is absent): apt-get install chromium",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

VIEWPORT = {"width": 1440, "height": 900}
JUDGE_PROFILE = "judge-chexprompt"
REFERENCE = "Findings: Small left pleural effusion. No pneumothorax. Heart size is normal."
# The emoji sits outside the Basic Multilingual Plane: JavaScript counts it as two UTF-16 units, Python
# as one code point, so a highlight that mixed the two would land one character off.
CANDIDATE = "🙂 Findings: Large right pleural effusion. There is a pneumothorax. Heart size is normal."
# A degenerate candidate: the report guard flags it and, as the default profile's gate, cuts its reward.
LOOPING = "No pneumothorax. No pneumothorax. No pneumothorax. Heart size is"

# Everything the page shows for one candidate under one profile, read from the DOM.
READ_COLUMN = """
([candidate, profile]) => {
  const column = document.querySelector(
    `.candidate-result[data-candidate="${candidate}"] .profile-result[data-profile="${profile}"]`);
  if (!column) return null;
  const components = {};
  for (const row of column.querySelectorAll("table.components tbody tr")) {
    components[row.dataset.component] = Object.fromEntries(
      [...row.querySelectorAll("[data-field]")].map((cell) => [cell.dataset.field, cell.dataset.value]));
  }
  const marks = {reference: {}, candidate: {}};
  for (const box of column.querySelectorAll(".report[data-side]")) {
    for (const mark of box.querySelectorAll("mark")) {
      for (const token of mark.dataset.errors.split(" ")) {
        (marks[box.dataset.side][token] ||= []).push([+mark.dataset.start, +mark.dataset.end, mark.textContent]);
      }
    }
  }
  const labels = {};
  for (const row of column.querySelectorAll("table.labels tbody tr")) {
    labels[row.dataset.observation] = [
      row.querySelector("[data-side=reference]").dataset.value,
      row.querySelector("[data-side=candidate]").dataset.value];
  }
  const judge = column.querySelector(".judge-block [data-field=n_significant]");
  const texts = Object.fromEntries([...column.querySelectorAll(".report[data-side]")].map(
    (box) => [box.dataset.side, box.textContent]));
  return {
    reward: column.querySelector("[data-field=reward]")?.dataset.value,
    gate: column.querySelector("[data-field=gate]")?.dataset.value ?? null,
    components, marks, labels, texts,
    costs: [...column.querySelectorAll("table.errors [data-field=cost]")].map((cell) => cell.dataset.value),
    flags: [...column.querySelectorAll(".flag")].map((flag) => flag.dataset.flag),
    judge: judge ? judge.dataset.value : null,
    failure: column.querySelector(".failure")?.textContent ?? null,
  };
}
"""


@pytest.fixture(scope="module")
def judge() -> Iterator[JudgeServer]:
    with JudgeServer(free_port()) as server:
        yield server


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, judge: JudgeServer) -> Iterator[ServiceProcess]:
    """The default profile and the judge alone (against the test judge), so two profiles can be compared."""
    process = launch_service(
        tmp_path_factory.mktemp("playground-service"),
        extra_profiles=[JUDGE_PROFILE],
        env={"UNIRG_JUDGE_BASE_URL": judge.base_url, "UNIRG_JUDGE_MODEL": "test-judge"},
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    script_errors: list[str] = []
    opened.on("pageerror", lambda error: script_errors.append(str(error)))
    yield opened
    context.close()
    assert not script_errors, f"the page raised: {script_errors}"


@pytest.fixture
def screenshots(tmp_path: Path) -> list[Path]:
    """Folders that screenshots go to: the test's own, and UNIRG_SCREENSHOTS_DIR when set."""
    folders = [tmp_path]
    if os.environ.get("UNIRG_SCREENSHOTS_DIR"):
        folders.append(Path(os.environ["UNIRG_SCREENSHOTS_DIR"]))
    return folders


def save(shot: bytes, name: str, folders: list[Path]) -> None:
    assert shot.startswith(b"\x89PNG")
    for folder in folders:
        (folder / name).write_bytes(shot)


def api_score(base_url: str, profile: str | None, reference: str, candidates: list[str]) -> httpx.Response:
    items = [
        {"id": f"candidate-{n + 1}", "reference": reference, "candidate": c} for n, c in enumerate(candidates)
    ]
    return httpx.post(
        f"{base_url}/v1/score",
        json={"profile": profile, "items": items, "return_details": True},
        timeout=60,
    )


def shown_number(value: str | None) -> float | None:
    assert value is not None
    return None if value == "null" else float(value)


def merged(spans: list[list[int]] | list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for start, end in sorted((s, e) for s, e in spans if e > s):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(start, end) for start, end in out]


def expected_spans(error: dict[str, Any], side: str, text: str) -> list[tuple[int, int]]:
    """The service's offsets; where it gives none, where its evidence sentence stands in the text."""
    if f"{side}_spans" in error:
        return merged(error[f"{side}_spans"])
    evidence = error[f"{side}_evidence"]
    at = text.lower().find(evidence.lower()) if evidence else -1
    return [] if at < 0 else [(at, at + len(evidence))]


def read_column(page: Page, candidate: int, profile: str) -> dict[str, Any]:
    shown = page.evaluate(READ_COLUMN, [candidate, profile])
    assert shown is not None, f"no result for candidate {candidate} under {profile}"
    return shown


def assert_column_matches(shown: dict[str, Any], item: dict[str, Any], reference: str, candidate: str) -> int:
    """Every number, highlight, label and flag of one column against the API's item; returns highlights seen."""
    assert shown["failure"] is None
    assert shown_number(shown["reward"]) == item["reward"]
    if shown["gate"] is not None:
        assert shown_number(shown["gate"]) == item["gate"]
    assert set(shown["components"]) == set(item["components"])
    for key, component in item["components"].items():
        cells = shown["components"][key]
        assert shown_number(cells["score"]) == component["score"], key
        assert shown_number(cells["weight"]) == component["weight"], key
        assert shown_number(cells["contribution"]) == component["contribution"], key
    highlights = 0
    clinical = item["components"].get("clinical_errors")
    if clinical is not None:
        errors = clinical["details"]["errors"]
        assert [shown_number(cost) for cost in shown["costs"]] == [error["weight"] for error in errors]
        assert shown["texts"] == {"reference": reference, "candidate": candidate}
        for side, text in (("reference", reference), ("candidate", candidate)):
            tokens = set(shown["marks"][side])
            assert tokens <= {f"clinical_errors:{n}" for n in range(len(errors))}
            for index, error in enumerate(errors):
                marks = shown["marks"][side].get(f"clinical_errors:{index}", [])
                for start, end, mark_text in marks:
                    assert mark_text == text[start:end]  # offsets are Python string indices
                assert merged([(start, end) for start, end, _ in marks]) == expected_spans(error, side, text)
                highlights += bool(marks)
    labels = item["components"].get("chexpert_labels")
    if labels is not None:
        details = labels["details"]
        assert shown["labels"] == {
            name: [
                str(details["reference_labels"][name]).replace("None", "null"),
                str(details["candidate_labels"][name]).replace("None", "null"),
            ]
            for name in details["reference_labels"]
        }
    guard = item["components"].get("report_guard")
    if guard is not None:
        assert shown["flags"] == guard["details"]["flags"]
    judge = item["components"].get("judge")
    if judge is not None and judge["score"] is not None:
        assert int(shown["judge"]) == judge["details"]["n_significant"]
    return highlights


def tab_to(page: Page, selector: str, limit: int = 30) -> None:
    """Press Tab until ``selector`` has the focus, as a keyboard user would."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def scoring_run(page: Page) -> str | None:
    """The number of the last scoring the page finished (None before the first)."""
    return page.locator("#status").get_attribute("data-done")


def wait_scored(page: Page, previous: str | None = None) -> None:
    """Wait until the page finished a scoring after run ``previous``."""
    page.wait_for_function(
        "(previous) => { const done = document.querySelector('#status').dataset.done;"
        " return done !== undefined && done !== previous; }",
        arg=previous,
        timeout=30_000,
    )


def test_root_redirects_to_the_page(page: Page, service: ServiceProcess) -> None:
    page.goto(service.base_url + "/")
    assert urlsplit(page.url).path == "/ui/"
    expect(page.locator("h1")).to_have_text("UniRG reward playground")
    expect(page.locator("body[data-ready]")).to_have_count(1)
    # Loaded profiles are selectable; shipped ones that are not loaded are listed but disabled.
    expect(page.locator("#profile option[value='default']")).to_be_enabled()
    expect(page.locator(f"#compare option[value='{JUDGE_PROFILE}']")).to_be_enabled()
    expect(page.locator("#profile option[value='unirg-stage1']")).to_be_disabled()


def test_keyboard_scoring_matches_the_api(page: Page, service: ServiceProcess) -> None:
    page.goto(service.base_url + "/ui/")
    expect(page.locator("body[data-ready]")).to_have_count(1)
    tab_to(page, "#reference")
    page.keyboard.type(REFERENCE)
    tab_to(page, "#candidate-1")
    page.keyboard.type(CANDIDATE)
    tab_to(page, "#add-candidate")
    page.keyboard.press("Enter")  # adds a candidate and moves the focus into it
    expect(page.locator("#candidate-2")).to_be_focused()
    page.keyboard.type(LOOPING)
    page.keyboard.press("Control+Enter")
    wait_scored(page)

    response = api_score(service.base_url, None, REFERENCE, [CANDIDATE, LOOPING])
    assert response.status_code == 200, response.text
    item, looping = response.json()["items"]
    shown = read_column(page, 1, "default")
    highlights = assert_column_matches(shown, item, REFERENCE, CANDIDATE)
    kinds = {error["kind"] for error in item["components"]["clinical_errors"]["details"]["errors"]}
    assert {"wrong_location", "false_finding"} <= kinds  # the pair makes the errors it was written for
    assert highlights >= 2
    shown_looping = read_column(page, 2, "default")
    assert_column_matches(shown_looping, looping, REFERENCE, LOOPING)
    assert shown_looping["flags"] and shown_number(shown_looping["gate"]) < 1  # flagged, and gated

    # Focusing an error's button (Tab) lights up its highlights and its row.
    first_error = page.locator(".profile-result table.errors button.locate").first
    tab_to(page, ".profile-result table.errors button.locate")
    expect(first_error).to_be_focused()
    expect(page.locator("mark.active").first).to_be_visible()
    expect(page.locator("table.errors tr.active")).to_have_count(1)

    # The state is in the URL, never the key: the same link reproduces the same scores.
    state = parse_qs(urlsplit(page.url).fragment)
    assert state == {"reference": [REFERENCE], "candidate": [CANDIDATE, LOOPING]}
    again = page.context.new_page()
    again.goto(page.url)
    wait_scored(again)
    assert read_column(again, 1, "default") == shown
    assert read_column(again, 2, "default") == shown_looping


def test_example_compared_under_two_profiles_matches_the_api(
    page: Page, service: ServiceProcess, screenshots: list[Path]
) -> None:
    page.goto(service.base_url + "/ui/")
    expect(page.locator("body[data-ready]")).to_have_count(1)
    examples = httpx.get(f"{service.base_url}/ui/examples", timeout=30).json()["examples"]
    example = examples[0]
    page.select_option("#example", example["id"])
    expect(page.locator("#candidates textarea")).to_have_count(len(example["candidates"]))
    page.click("#score")
    wait_scored(page)
    # One candidate under one profile, its first error pointed at: what docs/playground.md shows first.
    side_swap = next(n for n, c in enumerate(example["candidates"], 1) if c["kind"] == "side_swap")
    result = page.locator(f".candidate-result[data-candidate='{side_swap}']")
    result.locator("table.errors button.locate").first.focus()
    save(result.screenshot(), "playground-errors.png", screenshots)

    page.select_option("#compare", JUDGE_PROFILE)
    previous = scoring_run(page)
    page.click("#score")
    wait_scored(page, previous)
    expect(page.locator(".columns.compare")).to_have_count(len(example["candidates"]))

    reference = example["reference"]
    candidates = [candidate["text"] for candidate in example["candidates"]]
    highlights = 0
    for profile in ("default", JUDGE_PROFILE):
        response = api_score(service.base_url, profile, reference, candidates)
        assert response.status_code == 200, response.text
        for index, (item, candidate) in enumerate(zip(response.json()["items"], candidates, strict=True)):
            shown = read_column(page, index + 1, profile)
            highlights += assert_column_matches(shown, item, reference, candidate)
            if profile == JUDGE_PROFILE:
                assert shown["judge"] is not None  # the verdict is on the page
    assert highlights >= 4  # every variant but the identical copy and the paraphrase makes an error
    negation_flip = next(n for n, c in enumerate(example["candidates"], 1) if c["kind"] == "negation_flip")
    page.locator("#results").evaluate(
        "(pane, n) => { pane.scrollTop = pane.querySelector(`[data-candidate='${n}']`).offsetTop - pane.offsetTop; }",
        negation_flip,
    )
    save(page.screenshot(), "playground-compare.png", screenshots)

    state = parse_qs(urlsplit(page.url).fragment)
    assert state["example"] == [example["id"]] and state["compare"] == [JUDGE_PROFILE]
    assert state["candidate"] == candidates


def test_a_failed_request_shows_the_service_message(page: Page, service: ServiceProcess) -> None:
    page.goto(f"{service.base_url}/ui/#profile=no-such-profile&reference=Clear+lungs.&candidate=Clear+lungs.")
    wait_scored(page)
    response = api_score(service.base_url, "no-such-profile", "Clear lungs.", ["Clear lungs."])
    assert response.status_code == 404
    failure = read_column(page, 1, "no-such-profile")["failure"]
    assert failure == f"POST /v1/score with profile no-such-profile answered 404: {response.json()['detail']}"
    expect(page.locator(".profile-result .failure[role=alert]")).to_be_visible()


MISSING_KEY = "this service needs an API key: send the key as the header `Authorization: Bearer <key>`"
INVALID_KEY = "the API key is not accepted by this service"


def test_asks_for_an_api_key_on_401_and_sends_it_as_a_bearer_header(
    page: Page, service: ServiceProcess
) -> None:
    """A key check in front of the service answers 401 as the service's API keys (issue 12) do.

    Like the service's own check, it lets the page and its assets through (a browser cannot send a
    key when it opens a page) and refuses every other request without the key.
    """
    key = "playground-test-key"
    seen: list[str | None] = []

    def check_key(route: Any) -> None:
        path = urlsplit(route.request.url).path
        if path in playground.PUBLIC_PATHS or path.startswith(playground.PUBLIC_PREFIXES):
            route.continue_()
            return
        authorization = route.request.headers.get("authorization")
        seen.append(authorization)
        if authorization == f"Bearer {key}":
            route.continue_()
        else:
            route.fulfill(status=401, json={"detail": MISSING_KEY if authorization is None else INVALID_KEY})

    page.route("**/*", check_key)
    page.goto(f"{service.base_url}/#reference=Clear+lungs.&candidate=Small+right+pneumothorax.")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#key-message")).to_contain_text(MISSING_KEY)
    expect(page.locator("#key-input")).to_be_focused()
    page.keyboard.type("wrong-key")
    page.keyboard.press("Enter")
    expect(page.locator("#key-message")).to_contain_text(f"The service refused that key: {INVALID_KEY}")
    page.locator("#key-input").fill(key)
    page.keyboard.press("Enter")
    wait_scored(page)
    expect(dialog).to_be_hidden()
    shown = read_column(page, 1, "default")
    assert shown["failure"] is None and shown_number(shown["reward"]) is not None
    assert seen[0] is None and "Bearer wrong-key" in seen and seen[-1] == f"Bearer {key}"
    assert page.evaluate("sessionStorage.getItem('unirg.apiKey')") == key
    assert key not in page.url
    expect(page.locator("#forget-key")).to_be_visible()
    expect(page.locator("#profile option[value='default']")).to_be_enabled()  # the profiles came through

    # Cancelling the prompt leaves the service's message on the page rather than a blank pane.
    page.click("#forget-key")
    previous = scoring_run(page)
    page.click("#score")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    wait_scored(page, previous)
    assert read_column(page, 1, "service default")["failure"] == (
        f"POST /v1/score with profile service default answered 401: {MISSING_KEY}"
    )


def test_fits_a_laptop_screen(browser: Browser, service: ServiceProcess) -> None:
    """At 1366x768, two profiles side by side need no sideways scrolling, and the controls stay in view."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    try:
        page.goto(service.base_url + "/ui/")
        expect(page.locator("body[data-ready]")).to_have_count(1)
        page.select_option("#example", index=1)
        page.select_option("#compare", JUDGE_PROFILE)
        page.click("#score")
        wait_scored(page)
        expect(page.locator(".columns.compare").first).to_be_visible()
        overflow = page.evaluate(
            "() => [document.documentElement, ...document.querySelectorAll('.inputs, .results')]"
            ".map((node) => node.scrollWidth - node.clientWidth)"
        )
        assert max(overflow) <= 0, overflow
        for control in ("#profile", "#compare", "#example", "#score", "#reference"):
            box = page.locator(control).bounding_box()
            assert box is not None and box["y"] + box["height"] <= 768, control
    finally:
        context.close()

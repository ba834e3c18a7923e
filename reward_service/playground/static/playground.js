// The UniRG reward playground. It scores through POST /v1/score like any client and keeps the whole
// page state in the URL hash (never the API key), so a link reproduces what was on screen.
"use strict";

const API = {
  profiles: "../v1/profiles",
  profile: (name) => `../v1/profiles/${encodeURIComponent(name)}`,
  score: "../v1/score",
  examples: "examples",
};
const MAX_CANDIDATES = 8;
const KEY_STORAGE = "unirg.apiKey";
const CHEXPERT_VALUES = { 1: "positive", 0: "negative", "-1": "uncertain" };
const CATEGORY_NAMES = {
  a: "false finding",
  b: "missed finding",
  c: "wrong location",
  d: "wrong severity",
  e: "false comparison",
  f: "omitted comparison",
};

const $ = (selector, root = document) => root.querySelector(selector);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function formatNumber(value, digits = 3) {
  if (value === null || value === undefined) return "null";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

// ---------------------------------------------------------------------------------------------
// Talking to the service: the service's own message on failure; a key asked for on 401.

class ServiceError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function serviceMessage(body, text, response) {
  if (body && typeof body.message === "string") return body.message;
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
  }
  return text.trim() || `${response.status} ${response.statusText}`;
}

let keyPrompt = null; // one dialog at a time, however many requests were refused together

function askForKey(message, rejectedKey) {
  if (keyPrompt) return keyPrompt;
  const dialog = $("#key-dialog");
  const input = $("#key-input");
  $("#key-message").textContent = rejectedKey ? `The service refused that key: ${message}` : `The service answered: ${message}`;
  input.value = "";
  keyPrompt = new Promise((resolve) => {
    const finish = (key) => {
      dialog.removeEventListener("close", onClose);
      $("#key-cancel").removeEventListener("click", onCancel);
      keyPrompt = null;
      resolve(key);
    };
    const onClose = () => finish(dialog.returnValue === "use" && input.value.trim() ? input.value.trim() : null);
    const onCancel = () => dialog.close("cancel");
    dialog.addEventListener("close", onClose);
    $("#key-cancel").addEventListener("click", onCancel);
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
  return keyPrompt;
}

function showKeyState() {
  $("#forget-key").hidden = !sessionStorage.getItem(KEY_STORAGE);
}

async function callService(url, init = {}) {
  for (;;) {
    const headers = new Headers(init.headers || {});
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    let response;
    try {
      response = await fetch(url, { ...init, headers });
    } catch (error) {
      throw new ServiceError(0, `the service could not be reached (${error.message})`);
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (response.status === 401) {
      const message = serviceMessage(body, text, response);
      const entered = await askForKey(message, Boolean(key));
      if (entered === null) throw new ServiceError(401, message);
      sessionStorage.setItem(KEY_STORAGE, entered);
      showKeyState();
      continue;
    }
    if (!response.ok) throw new ServiceError(response.status, serviceMessage(body, text, response));
    return body;
  }
}

function failureText(what, error) {
  const code = error.status ? `answered ${error.status}` : "failed";
  return `${what} ${code}: ${error.message}`;
}

// ---------------------------------------------------------------------------------------------
// Page state <-> URL hash.

function readState() {
  const params = new URLSearchParams(location.hash.slice(1));
  return {
    profile: params.get("profile") || "",
    compare: params.get("compare") || "",
    example: params.get("example") || "",
    reference: params.get("reference") || "",
    candidates: params.getAll("candidate"),
  };
}

function currentState() {
  return {
    profile: $("#profile").value,
    compare: $("#compare").value,
    example: $("#example").value,
    reference: $("#reference").value,
    candidates: candidateBoxes().map((box) => box.value),
  };
}

function writeState(state) {
  const params = new URLSearchParams();
  if (state.profile) params.set("profile", state.profile);
  if (state.compare) params.set("compare", state.compare);
  if (state.example) params.set("example", state.example);
  if (state.reference) params.set("reference", state.reference);
  for (const candidate of state.candidates) params.append("candidate", candidate);
  const hash = params.toString();
  history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
}

let writeTimer = null;
function rememberState() {
  clearTimeout(writeTimer);
  writeTimer = setTimeout(() => writeState(currentState()), 250);
}

// ---------------------------------------------------------------------------------------------
// Inputs.

let examples = []; // from /ui/examples

function candidateBoxes() {
  return [...document.querySelectorAll("#candidates textarea")];
}

function noteFor(text) {
  const example = examples.find((e) => e.id === $("#example").value);
  const candidate = example && example.candidates.find((c) => c.text === text);
  return candidate ? `· ${candidate.kind.replaceAll("_", " ")}: ${candidate.note}` : "";
}

function renumberCandidates() {
  const items = [...document.querySelectorAll("#candidates .candidate")];
  items.forEach((item, index) => {
    const name = `Candidate ${index + 1}`;
    $(".candidate-name", item).textContent = name;
    $(".candidate-note", item).textContent = noteFor($("textarea", item).value);
    $("textarea", item).id = `candidate-${index + 1}`;
    $("label", item).htmlFor = `candidate-${index + 1}`;
    const remove = $(".remove", item);
    remove.setAttribute("aria-label", `Remove ${name.toLowerCase()}`);
    remove.disabled = items.length === 1;
  });
  $("#add-candidate").disabled = items.length >= MAX_CANDIDATES;
}

function addCandidate(text = "", focus = false) {
  if (candidateBoxes().length >= MAX_CANDIDATES) return;
  const item = $("#candidate-template").content.firstElementChild.cloneNode(true);
  const box = $("textarea", item);
  box.value = text;
  box.addEventListener("input", () => {
    $(".candidate-note", item).textContent = noteFor(box.value);
    rememberState();
  });
  $(".remove", item).addEventListener("click", () => {
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    renumberCandidates();
    rememberState();
    if (next) $("textarea", next).focus();
  });
  $("#candidates").append(item);
  renumberCandidates();
  if (focus) box.focus();
}

function setCandidates(texts) {
  $("#candidates").replaceChildren();
  for (const text of (texts.length ? texts : [""]).slice(0, MAX_CANDIDATES)) addCandidate(text);
}

function fillProfiles(profiles, state) {
  const choices = [{ name: "", label: "service default", loaded: true }].concat(
    profiles.map((p) => ({ name: p.name, label: p.loaded ? p.name : `${p.name} (not loaded)`, loaded: p.loaded })),
  );
  // A profile named by a link but unknown here stays selectable: the service then says why it fails.
  for (const name of [state.profile, state.compare]) {
    if (name && !choices.some((c) => c.name === name)) choices.push({ name, label: `${name} (unknown)`, loaded: true });
  }
  const options = (list, selected) =>
    list.map((c) => element("option", { value: c.name, disabled: !c.loaded && c.name !== selected }, c.label));
  $("#profile").replaceChildren(...options(choices, state.profile));
  $("#profile").value = state.profile;
  const comparisons = [{ name: "", label: "no comparison", loaded: true }, ...choices.slice(1)];
  $("#compare").replaceChildren(...options(comparisons, state.compare));
  $("#compare").value = state.compare;
}

function loadExample(id) {
  const example = examples.find((e) => e.id === id);
  if (!example) return;
  $("#reference").value = example.reference;
  setCandidates(example.candidates.map((c) => c.text));
  rememberState();
}

function showExampleSource(source) {
  const note = $("#example-source");
  note.textContent = `Examples: ${source.note} Source: ${source.source}; ${source.license}. Candidates other than the first are generated by rule-based rewrites.`;
  note.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Highlights: offsets are Python string indices (code points), so text is cut by code point.

function mergeSpans(spans) {
  const sorted = spans.filter((s) => s[1] > s[0]).map((s) => [s[0], s[1]]).sort((a, b) => a[0] - b[0]);
  const merged = [];
  for (const span of sorted) {
    const last = merged[merged.length - 1];
    if (last && span[0] <= last[1]) last[1] = Math.max(last[1], span[1]);
    else merged.push(span);
  }
  return merged;
}

// Where the service gives no offsets, the evidence sentence is looked up in the text instead.
function locateEvidence(text, evidence) {
  if (!evidence) return [];
  const at = text.toLowerCase().indexOf(evidence.toLowerCase());
  if (at < 0) return [];
  const start = Array.from(text.slice(0, at)).length;
  return [[start, start + Array.from(evidence).length]];
}

// marks: [{token, spans: [[start, end]], significant}] -> the text with <mark>s over every span.
function highlightedText(text, marks) {
  const chars = Array.from(text);
  const cuts = new Set([0, chars.length]);
  for (const mark of marks) {
    for (const [start, end] of mark.spans) {
      cuts.add(Math.max(0, Math.min(chars.length, start)));
      cuts.add(Math.max(0, Math.min(chars.length, end)));
    }
  }
  const points = [...cuts].sort((a, b) => a - b);
  const pieces = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const [start, end] = [points[i], points[i + 1]];
    const piece = chars.slice(start, end).join("");
    const covering = marks.filter((m) => m.spans.some(([s, e]) => s <= start && e >= end));
    if (!covering.length) {
      pieces.push(piece);
      continue;
    }
    const significant = covering.some((m) => m.significant);
    pieces.push(
      element(
        "mark",
        {
          class: significant ? "significant" : "insignificant",
          "data-start": start,
          "data-end": end,
          "data-errors": covering.map((m) => m.token).join(" "),
          title: covering.map((m) => m.title).join("\n"),
        },
        piece,
      ),
    );
  }
  return pieces;
}

function activate(column, token, on) {
  for (const mark of column.querySelectorAll("mark[data-errors]")) {
    if (mark.dataset.errors.split(" ").includes(token)) mark.classList.toggle("active", on);
  }
  for (const row of column.querySelectorAll(`tr[data-error="${CSS.escape(token)}"]`)) row.classList.toggle("active", on);
}

// ---------------------------------------------------------------------------------------------
// Rendering one candidate's result under one profile.

// Set through the CSSOM: the page's content security policy refuses inline style attributes.
function barFill(className, percent) {
  const fill = element("span", { class: className });
  fill.style.width = `${percent}%`;
  return fill;
}

function componentsTable(item, isGate) {
  const rows = Object.entries(item.components).flatMap(([key, c]) => {
    const width = c.score === null ? 0 : Math.max(0, Math.min(1, c.score)) * 100;
    const row = element(
      "tr",
      { "data-component": key },
      element("th", { scope: "row" }, key),
      element(
        "td",
        { class: "bar-cell" },
        element(
          "span",
          { class: "bar", role: "img", "aria-label": `score ${formatNumber(c.score)}` },
          barFill(c.score === null ? "fill failed" : "fill", width),
        ),
      ),
      element("td", { class: "num", "data-field": "score", "data-value": String(c.score) }, formatNumber(c.score)),
      element(
        "td",
        { class: "num", "data-field": "weight", "data-value": String(c.weight) },
        isGate(key) ? "gate ×" : formatNumber(c.weight),
      ),
      element(
        "td",
        { class: "num", "data-field": "contribution", "data-value": String(c.contribution) },
        c.contribution === null ? "—" : formatNumber(c.contribution),
      ),
    );
    if (!c.error) return [row];
    return [row, element("tr", { class: "component-error" }, element("td", { colspan: 5 }, `${key} failed: ${c.error}`))];
  });
  return element(
    "table",
    { class: "components" },
    element("caption", {}, "Components: score, weight and contribution to the reward (a gate multiplies it)"),
    element(
      "colgroup",
      {},
      ["name", "bar-col", "number", "number", "contribution-col"].map((name) => element("col", { class: name })),
    ),
    element(
      "thead",
      {},
      element(
        "tr",
        {},
        element("th", { scope: "col" }, "component"),
        element("th", { scope: "col", colspan: 2 }, "score"),
        element("th", { scope: "col", class: "num" }, "weight"),
        element("th", { scope: "col", class: "num" }, "contribution"),
      ),
    ),
    element("tbody", {}, rows),
  );
}

function errorsBlock(key, details, column) {
  const errors = details.errors || [];
  const rows = errors.map((error, index) => {
    const token = `${key}:${index}`;
    const located = error.reference_spans !== undefined || error.candidate_spans !== undefined;
    const button = element(
      "button",
      { type: "button", class: "locate quiet", "aria-label": `Show error ${index + 1} in the texts` },
      `${index + 1}`,
    );
    const row = element(
      "tr",
      { "data-error": token, class: error.significant ? "significant" : "insignificant" },
      element("td", {}, button),
      element("td", {}, `(${error.category}) ${CATEGORY_NAMES[error.category] || error.kind}`),
      element("td", {}, error.finding, error.attribute ? element("span", { class: "attribute" }, ` · ${error.attribute}`) : null),
      element("td", {}, error.significant ? "significant" : "insignificant"),
      element("td", { class: "num", "data-field": "cost", "data-value": String(error.weight) }, formatNumber(error.weight, 2)),
      element("td", {}, error.note, located ? "" : element("span", { class: "approx" }, " (located by its sentence)")),
    );
    for (const target of [button, row]) {
      target.addEventListener("mouseenter", () => activate(column, token, true));
      target.addEventListener("mouseleave", () => activate(column, token, false));
    }
    button.addEventListener("focus", () => activate(column, token, true));
    button.addEventListener("blur", () => activate(column, token, false));
    return row;
  });
  const summary = `${details.significant_errors ?? errors.filter((e) => e.significant).length} significant, ${
    details.insignificant_errors ?? errors.filter((e) => !e.significant).length
  } insignificant; weighted significant ${formatNumber(details.weighted_significant_errors ?? 0, 2)}`;
  const block = element("section", { class: "errors-block", "data-component": key });
  block.append(element("h4", {}, `Clinical errors (${key}): ${summary}`));
  if (errors.length) {
    block.append(
      element(
        "table",
        { class: "errors" },
        element(
          "thead",
          {},
          element(
            "tr",
            {},
            ["#", "category", "finding", "significance", "cost", "note"].map((h) => element("th", { scope: "col" }, h)),
          ),
        ),
        element("tbody", {}, rows),
      ),
    );
  } else {
    block.append(element("p", { class: "none" }, "No clinical errors found."));
  }
  return block;
}

function marksFor(key, details, side, text) {
  return (details.errors || []).map((error, index) => {
    const spans = error[`${side}_spans`];
    return {
      token: `${key}:${index}`,
      spans: mergeSpans(spans !== undefined ? spans : locateEvidence(text, error[`${side}_evidence`])),
      significant: error.significant,
      title: `${index + 1}. (${error.category}) ${error.finding}: ${error.note}`,
    };
  });
}

function textsBlock(reference, candidate, clinical) {
  const reportBox = (side, text) => {
    const marks = clinical.flatMap(([key, details]) => marksFor(key, details, side, text));
    return element(
      "figure",
      { class: "report-figure" },
      element("figcaption", {}, side === "reference" ? "Reference" : "Candidate"),
      element("div", { class: "report", "data-side": side }, highlightedText(text, marks)),
    );
  };
  return element("div", { class: "texts" }, reportBox("reference", reference), reportBox("candidate", candidate));
}

function labelsBlock(key, details) {
  const names = Object.keys(details.reference_labels || {});
  const show = (value) => (value === null || value === undefined ? "—" : CHEXPERT_VALUES[value] || String(value));
  const rows = names.map((name) => {
    const ref = details.reference_labels[name];
    const cand = (details.candidate_labels || {})[name];
    return element(
      "tr",
      { "data-observation": name, class: ref === cand ? "" : "differs" },
      element("th", { scope: "row" }, name),
      element("td", { "data-side": "reference", "data-value": String(ref) }, show(ref)),
      element("td", { "data-side": "candidate", "data-value": String(cand) }, show(cand)),
    );
  });
  return element(
    "section",
    { class: "labels-block", "data-component": key },
    element("h4", {}, `CheXpert labels (${key}); differing rows marked`),
    element(
      "table",
      { class: "labels" },
      element(
        "thead",
        {},
        element(
          "tr",
          {},
          element("th", { scope: "col" }, "observation"),
          element("th", { scope: "col" }, "reference"),
          element("th", { scope: "col" }, "candidate"),
        ),
      ),
      element("tbody", {}, rows),
    ),
  );
}

function detailList(details, skip) {
  const entries = Object.entries(details).filter(([name]) => !skip.includes(name));
  if (!entries.length) return null;
  return element(
    "dl",
    { class: "detail-list" },
    entries.flatMap(([name, value]) => [
      element("dt", {}, name.replaceAll("_", " ")),
      element("dd", {}, typeof value === "object" && value !== null ? JSON.stringify(value) : formatNumber(value)),
    ]),
  );
}

function guardBlock(key, details) {
  const flags = details.flags || [];
  const factors = details.factors || {};
  return element(
    "section",
    { class: "guard-block", "data-component": key },
    element("h4", {}, `Report guard (${key})`),
    flags.length
      ? element(
          "ul",
          { class: "flags" },
          flags.map((flag) =>
            element("li", { class: "flag", "data-flag": flag }, flag, flag in factors ? ` ×${formatNumber(factors[flag], 2)}` : ""),
          ),
        )
      : element("p", { class: "none" }, "No flags."),
    (details.reasons || []).length ? element("ul", { class: "reasons" }, details.reasons.map((r) => element("li", {}, r))) : null,
    detailList(details, ["flags", "reasons", "factors"]),
  );
}

function judgeBlock(key, component) {
  const details = component.details || {};
  const block = element("section", { class: "judge-block", "data-component": key });
  block.append(element("h4", {}, `Judge verdict (${key}${details.style ? `, ${details.style}` : ""})`));
  if (component.error) {
    block.append(element("p", { class: "failure-inline" }, `No verdict: ${component.error}`));
    if (details.answer) block.append(element("pre", { class: "answer" }, details.answer));
    return block;
  }
  block.append(
    element(
      "p",
      {},
      element("span", { "data-field": "n_significant", "data-value": String(details.n_significant) }, `${details.n_significant} significant`),
      ", ",
      element("span", { "data-field": "n_insignificant", "data-value": String(details.n_insignificant) }, `${details.n_insignificant} insignificant`),
      details.matched_findings !== undefined ? `, ${details.matched_findings} matched findings` : "",
      details.cached ? " (cached verdict)" : "",
    ),
  );
  const counts = details.errors || {};
  const letters = Object.keys(CATEGORY_NAMES);
  block.append(
    element(
      "table",
      { class: "judge-counts" },
      element(
        "thead",
        {},
        element("tr", {}, element("th", { scope: "col" }, "category"), element("th", { scope: "col" }, "significant"), element("th", { scope: "col" }, "insignificant")),
      ),
      element(
        "tbody",
        {},
        letters.map((letter) => {
          const pick = (kind) => {
            const found = counts[kind] || {};
            return found[letter] ?? found[letter.toUpperCase()] ?? 0;
          };
          return element(
            "tr",
            {},
            element("th", { scope: "row" }, `(${letter}) ${CATEGORY_NAMES[letter]}`),
            element("td", { class: "num" }, String(pick("significant"))),
            element("td", { class: "num" }, String(pick("insignificant"))),
          );
        }),
      ),
    ),
  );
  if (details.injection) block.append(element("p", { class: "failure-inline" }, `Instruction-like text in the candidate: ${details.injection.join(", ")}`));
  return block;
}

function profileColumn(label, outcome, index, reference, candidate) {
  const column = element("article", { class: "profile-result", "data-profile": label });
  if (outcome.error) {
    column.append(element("h3", {}, label), element("div", { class: "failure", role: "alert" }, outcome.error));
    return column;
  }
  const { response, definition } = outcome;
  const item = response.items[index];
  const scorerOf = (key) => (definition && definition[key] ? definition[key].scorer : key);
  const isGate = (key) => Boolean(definition && definition[key] && definition[key].gate);
  column.dataset.profile = response.profile;
  column.append(
    element(
      "header",
      { class: "profile-header" },
      element("h3", {}, response.profile),
      item.gate !== undefined && item.gate !== null && Object.keys(item.components).some(isGate)
        ? element("span", { class: "gate", "data-field": "gate", "data-value": String(item.gate) }, `gate ×${formatNumber(item.gate)}`)
        : null,
      element(
        "span",
        { class: "reward", "data-field": "reward", "data-value": String(item.reward) },
        `reward ${formatNumber(item.reward)}`,
      ),
    ),
  );
  if (item.errors.length) column.append(element("ul", { class: "item-errors" }, item.errors.map((e) => element("li", {}, e))));
  column.append(componentsTable(item, isGate));
  const entries = Object.entries(item.components);
  const clinical = entries
    .filter(([key, c]) => scorerOf(key) === "clinical_errors" && c.details)
    .map(([key, c]) => [key, c.details]);
  column.append(textsBlock(reference, candidate, clinical));
  for (const [key, details] of clinical) column.append(errorsBlock(key, details, column));
  const panels = element("div", { class: "panels" });
  for (const [key, c] of entries) {
    const scorer = scorerOf(key);
    if (scorer === "chexpert_labels" && c.details) panels.append(labelsBlock(key, c.details));
    else if (scorer === "report_guard" && c.details) panels.append(guardBlock(key, c.details));
    else if (scorer === "judge") panels.append(judgeBlock(key, c));
  }
  if (panels.childElementCount) column.append(panels);
  column.append(
    element("details", { class: "raw" }, element("summary", {}, "Raw result"), element("pre", {}, JSON.stringify(item, null, 2))),
  );
  return column;
}

// ---------------------------------------------------------------------------------------------
// Scoring.

const definitions = new Map(); // profile name -> {component key -> {scorer, gate}}

async function profileDefinition(name) {
  if (!definitions.has(name)) {
    const promise = callService(API.profile(name)).then((profile) =>
      Object.fromEntries(profile.components.map((c) => [c.key || c.name, { scorer: c.name, gate: Boolean(c.gate) }])),
    );
    definitions.set(name, promise);
    promise.catch(() => definitions.delete(name));
  }
  return definitions.get(name);
}

async function scoreWith(profile, items) {
  const label = profile || "service default";
  try {
    const response = await callService(API.score, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ profile: profile || null, items, return_details: true }),
    });
    let definition = null;
    try {
      definition = await profileDefinition(response.profile);
    } catch {
      definition = null; // component keys are then taken as scorer names
    }
    return { label, response, definition };
  } catch (error) {
    return { label, error: failureText(`POST /v1/score with profile ${label}`, error) };
  }
}

let scoring = 0; // a newer score request makes older answers stale

async function score() {
  const state = currentState();
  writeState(state);
  const run = ++scoring;
  const items = state.candidates.map((candidate, index) => ({
    id: `candidate-${index + 1}`,
    reference: state.reference,
    candidate,
  }));
  const profiles = [state.profile];
  if (state.compare && state.compare !== state.profile) profiles.push(state.compare);
  $("#results").setAttribute("aria-busy", "true");
  $("#status").textContent = `Scoring ${items.length} candidate${items.length === 1 ? "" : "s"}…`;
  const outcomes = await Promise.all(profiles.map((profile) => scoreWith(profile, items)));
  if (run !== scoring) return;
  const list = $("#result-list");
  list.replaceChildren(
    ...items.map((item, index) =>
      element(
        "section",
        { class: "candidate-result", "data-candidate": index + 1, "aria-labelledby": `result-${index + 1}` },
        element("h3", { id: `result-${index + 1}`, class: "candidate-title" }, `Candidate ${index + 1}`, element("span", { class: "candidate-note" }, ` ${noteFor(item.candidate)}`)),
        element(
          "div",
          { class: outcomes.length > 1 ? "columns compare" : "columns" },
          outcomes.map((outcome) => profileColumn(outcome.label, outcome, index, item.reference, item.candidate)),
        ),
      ),
    ),
  );
  $("#results").removeAttribute("aria-busy");
  $("#status").textContent = outcomes
    .map((o) => (o.error ? `${o.label}: failed` : `${o.response.profile}: ${formatNumber(o.response.timings.total_ms, 1)} ms`))
    .join("; ");
  $("#status").dataset.done = String(run);
}

// ---------------------------------------------------------------------------------------------
// Start-up.

function showBanner(text) {
  const banner = $("#banner");
  banner.textContent = text;
  banner.hidden = !text;
}

async function start() {
  const state = readState();
  $("#reference").value = state.reference;
  setCandidates(state.candidates);
  showKeyState();

  $("#controls").addEventListener("submit", (event) => {
    event.preventDefault();
    score();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !$("#key-dialog").open) {
      event.preventDefault();
      score();
    }
  });
  $("#add-candidate").addEventListener("click", () => {
    addCandidate("", true);
    rememberState();
  });
  $("#reference").addEventListener("input", rememberState);
  for (const id of ["#profile", "#compare"]) $(id).addEventListener("change", rememberState);
  $("#example").addEventListener("change", (event) => loadExample(event.target.value));
  $("#forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    showKeyState();
  });

  const [profiles, loadedExamples] = await Promise.allSettled([callService(API.profiles), callService(API.examples)]);
  if (profiles.status === "fulfilled") {
    fillProfiles(profiles.value, state);
  } else {
    fillProfiles([], state);
    showBanner(failureText("GET /v1/profiles", profiles.reason));
  }
  if (loadedExamples.status === "fulfilled") {
    examples = loadedExamples.value.examples;
    $("#example").append(
      ...examples.map((e) => element("option", { value: e.id }, `${e.id}: ${e.reference.replace(/^findings:\s*/i, "").slice(0, 60)}…`)),
    );
    showExampleSource(loadedExamples.value);
    $("#example").value = examples.some((e) => e.id === state.example) ? state.example : "";
    renumberCandidates();
  } else {
    showBanner(failureText("GET /ui/examples", loadedExamples.reason));
  }
  document.body.dataset.ready = "true";
  if (state.reference || state.candidates.some(Boolean)) await score();
}

start();

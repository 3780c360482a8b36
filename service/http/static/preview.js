// The preview page: pick or edit a visitor, decide every placement with explain and render, show each
// placement's variant, reason, experiment arm, trace and rendered block, and save it as a check.
// Plain script, no build step. Nothing from the API is written as HTML into this page: text goes in
// with textContent, and rendered blocks only into sandboxed srcdoc frames (no scripts, opaque origin).
"use strict";

(() => {
  const TOKEN_KEY = "tailor.preview.token";
  const TRACE_FIELDS = new Set(["placement", "rule", "outcome"]);  // the columns; any other field is a detail
  const $ = (id) => document.getElementById(id);
  let samples = [];
  let shown = null;  // {request, response, sample}: what the results show, for "save as check"

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  async function api(path, body) {
    const headers = {accept: "application/json"};
    if (token()) headers.authorization = `Bearer ${token()}`;
    const init = {method: body === undefined ? "GET" : "POST", headers, cache: "no-store"};
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const type = response.headers.get("content-type") || "";
    if (!response.ok) throw new Error(await problemText(response, type));
    return type.includes("json") ? response.json() : response.text();
  }

  async function problemText(response, type) {
    if (!type.includes("json")) return `${response.status} ${response.statusText}`;
    const problem = await response.json();
    const where = (problem.errors || []).map((e) => `${e.loc}: ${e.message}`).join("; ");
    let text = `${problem.status} ${problem.title}: ${problem.detail}${where ? ` (${where})` : ""}`;
    if (response.status === 401) text += ". Paste the admin token above.";
    if (where.includes("$.context.now")) text += ". Paste the admin token, or clear the time to use the server's.";
    return text;
  }

  function showError(error) {
    $("error").textContent = error ? String(error.message || error) : "";
    $("error").hidden = !error;
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  // --- the admin token: pasted by the user, kept for this tab only -------------------------------------
  function showTokenState() {
    $("token-state").textContent = token() ? "a token is set for this tab" : "no token";
  }

  function bindToken() {
    $("token-use").addEventListener("click", () => {
      const value = $("token").value.trim();
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      $("token").value = "";
      $("token-box").open = false;
      showTokenState();
      loadSamples();
      loadBundle();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showTokenState();
    });
    showTokenState();
  }

  // --- visitors to pick from ---------------------------------------------------------------------------
  async function loadSamples() {
    try {
      const listed = await api("/preview/visitors");
      samples = listed.samples;
      fillSamples(listed.samples);
      if (listed.problems.length) {
        showError(listed.problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join("\n"));
      }
    } catch (error) {
      showError(error);
    }
  }

  function fillSamples(list) {
    const select = $("sample");
    select.replaceChildren(element("option", "(edit below)"));
    select.firstChild.value = "";
    const groups = new Map();
    list.forEach((sample, index) => {
      const file = sample.source.split(":")[0];
      const group = file.startsWith("checks/") ? `checks: ${file}` : "example visitors";
      if (!groups.has(group)) groups.set(group, element("optgroup"));
      groups.get(group).label = group;
      const option = element("option", `${sample.name} (${sample.source})`);
      option.value = String(index);
      groups.get(group).append(option);
    });
    groups.forEach((node) => select.append(node));
  }

  function pickSample() {
    const sample = samples[Number($("sample").value)];
    if ($("sample").value === "" || !sample) return;
    $("visitor").value = JSON.stringify(sample.visitor, null, 2);
    const context = sample.context || {};
    $("now").value = context.now || $("now").value;
    $("locale").value = context.locale || "";
    $("currency").value = context.currency || "";
    $("page").value = context.page || "";
    const models = Object.entries(sample.models || {});
    $("sample-note").textContent = models.length
      ? `This check stands in model scores (${models.map(([k, v]) => `${k}: ${v}`).join(", ")}); ` +
        "the preview runs the real models."
      : "";
    $("check-name").value = `${sample.name} (preview)`;
  }

  // --- deciding ---------------------------------------------------------------------------------------
  function contextFromInputs() {
    const context = {};
    for (const key of ["now", "locale", "currency", "page"]) {
      const value = $(key).value.trim();
      if (value) context[key] = value;
    }
    return context;
  }

  async function decide() {
    showError(null);
    let visitor;
    try {
      visitor = JSON.parse($("visitor").value);
    } catch (error) {
      clearDecision();
      showError(`The visitor is not JSON: ${error.message}`);
      return;
    }
    const request = {visitor, context: contextFromInputs(), explain: true, render: true};
    const sentAt = nowText();
    try {
      const response = await api("/v1/decide", request);
      shown = {request, response, sentAt};
      showDecision(response);
    } catch (error) {
      clearDecision();
      showError(error);
    }
  }

  // A decide that failed leaves no results: those of the visitor before would read as this one's,
  // and "save as check" would save them under the new name.
  function clearDecision() {
    shown = null;
    $("empty").hidden = false;
    $("summary").hidden = true;
    $("save").hidden = true;
    $("placements").replaceChildren();
    $("check-yaml").hidden = true;
    $("copy-check").hidden = true;
  }

  function showDecision(response) {
    $("empty").hidden = true;
    $("summary").hidden = false;
    $("save").hidden = false;
    $("decision-id").textContent = response.decision_id;
    $("revision").textContent = response.revision;
    $("segments").textContent = response.segments.length ? response.segments.join(", ") : "none";
    const scores = Object.entries(response.scores || {});
    $("scores").textContent = scores.length ? scores.map(([k, v]) => `${k}: ${v}`).join(", ") : "none ran";
    const trace = response.trace || [];
    $("placements").replaceChildren(
      ...Object.entries(response.placements).map(([name, placed]) =>
        placementCard(name, placed, trace.filter((step) => step.placement === name)))
    );
    $("check-yaml").hidden = true;
    $("copy-check").hidden = true;
  }

  function placementCard(name, placed, steps) {
    const card = element("article", null, "placement");
    card.dataset.placement = name;
    card.append(element("h2", name));
    const facts = element("dl", null, "facts");
    const experiment = placed.experiment;
    const arm = experiment
      ? `${experiment.key} → ${experiment.arm}${experiment.bucket === null ? " (forced)" : ` (bucket ${experiment.bucket})`}`
      : "none";
    const rows = [["variant", placed.variant ?? "none"], ["reason", placed.reason], ["rule", placed.rule ?? "none"],
      ["experiment", arm]];
    if (placed.render_status) rows.push(["render", renderText(placed)]);
    for (const [key, value] of rows) {
      facts.append(element("dt", key), element("dd", value, `fact-${key}`));
    }
    card.append(facts);
    if (placed.html !== undefined) card.append(blockFrame(name, placed));
    card.append(traceTable(steps));
    return card;
  }

  function renderText(placed) {
    if (placed.render_status === "rendered") return "rendered";
    return `fallback: ${placed.render_error || ""}${placed.render_detail ? ` (${placed.render_detail})` : ""}`;
  }

  function blockFrame(name, placed) {
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "");  // no scripts, no forms, no navigation, an opaque origin
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.title = `${name}: ${placed.variant} (rendered)`;
    frame.className = "block";
    frame.srcdoc = placed.html;
    return frame;
  }

  function traceTable(steps) {
    const table = element("table", null, "trace");
    table.append(element("caption", "trace"));
    const head = element("tr");
    ["rule", "outcome", "details"].forEach((title) => head.append(element("th", title)));
    table.append(head);
    for (const step of steps) {
      const row = element("tr", null, `outcome-${step.outcome}`);
      row.append(element("td", step.rule), element("td", step.outcome));
      const details = element("td", null, "details");
      for (const [key, value] of Object.entries(step)) {
        if (!TRACE_FIELDS.has(key)) details.append(detail(key, value));
      }
      row.append(details);
      table.append(row);
    }
    if (!steps.length) {
      const row = element("tr");
      row.append(element("td", "no rule ran"));
      table.append(row);
    }
    return table;
  }

  // Any field a trace entry has beyond rule and outcome (why a rule did not match, …), shown as it comes.
  function detail(key, value) {
    const box = element("div", null, "detail");
    box.dataset.field = key;
    box.append(element("span", `${key}: `, "detail-key"));
    if (value !== null && typeof value === "object") {
      const list = element("dl");
      for (const [inner, innerValue] of Object.entries(value)) {
        const text = innerValue !== null && typeof innerValue === "object" ? JSON.stringify(innerValue) : innerValue;
        list.append(element("dt", inner), element("dd", text === null ? "null" : text));
      }
      box.append(list);
    } else {
      box.append(element("span", value === null ? "null" : value));
    }
    return box;
  }

  // --- save as check ----------------------------------------------------------------------------------
  function shownPlacement(placed) {
    const out = {reason: placed.reason};
    if (placed.variant !== null && placed.variant !== undefined) out.variant = placed.variant;
    if (placed.rule) out.rule = placed.rule;
    if (placed.experiment) out.experiment = {key: placed.experiment.key, arm: placed.experiment.arm};
    if (placed.render_status) out.rendered = placed.render_status === "rendered";
    return out;
  }

  async function saveCheck() {
    showError(null);
    if (!shown) return;
    const {request, response, sentAt} = shown;
    // A check names its time: without one it would decide at whatever time it runs.
    const context = {...request.context, now: request.context.now || sentAt};
    const placements = Object.fromEntries(
      Object.entries(response.placements).map(([name, placed]) => [name, shownPlacement(placed)]));
    const name = $("check-name").value.trim() || `visitor ${request.visitor.id || "without id"} (preview)`;
    const body = {name, visitor: request.visitor, context, placements, segments: response.segments,
      revision: response.revision};
    try {
      $("check-yaml").value = await api("/preview/check", body);
      $("check-yaml").hidden = false;
      $("copy-check").hidden = !navigator.clipboard;
    } catch (error) {
      showError(error);
    }
  }

  async function loadBundle() {
    try {
      const bundle = await api("/v1/bundle");
      $("bundle").textContent = `bundle ${bundle.revision}: ${bundle.placements.map((p) => p.name).join(", ")}`;
    } catch (error) {
      $("bundle").textContent = `bundle: ${error.message}`;
    }
  }

  function nowText() {
    return new Date().toISOString().replace(/\.\d+Z$/, "Z");
  }

  function start() {
    bindToken();
    $("sample").addEventListener("change", pickSample);
    $("decide").addEventListener("click", decide);
    $("now-button").addEventListener("click", () => { $("now").value = nowText(); });
    $("save-check").addEventListener("click", saveCheck);
    $("copy-check").addEventListener("click", () => navigator.clipboard.writeText($("check-yaml").value));
    loadBundle();
    loadSamples();
  }

  start();
})();

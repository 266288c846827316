// The page: reads the API's JSON routes and redraws itself every REFRESH_MS while the tab
// is visible. Per refresh: one GET /dashboard/overview?lower=..&upper=.. (symbols,
// accuracy, pipeline, and as `range` the range dashboard of the chosen window, the
// numbers /dashboard/range gives; the server computes each at most once a second per
// process, so many open pages on one window cost the stores what one does). Nothing else
// is asked for, so an open page costs one request per refresh whatever its size.
"use strict";

const REFRESH_MS = 5000;
const STALE_MS = 2.5 * REFRESH_MS;  // two refreshes missed: the numbers are old
const FETCH_TIMEOUT_MS = 8000;
const LETTERS = "abcdefghijklmnopqrstuvwxyz".split("");
const SVG = "http://www.w3.org/2000/svg";

const state = {
  window: null,          // {lower, upper}: the range shown and refreshed
  asked: 0,              // sequence of requests: an older answer never wins
  lastOk: null,          // Date.now() of the last overview with symbols
  timer: null,
  busy: false,
};

const $ = (id) => document.getElementById(id);

// --- talking to the API -----------------------------------------------------------------

async function getJSON(path) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch(path, {cache: "no-store", signal: abort.signal});
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON: say the status */ }
    return {status: response.status, body};
  } catch (error) {
    const reason = error.name === "AbortError" ? `no answer within ${FETCH_TIMEOUT_MS / 1000} s`
                                               : "the API cannot be reached";
    return {status: 0, body: {error: reason}};
  } finally {
    clearTimeout(timer);
  }
}

function errorText(answer) {
  const said = answer.body && answer.body.error ? answer.body.error : "no explanation given";
  return answer.status ? `${answer.status}: ${said}` : said;
}

// --- formatting -------------------------------------------------------------------------

const number = (n) => (n === null || n === undefined ? "–" : n.toLocaleString("en-US"));
const percent = (part, whole) => (whole ? `${(100 * part / whole).toFixed(1)}%` : "–");
const time = (text) => (text ? text.slice(0, 19) : "–");  // to the second; the cell keeps all
const clock = (ms) => new Date(ms).toISOString().slice(11, 19);
function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function cell(row, field, value, shown) {
  const td = row.insertCell();
  td.dataset.field = field;
  td.dataset.value = value === null || value === undefined ? "" : String(value);
  td.textContent = shown;
  return td;
}

function emptyBody(table, text) {
  const body = table.tBodies[0];
  body.replaceChildren();
  const td = body.insertRow().insertCell();
  td.colSpan = table.tHead.rows[0].cells.length;
  td.className = "empty";
  td.textContent = text;
  table.tFoot.replaceChildren();
}

// rows: [{symbol, count, followups, earliest, latest}], accuracy: {symbol: {...}} or null
function fillTable(table, rows, accuracy) {
  const body = table.tBodies[0];
  body.replaceChildren();
  let count = 0, followups = 0;
  for (const item of rows) {
    const row = body.insertRow();
    row.dataset.symbol = item.symbol;
    cell(row, "symbol", item.symbol, item.symbol);
    cell(row, "count", item.count, number(item.count));
    cell(row, "followups", item.followups, number(item.followups));
    cell(row, "rate", item.count ? item.followups / item.count : "", percent(item.followups, item.count));
    if (accuracy !== undefined) {
      const a = accuracy && accuracy[item.symbol];
      const td = cell(row, "accuracy", a && a.rate !== null ? a.rate : "",
                      a ? percent(a.correct, a.guesses) : "–");
      if (a) td.title = `${number(a.correct)} of ${number(a.guesses)} guesses right`;
    }
    cell(row, "earliest", item.earliest, time(item.earliest));
    cell(row, "latest", item.latest, time(item.latest));
    count += item.count;
    followups += item.followups;
  }
  const foot = table.tFoot;
  foot.replaceChildren();
  const total = foot.insertRow();
  total.dataset.symbol = "all";
  cell(total, "symbol", "all", "all");
  cell(total, "count", count, number(count));
  cell(total, "followups", followups, number(followups));
  cell(total, "rate", "", percent(followups, count));
  for (let i = 4; i < table.tHead.rows[0].cells.length; i++) total.insertCell();
  return {count, followups};
}

// --- the chart: conversations (light) and followups (dark) per symbol, a-z ----------------

function svgNode(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// The axis' top: 1, 2 or 5 times a power of ten, at least `n` (and at least 2).
function niceCeiling(n) {
  const power = 10 ** Math.floor(Math.log10(Math.max(n, 2)));
  return [1, 2, 5, 10].map((m) => m * power).find((top) => top >= n) || 2;
}

function drawChart(svg, rows) {
  const bySymbol = Object.fromEntries(rows.map((r) => [r.symbol, r]));
  const slot = 34, left = 50, top = 10, height = 150, width = left + LETTERS.length * slot + 6;
  const most = niceCeiling(Math.max(...rows.map((r) => r.count), 0));
  const y = (n) => top + height - (n / most) * height;
  svg.setAttribute("viewBox", `0 0 ${width} ${top + height + 22}`);
  svg.replaceChildren();
  for (const n of [0, most / 2, most].filter(Number.isInteger)) {
    svg.append(svgNode("line", {x1: left - 4, x2: width, y1: y(n), y2: y(n), stroke: "#d9dee5"}));
    svg.append(svgNode("text", {x: left - 8, y: y(n) + 4, "text-anchor": "end"},
                       number(n)));
  }
  LETTERS.forEach((symbol, i) => {
    const r = bySymbol[symbol] || {count: 0, followups: 0};
    const x = left + i * slot + 4;
    const bar = svgNode("rect", {class: "count", x, y: y(r.count), width: slot - 8,
                                 height: top + height - y(r.count)});
    bar.append(svgNode("title", {}, `${symbol}: ${number(r.count)} conversations`));
    const inner = svgNode("rect", {class: "followups", x: x + 4, y: y(r.followups),
                                   width: slot - 16, height: top + height - y(r.followups)});
    inner.append(svgNode("title", {}, `${symbol}: ${number(r.followups)} followups`));
    svg.append(bar, inner, svgNode("text", {x: x + (slot - 8) / 2, y: top + height + 15,
                                            "text-anchor": "middle"}, symbol));
  });
}

// --- the overview: symbols, accuracy, pipeline ----------------------------------------------

function showBanner(text) {
  const banner = $("banner");
  banner.hidden = !text;
  banner.textContent = text || "";
}

// One request: the overview, and the window's range dashboard in it when there is one.
async function load() {
  const window = state.window;
  const asked = ++state.asked;
  const path = window ? `dashboard/overview?lower=${encodeURIComponent(window.lower)}` +
                        `&upper=${encodeURIComponent(window.upper)}`
                      : "dashboard/overview";
  const answer = await getJSON(path);
  if (asked !== state.asked) return;  // the user picked another window meanwhile
  if (window && answer.status === 400) {
    // The API refused the bounds: asking again will not help until they change. The
    // overview is asked for at once without them.
    refuseRange(answer);
    return load();
  }
  showOverview(answer);
  if (window) showRange(window, answer);
}

function showOverview(answer) {
  const body = answer.body || {};
  if (Array.isArray(body.symbols)) {
    const accuracy = body.accuracy && body.accuracy.available ? body.accuracy.symbols : null;
    $("accuracy-note").textContent = !body.accuracy ? ""
      : body.accuracy.available
        ? `Accuracy over all symbols: ${percent(body.accuracy.correct, body.accuracy.guesses)} ` +
          `of ${number(body.accuracy.guesses)} guesses.`
        : `Accuracy: ${body.accuracy.reason}.`;
    fillTable($("symbols-table"), body.symbols, accuracy);
    drawChart($("symbols-chart"), body.symbols);
    state.lastOk = Date.now();
    $("all-time").classList.remove("stale");
  } else {
    $("all-time").classList.add("stale");
  }
  if (body.pipeline) {
    showPipeline(body.pipeline);
    $("pipeline").classList.remove("stale");
  } else {
    $("pipeline").classList.add("stale");
  }
  if (answer.status === 200) {
    showBanner(null);
  } else if (answer.status === 503) {
    showBanner(`A store is unavailable (the API answered ${errorText(answer)}). ` +
               "Numbers it could not read are shown as last seen.");
  } else {
    showBanner(`The API did not answer the overview (${errorText(answer)}). ` +
               "The numbers below are as last seen.");
  }
  showStatus();
}

function figure(list, label, value, warn) {
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  const group = document.createElement("div");
  dt.textContent = label;
  dd.textContent = value;
  dd.dataset.field = label;
  if (warn) group.className = "warn";
  group.append(dt, dd);
  list.append(group);
  return dd;
}

function showPipeline(p) {
  const list = $("pipeline-figures");
  list.replaceChildren();
  if (!p.applies) {
    $("pipeline-note").textContent = `Does not apply: ${p.reason}.`;
    return;
  }
  if (p.backlog === undefined) {  // the pipeline's part failed; only the store's came back
    $("pipeline-note").textContent = "The streams' state could not be read (see above).";
  } else {
    const behind = p.range_behind_s || 0;
    $("pipeline-note").textContent = p.backlog === 0
      ? "Range data is up to date: every accepted event is in MariaDB."
      : `Range data is ${seconds(behind)} behind: ${number(p.backlog)} events wait to be stored.`;
    figure(list, "Backlog (lag + pending)", number(p.backlog), p.backlog > 0 && behind > 10)
      .dataset.value = p.backlog === null ? "" : p.backlog;
    figure(list, "Lag (not yet read by a worker)", number(p.lag)).dataset.value = p.lag ?? "";
    figure(list, "Pending (read, not yet stored)", number(p.pending)).dataset.value = p.pending;
    figure(list, "Dead letters", number(p.dead_letters), p.dead_letters > 0)
      .dataset.value = p.dead_letters;
    figure(list, "Range data behind by", seconds(behind), behind > 10).dataset.value = behind;
    figure(list, "Consumers in the ingest group", number(p.consumers), p.consumers === 0);
    figure(list, "Stream partitions", number(p.partitions));
  }
  if ("newest_stored" in p) {
    figure(list, "Newest conversation in MariaDB", p.newest_stored
      ? `${time(p.newest_stored)} UTC (${seconds(p.newest_stored_age_s)} ago)` : "none yet");
  }
}

function showStatus() {
  const status = $("status");
  if (state.lastOk === null) {
    status.dataset.state = "error";
    status.textContent = "No numbers yet: the API has not answered.";
    return;
  }
  const age = Date.now() - state.lastOk;
  if (age > STALE_MS) {
    status.dataset.state = "stale";
    status.textContent = `Stale: last updated ${clock(state.lastOk)} UTC, ${Math.round(age / 1000)} s ago.`;
    for (const id of ["all-time", "pipeline"]) $(id).classList.add("stale");
  } else {
    status.dataset.state = "fresh";
    status.textContent = `Updated ${clock(state.lastOk)} UTC; refreshes every ${REFRESH_MS / 1000} s.`;
  }
}

// --- the range picker -----------------------------------------------------------------------

function showRangeError(text) {
  const box = $("range-error");
  box.hidden = !text;
  box.textContent = text || "";
}

function refuseRange(answer) {
  state.window = null;
  showRangeError(`The API refused this range (${errorText(answer)}).`);
  emptyBody($("range-table"), "No range shown.");
  $("range-chart").replaceChildren();
  $("range-caption").textContent = "";
}

// `range` of the overview: the window's /dashboard/range answer, its status and its age.
function showRange(window, answer) {
  const range = answer.body && answer.body.range;
  const table = $("range-table");
  if (range && range.status === 200 && Array.isArray(range.dashboard)) {
    showRangeError(null);
    const totals = fillTable(table, range.dashboard);
    if (!range.dashboard.length) emptyBody(table, "No conversations started in this range.");
    drawChart($("range-chart"), range.dashboard);
    // The server's figures may be up to range.cache_s old: the time is when they were read.
    $("range-caption").textContent = `${number(totals.count)} conversations, ` +
      `${number(totals.followups)} followed up, from ${window.lower} to ${window.upper} (UTC); ` +
      `updated ${time(range.generated_at).slice(11)} UTC.`;
    $("range").classList.remove("stale");
  } else {
    const why = range ? errorText({status: range.status, body: range}) : errorText(answer);
    showRangeError(`Range data unavailable (${why}); shown as last seen.`);
    $("range").classList.add("stale");
  }
}

function pick(lower, upper) {
  $("range-lower").value = lower;
  $("range-upper").value = upper;
  state.window = {lower, upper};
  load();
}

function utc(ms) {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

function setUpPicker() {
  $("range-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const lower = $("range-lower").value.trim(), upper = $("range-upper").value.trim();
    if (!lower || !upper) {
      state.window = null;
      showRangeError("Enter both bounds: YYYY-MM-DD, or YYYY-MM-DD HH:MM:SS (UTC).");
      return;
    }
    pick(lower, upper);
  });
  $("range-today").addEventListener("click", () => {
    const today = utc(Date.now()).slice(0, 10);
    pick(today, today);
  });
  $("range-hour").addEventListener("click", () => {
    const now = Date.now();
    pick(utc(now - 3600 * 1000), utc(now));
  });
}

// --- the refresh loop -----------------------------------------------------------------------

async function refresh() {
  clearTimeout(state.timer);
  if (state.busy) return;
  state.busy = true;
  try {
    await load();
  } finally {
    state.busy = false;
  }
  // A hidden tab asks for nothing; it catches up as soon as it is shown again.
  if (!document.hidden) state.timer = setTimeout(refresh, REFRESH_MS);
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) clearTimeout(state.timer);
  else refresh();
});

setUpPicker();
setInterval(showStatus, 1000);
const today = utc(Date.now()).slice(0, 10);
$("range-lower").value = today;
$("range-upper").value = today;
state.window = {lower: today, upper: today};
refresh();

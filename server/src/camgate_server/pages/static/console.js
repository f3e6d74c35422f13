"use strict";
// The operator console: report an incident, its map of cameras (each outcome, and for every
// camera not allowed the reasons in words), request access, follow each request.

const OUTCOMES = {
  allowed: { words: "may be viewed now", mark: "✓" },
  ask: { words: "the owner is asked first", mark: "?" },
  denied: { words: "refused", mark: "✕" },
};
const SCOPE_WORDS = { live: "live view", snapshot: "a snapshot", recorded: "recorded video" };
const STORE_KEY = "camgate.console.requests";
const FINAL = new Set(["ended", "refused", "no-answer"]);

let map = null;
let layer = null;
let incident = null;
let requests = JSON.parse(window.sessionStorage.getItem(STORE_KEY) || "[]");

function setupMap() {
  if (!window.L) return; // the table below carries everything the map shows
  map = window.L.map("map", { keyboard: true }).setView([0, 0], 2);
  if (CONFIG.tileUrl) {
    window.L.tileLayer(CONFIG.tileUrl, { attribution: CONFIG.tileAttribution, maxZoom: 19 }).addTo(map);
  }
  layer = window.L.layerGroup().addTo(map);
  map.on("click", (event) => {
    document.getElementById("lat").value = event.latlng.lat.toFixed(6);
    document.getElementById("lon").value = event.latlng.lng.toFixed(6);
    say("Point set from the map.");
  });
}

function popup(row) {
  const outcome = OUTCOMES[row.outcome];
  return el("div", { class: "popup", "data-camera": row.camera },
    el("p", {}, el("strong", {}, `Camera ${row.camera}`), `: ${outcome.words}`),
    row.outcome_reasons.length ? reasonList(row.outcome_reasons) : null);
}

function drawMap(survey) {
  if (!map) return;
  layer.clearLayers();
  const centre = [survey.area.lat, survey.area.lon];
  const circle = window.L.circle(centre, { radius: survey.area.radius_m, interactive: false });
  layer.addLayer(circle);
  for (const row of survey.cameras) {
    const outcome = OUTCOMES[row.outcome];
    const icon = window.L.divIcon({
      className: `cam cam-${row.outcome}`,
      html: outcome.mark,
      iconSize: [20, 20],
    });
    const marker = window.L.marker([row.lat, row.lon], {
      icon,
      keyboard: true,
      title: `Camera ${row.camera}: ${outcome.words}`,
      alt: `Camera ${row.camera}: ${outcome.words}`,
    });
    marker.bindPopup(popup(row));
    layer.addLayer(marker);
    // Leaflet makes a keyboard marker a focusable role=button; its name is what it means.
    marker.getElement().setAttribute("aria-label", `Camera ${row.camera}: ${outcome.words}`);
  }
  map.fitBounds(circle.getBounds());
}

function surveyRow(row) {
  const outcome = OUTCOMES[row.outcome];
  const scope = document.getElementById("scope").value;
  const action = CONFIG.canRequest && row.outcome !== "denied"
    ? el("button", { type: "button", onclick: () => requestAccess(row.camera) },
      `Request ${SCOPE_WORDS[scope]} of ${row.camera}`)
    : "";
  return el("tr", { "data-camera": row.camera, "data-outcome": row.outcome },
    el("th", { scope: "row" }, row.camera),
    el("td", {}, `${Math.round(row.distance_m)} m`),
    el("td", { class: `outcome-${row.outcome}` }, `${outcome.mark} ${outcome.words}`),
    el("td", {}, reasonList(row.outcome_reasons)),
    el("td", {}, action));
}

async function showIncident(id) {
  const scope = document.getElementById("scope").value;
  const query = new URLSearchParams({ scope, purpose: document.getElementById("purpose").value });
  if (scope === "recorded") {
    query.set("from", fieldTime("window-from") || "");
    query.set("to", fieldTime("window-to") || "");
  }
  const survey = await api("GET", API.survey(id, query));
  incident = id;
  window.history.replaceState(null, "", `#${id}`);
  document.getElementById("incident-title").textContent = `— ${survey.kind}, ${id}`;
  const c = survey.counts;
  document.getElementById("counts").textContent =
    `${c.candidates} cameras: ${c.allowed} may be viewed now, ${c.ask} ask their owner first, ` +
    `${c.denied} refused.`;
  document.getElementById("survey").replaceChildren(...survey.cameras.map(surveyRow));
  drawMap(survey);
  say(`Incident ${id}: ${c.candidates} cameras found.`);
}

function saveRequests() {
  window.sessionStorage.setItem(STORE_KEY, JSON.stringify(requests));
}

function statusWords(r) {
  switch (r.status) {
    case "waiting":
      return [`Waiting for the owner — `,
        el("span", { class: "countdown", "data-deadline": r.deadline }, "…"), " left"];
    case "granted":
      return [`Granted until ${localTime(r.expires_at)}`];
    case "ended":
      return [`Ended: ${r.reason}`];
    case "no-answer":
      return [`Refused: ${r.reason || "the owner did not answer in time"}`];
    default:
      return ["Refused", reasonList(r.reasons || [])];
  }
}

function renderRequests() {
  const items = requests.slice().reverse().map((r) =>
    el("li", { "data-request": r.id || "", "data-camera": r.camera, "data-status": r.status },
      el("p", {}, el("strong", {}, `Camera ${r.camera}`), `, ${SCOPE_WORDS[r.scope] || r.scope}: `,
        el("span", { class: `status-${r.status}` }, ...statusWords(r))),
      mediaAction(r)));
  document.getElementById("requests").replaceChildren(...items);
  document.getElementById("requests-empty").hidden = requests.length > 0;
  ticks();
}

// A granted request's button: watch live video (WS /live/{grant} into Media Source
// Extensions), or download the snapshot or the recorded clip. A grant opens once, so the
// button goes once used; a live socket's close code and reason become the request's
// "Ended: …" at once, before the next poll.
function mediaAction(r) {
  if (r.status !== "granted" || !r.grant || r.used) return null;
  const used = () => {
    r.used = true;
    saveRequests();
    renderRequests();
  };
  if (r.scope === "live") {
    return el("button", { type: "button", onclick: () => {
      used();
      watchLive(r.grant, r.camera, (words) => {
        Object.assign(r, { status: "ended", reason: words });
        saveRequests();
        renderRequests();
        say(`Live video of ${r.camera} stopped: ${words}.`);
      });
    } }, `Watch camera ${r.camera}`);
  }
  const what = r.scope === "snapshot" ? "the snapshot" : "the recorded video";
  return el("button", { type: "button", onclick: () => {
    used();
    download(r.grant, r.camera, r.scope).catch((failure) => say(problemText(failure)));
  } }, `Download ${what} of camera ${r.camera}`);
}

function ticks() {
  for (const span of document.querySelectorAll("#requests .countdown")) {
    span.textContent = clock((Date.parse(span.dataset.deadline) - Date.now()) / 1000);
  }
}

// A datetime-local field's value ("2026-12-06T14:05:00", the officer's local time) as
// ISO 8601 in UTC ("…Z"), or null when empty or not a time.
function fieldTime(id) {
  const value = document.getElementById(id).value;
  const when = value ? new Date(value) : null;
  return when && !Number.isNaN(when.getTime()) ? when.toISOString() : null;
}

// The recorded window's fields show with "Recorded video", first set to the last ten minutes.
function showWindow() {
  const recorded = document.getElementById("scope").value === "recorded";
  document.getElementById("window").hidden = !recorded;
  const local = (ms) => {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 19);
  };
  const [from, to] = [document.getElementById("window-from"), document.getElementById("window-to")];
  if (recorded && !from.value && !to.value) {
    from.value = local(Date.now() - 600000);
    to.value = local(Date.now());
  }
}

async function requestAccess(camera) {
  const scope = document.getElementById("scope").value;
  const body = { camera, scope, purpose: document.getElementById("purpose").value, duration_s: 300 };
  if (scope === "recorded") {
    body.from = fieldTime("window-from");
    body.to = fieldTime("window-to");
    if (!body.from || !body.to) {
      say("Give the recorded video's start and end (From and To).");
      return;
    }
  }
  let entry;
  try {
    const answer = await api("POST", API.requests(incident), body);
    entry = { id: answer.request, camera, scope, status: answer.status === "granted" ? "granted" : "waiting",
      deadline: answer.deadline, expires_at: answer.grant && answer.grant.expires_at,
      grant: answer.grant && answer.grant.id };
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403) {
      say(problemText(error));
      return;
    }
    entry = { id: null, camera, scope, status: "refused", reasons: error.problem.reasons || [error.message] };
  }
  requests.push(entry);
  saveRequests();
  renderRequests();
  say(`Request for ${camera}: ${entry.status}.`);
}

// Where a request stands, in the console's words, from GET /requests/{id} (waiting, granted,
// refused) and the clock: a grant past its end has "ended"; a held request past the owner's
// deadline is "no-answer" (no answer counts as no); the owner's yes stored before the grant is
// issued is still "waiting". A revocation is learnt from its event (or the live socket's close).
function standsNow(now, r) {
  const grant = now.grant;
  if (grant) {
    const next = { status: "granted", grant: grant.id, expires_at: grant.expires_at };
    if (Date.parse(grant.expires_at) > Date.now()) return next;
    return { ...next, status: "ended", reason: `the grant expired at ${localTime(grant.expires_at)}` };
  }
  if (now.decision && !now.decision.allowed) {
    const votes = now.decision.votes || [];
    return { status: "refused",
      reasons: votes.filter((v) => v.verdict === "deny").map((v) => `${v.policy}: ${v.reason}`) };
  }
  if (r.deadline && Date.parse(r.deadline) <= Date.now()) {
    return { status: "no-answer", reason: "the owner did not answer in time" };
  }
  return { status: "waiting" };
}

const refreshRequests = serial(async () => {
  let changed = false;
  for (const r of requests) {
    if (!r.id || FINAL.has(r.status)) continue;
    const next = standsNow(await api("GET", API.request(r.id)), r);
    if (next.status !== r.status || next.reason !== r.reason) {
      Object.assign(r, next);
      changed = true;
      say(`Request for ${r.camera}: ${next.status}${next.reason ? ` — ${next.reason}` : ""}.`);
    }
  }
  if (changed) {
    saveRequests();
    renderRequests();
  }
});

// An owner revoked: every granted request for their cameras has ended.
function revoked(data) {
  let changed = false;
  for (const r of requests) {
    if (r.status !== "granted" || !data.cameras.includes(r.camera)) continue;
    Object.assign(r, { status: "ended", reason: `the owner revoked consent at ${localTime(data.at)}` });
    changed = true;
    say(`Request for ${r.camera}: ended — the owner revoked consent.`);
  }
  if (changed) {
    saveRequests();
    renderRequests();
  }
}

document.getElementById("scope").addEventListener("change", showWindow);
document.getElementById("purpose").replaceChildren(...CONFIG.purposes.map((p) => el("option", { value: p }, p)));

onSubmit("report", "report-error", async (form) => {
  const made = await api("POST", API.incidents, {
    kind: form.kind.value.trim(),
    lat: Number(form.lat.value),
    lon: Number(form.lon.value),
    radius_m: Number(form.radius.value),
  });
  await showIncident(made.id);
});

document.getElementById("open-incident").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await showIncident(document.getElementById("incident-id").value.trim());
  } catch (failure) {
    say(problemText(failure));
  }
});

(async () => {
  await loadSession();
  if (!CONFIG.canReport) {
    for (const field of document.querySelectorAll("#report input, #report select, #report button")) {
      field.disabled = true;
    }
    document.getElementById("report-error").textContent = "Your role reads incidents; it does not report them.";
  }
  setupMap();
  showWindow();
  renderRequests();
  window.setInterval(ticks, 1000);
  const id = window.location.hash.slice(1);
  if (id) await showIncident(id).catch((failure) => say(problemText(failure)));
  // News at once from the server-sent events; the poll is the fallback.
  listen(["decision", "grant.issued", "access.ended", "revocation"], (name, data) => {
    if (name === "revocation") revoked(data);
    refreshRequests().catch((error) => say(problemText(error)));
  });
  poll(refreshRequests);
})();

"use strict";
// The owner portal: requests waiting for an answer, cameras and terms, privacy masks drawn on
// a current picture (masks.js), the waiver, every access and refusal, revocation.

const OUTCOME_WORDS = {
  granted: "allowed",
  refused: "refused",
  "no-answer": "no answer (counts as no)",
  waiting: "waiting for you",
};
let waiver = null;
const pendingItems = new Map(); // request id → its <li>
// The history is read from the owner's whole slice of the audit log: read it again when
// something changed here (an answer, a revocation, terms, a request come or gone), else at
// most every HISTORY_MS.
const HISTORY_MS = 15000;
let historyAt = 0;
let historyStale = true;

function countdowns() {
  for (const item of pendingItems.values()) {
    const left = (Date.parse(item.dataset.deadline) - Date.now()) / 1000;
    item.querySelector(".countdown").textContent = clock(left);
  }
}

async function answer(id, approve, item) {
  for (const button of item.querySelectorAll("button")) button.disabled = true;
  try {
    const decision = await api("POST", API.answer(id), { approve });
    say(approve && decision.allowed ? "You said yes: access granted." : "You said no.");
  } catch (error) {
    say(problemText(error));
  }
  historyStale = true;
  await refresh();
}

function pendingItem(p) {
  const item = el(
    "li",
    { "data-request": p.request, "data-deadline": p.deadline },
    el("p", {}, el("strong", {}, `Camera ${p.camera}`), `: the police ask for ${p.scope} view`,
      ` for ${Math.round(p.duration_s)} s, purpose ${p.purpose}, incident ${p.incident}.`),
    p.note ? el("p", {}, `Their note: ${p.note}`) : null,
    el("p", {}, "Time left to answer: ", el("span", { class: "countdown" }, "…"),
      " (no answer counts as no)"),
  );
  item.append(
    el("button", { type: "button", onclick: () => answer(p.request, true, item) },
      `Yes, allow camera ${p.camera}`),
    " ",
    el("button", { type: "button", class: "secondary", onclick: () => answer(p.request, false, item) },
      `No, refuse camera ${p.camera}`),
  );
  return item;
}

// A browser notification of a new request, where the owner allowed them (the page's own
// words in the status line are said either way).
function notify(p) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  new Notification(`camgate: the police ask to see camera ${p.camera}`, {
    body: `${p.scope} view for ${Math.round(p.duration_s)} s, purpose ${p.purpose}. Answer before ${localTime(p.deadline)}.`,
    tag: p.request,
  });
}

async function refreshPending() {
  const { pending } = await api("GET", API.pending);
  const list = document.getElementById("pending");
  const ids = new Set(pending.map((p) => p.request));
  for (const [id, item] of pendingItems) {
    if (!ids.has(id)) {
      item.remove();
      pendingItems.delete(id);
      historyStale = true;
    }
  }
  for (const p of pending) {
    if (pendingItems.has(p.request)) continue;
    const item = pendingItem(p);
    pendingItems.set(p.request, item);
    list.append(item);
    historyStale = true;
    say(`New request for camera ${p.camera}: answer yes or no.`);
    notify(p);
  }
  document.getElementById("pending-empty").hidden = pending.length > 0;
  countdowns();
}

// The consent that stands for a camera: the newest unrevoked enrolment covering it.
function standing(enrolments, cameraId) {
  const covering = enrolments.filter((e) => !e.revoked_at && e.camera_ids.includes(cameraId));
  return covering.length ? covering[covering.length - 1] : null;
}

async function refreshCameras() {
  const [{ cameras }, { enrolments }] = await Promise.all([
    api("GET", API.cameras), api("GET", API.enrolments)]);
  const rows = cameras.map((c) => {
    const consent = standing(enrolments, c.id);
    return el("tr", { "data-camera": c.id },
      el("th", { scope: "row" }, c.label ? `${c.id} (${c.label})` : c.id),
      el("td", {}, consent ? "Yes" : "No"),
      el("td", {}, consent ? (consent.terms.mode === "ask" ? "Ask first" : "Pre-authorised") : ""),
      el("td", {}, consent ? consent.terms.scopes.join(", ") : ""),
      el("td", {}, consent ? consent.waiver_version : ""));
  });
  document.getElementById("cameras").replaceChildren(...rows);
  const boxes = document.getElementById("terms-cameras");
  if (!boxes.childElementCount) {
    boxes.replaceChildren(...cameras.map((c) =>
      el("label", {}, el("input", { type: "checkbox", name: "camera", value: c.id, checked: true }),
        ` ${c.id}${c.label ? ` (${c.label})` : ""}`)));
  }
}

async function refreshHistory() {
  if (!historyStale && Date.now() - historyAt < HISTORY_MS) return;
  historyStale = false;
  historyAt = Date.now();
  const history = await api("GET", API.accesses);
  const rows = history.requests.slice().reverse().map((r) =>
    el("tr", { "data-request": r.id, "data-outcome": r.outcome },
      el("td", {}, localTime(r.at)),
      el("td", {}, r.camera),
      el("td", {}, r.requested_by),
      el("td", {}, `${r.purpose}${r.incident_kind ? `, ${r.incident_kind}` : ""}`),
      el("td", {}, `${r.scope}, ${Math.round(r.duration_s)} s`),
      el("td", {}, OUTCOME_WORDS[r.outcome] || r.outcome),
      el("td", {}, reasonList(r.reasons || []))));
  document.getElementById("history").replaceChildren(...rows);
  const revoked = history.revocations.map((r) => `${localTime(r.at)} (${r.cameras.join(", ")})`);
  document.getElementById("revocations").textContent =
    revoked.length ? `You stopped sharing: ${revoked.join("; ")}.` : "";
}

const refresh = serial(async () => {
  await Promise.all([refreshPending(), refreshCameras()]);
  await refreshHistory(); // after the pending list, which may mark it stale
});

async function loadWaiver() {
  try {
    const { waivers } = await api("GET", API.waivers);
    waiver = waivers.length ? waivers[waivers.length - 1] : null; // the newest published
  } catch (error) {
    document.getElementById("waiver-text").textContent = problemText(error);
    return;
  }
  if (!waiver) {
    document.getElementById("waiver-text").textContent = "No waiver is published yet.";
    return;
  }
  document.getElementById("waiver-version").textContent = waiver.version;
  document.getElementById("waiver-sha256").textContent = waiver.sha256;
  document.getElementById("waiver-text").textContent = waiver.text;
}

onSubmit("terms", "terms-error", async (form) => {
  const cameras = [...form.querySelectorAll("input[name=camera]:checked")].map((i) => i.value);
  const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((i) => i.value);
  if (!waiver || !cameras.length || !scopes.length) {
    throw new Error("Choose at least one camera and one kind of view.");
  }
  await api("POST", API.enrolments, {
    cameras,
    waiver_version: waiver.version, // the text shown above, by its hash
    waiver_sha256: waiver.sha256,
    terms: { scopes, mode: form.querySelector("input[name=mode]:checked").value },
  });
  say(`Saved: waiver ${waiver.version} accepted for ${cameras.join(", ")}.`);
  historyStale = true;
  await refresh();
});

document.getElementById("revoke").addEventListener("click", async (event) => {
  event.target.disabled = true;
  try {
    const revoked = await api("POST", API.revoke);
    say(`Sharing stopped for ${revoked.cameras.join(", ") || "no camera"}.`);
    historyStale = true;
    await refresh();
  } catch (error) {
    say(problemText(error));
  } finally {
    event.target.disabled = false;
  }
});

// Check a slice's text in the page (slice.js) and say the result.
async function showSlice(text) {
  const line = document.getElementById("slice-result");
  line.textContent = "Checking…";
  const found = await checkSlice(text);
  line.dataset.ok = String(found.ok);
  line.textContent = found.ok
    ? `Verified: ${found.records} records about your cameras, complete and unaltered up to ` +
      `record ${found.until}, signed by key ${found.key}.`
    : `FAILED: ${found.problem}.`;
}

document.getElementById("slice-get").addEventListener("click", async () => {
  try {
    const answer = await fetch(API.mySlice, { credentials: "same-origin", redirect: "error" });
    const text = await answer.text();
    if (!answer.ok) throw new ApiError(answer.status, JSON.parse(text));
    const link = document.getElementById("slice-save");
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    link.hidden = false;
    await showSlice(text);
  } catch (error) {
    say(problemText(error));
  }
});

document.getElementById("slice-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (file) await showSlice(await file.text());
});

(async () => {
  await loadSession();
  await loadWaiver();
  initMasks().catch((error) => say(problemText(error)));
  window.setInterval(countdowns, 1000);
  // News at once from the server-sent events; the poll is the fallback.
  listen(["request.waiting", "decision", "revocation", "access.started", "access.ended"], (name) => {
    if (name !== "request.waiting") historyStale = true;
    refresh().catch((error) => say(problemText(error)));
  });
  const ask = document.getElementById("notify");
  if ("Notification" in window && Notification.permission === "default") {
    ask.hidden = false;
    ask.addEventListener("click", async () => {
      ask.hidden = (await Notification.requestPermission()) !== "default";
    });
  }
  poll(refresh);
})();

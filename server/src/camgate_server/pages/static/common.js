"use strict";
// Shared by every page: the page's config, the session, fetch with the CSRF token, DOM helpers.
// Text goes into the page only as text (textContent), never as HTML.

const CONFIG = JSON.parse(document.getElementById("config").textContent);

// Every JSON API path the pages call, in one table (docs/api.md).
const API = {
  session: "/session",
  acceptInvite: "/invites/accept",
  waivers: "/waivers",
  cameras: "/cameras",
  enrolments: "/owners/me/enrolments",
  pending: "/owners/me/pending",
  answer: (id) => `/requests/${encodeURIComponent(id)}/answer`,
  accesses: "/owners/me/accesses",
  revoke: "/owners/me/revoke",
  mySlice: "/owners/me/audit",
  look: (camera) => `/cameras/${encodeURIComponent(camera)}/look`,
  masks: (camera) => `/cameras/${encodeURIComponent(camera)}/masks`,
  incidents: "/incidents",
  owners: "/owners",
  accounts: "/accounts",
  invites: (owner) => `/owners/${encodeURIComponent(owner)}/invites`,
  report: "/report",
  survey: (id, query) => `/incidents/${encodeURIComponent(id)}/cameras?${query}`,
  requests: (incident) => `/incidents/${encodeURIComponent(incident)}/requests`,
  request: (id) => `/requests/${encodeURIComponent(id)}`,
  events: "/events",
};

// How often a page asks for news when no event came: the fallback under the server-sent
// events (listen()), which bring news at once. A test may set window.CAMGATE_POLL_MS first.
const POLL_MS = window.CAMGATE_POLL_MS || 15000;
// How long to wait before opening the event stream again when the server ended it.
const REOPEN_MS = 2000;

let csrfToken = null;
// Signing out: polls and event streams stop, so none races the sign-out's navigation.
let leaving = false;

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// A JSON API call with the session cookie; every state-changing call carries the CSRF token.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken || "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    redirect: "error",
  });
  const data = answer.status === 204 ? null : await answer.json().catch(() => null);
  if (!answer.ok) throw new ApiError(answer.status, data || {});
  return data;
}

// The signed-in account (and its CSRF token), or null when nobody is signed in.
async function loadSession() {
  try {
    const session = await api("GET", API.session);
    csrfToken = session.csrf_token;
    const who = document.getElementById("whoami");
    who.textContent = `Signed in as ${session.account.username} (${session.account.role})`;
    document.getElementById("sign-out").hidden = false;
    return session.account;
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}

// el("li", {class: "x", "data-id": id}, "text", child, …): an element with attributes and
// children (strings become text nodes).
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Tell screen readers (and anyone looking at the status line) what just happened.
function say(text) {
  document.getElementById("status").textContent = text;
}

// A problem document in words: its detail, then each reason.
function problemText(error) {
  if (!(error instanceof ApiError)) return error instanceof Error ? error.message : String(error);
  const reasons = error.problem.reasons || [];
  return [error.message, ...reasons].join(" — ");
}

function reasonList(reasons) {
  return el("ul", { class: "reasons" }, reasons.map((r) => el("li", {}, r)));
}

// "4:05" for 245 seconds; "0:00" once past.
function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function localTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

// On the form's submit, run action(form); a failure's words go into the error line errorId.
function onSubmit(formId, errorId, action, words = problemText) {
  document.getElementById(formId).addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById(errorId);
    error.textContent = "";
    try {
      await action(event.target);
    } catch (failure) {
      error.textContent = words(failure);
    }
  });
}

// fn made to run one at a time: a call while it runs queues one more run after it (calls
// then coalesce), so an event and a poll never interleave two refreshes of the same list.
function serial(fn) {
  let chain = Promise.resolve();
  let queued = false;
  return () => {
    if (queued) return chain;
    queued = true;
    chain = chain.catch(() => null).then(() => {
      queued = false;
      return fn();
    });
    return chain;
  };
}

// Call fn now and every POLL_MS after it settles; a failure is said, not thrown.
function poll(fn) {
  const tick = async () => {
    if (leaving) return;
    try {
      await fn();
    } catch (error) {
      if (leaving) return;
      if (error instanceof ApiError && error.status === 401) {
        window.location.assign(`/?next=${encodeURIComponent(window.location.pathname)}`);
        return;
      }
      say(problemText(error));
    }
    window.setTimeout(tick, POLL_MS);
  };
  tick();
}

// Open the server-sent events (GET /events) and call onEvent(name, data) for each event of
// `names`, and onEvent(null, null) whenever the stream (re)opens (news may have been missed
// while it was down). The browser's EventSource reconnects on its own sending Last-Event-ID;
// when the server ends the stream for good (an error answer), it is opened again after
// REOPEN_MS from after the last event seen (?after=), so no event is lost and none repeats.
function listen(names, onEvent) {
  let last = null;
  const open = () => {
    if (leaving) return;
    const url = last === null ? API.events : `${API.events}?after=${encodeURIComponent(last)}`;
    const source = new EventSource(url);
    source.addEventListener("open", () => onEvent(null, null));
    for (const name of names) {
      source.addEventListener(name, (event) => {
        if (event.lastEventId) last = event.lastEventId;
        onEvent(name, JSON.parse(event.data));
      });
    }
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects itself
      source.close();
      window.setTimeout(open, REOPEN_MS);
    });
    window.addEventListener("pagehide", () => source.close(), { once: true });
  };
  open();
}

document.getElementById("sign-out").addEventListener("click", async () => {
  leaving = true;
  await api("DELETE", API.session).catch(() => null);
  window.location.assign("/");
});

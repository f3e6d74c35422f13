"use strict";
// The admin and auditor page: owners (and, for an admin, inviting one), the accounts and their
// roles, the agency's rules
// (read only), waivers (an admin publishes), the transparency report with its charts (inline
// SVG drawn here: no chart library, no CDN). What a role may do is the API's to decide; the
// page only hides the forms a role cannot use.

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function words(value) {
  if (value === null || value === undefined) return "not set";
  if (Array.isArray(value)) return value.length ? value.map(words).join(", ") : "none";
  if (typeof value === "object") {
    const parts = Object.entries(value).map(([k, v]) => `${k}: ${words(v)}`);
    return parts.length ? parts.join("; ") : "none";
  }
  return String(value);
}

function showRules() {
  const items = Object.entries(CONFIG.rules).filter(([key]) => !key.startsWith("_"));
  document.getElementById("rules").replaceChildren(...items.flatMap(([key, value]) =>
    [el("dt", {}, key.replaceAll("_", " ")), el("dd", {}, words(value))]));
}

async function showOwners() {
  const { owners } = await api("GET", API.owners);
  document.getElementById("owners").replaceChildren(...owners.map((o) =>
    el("tr", { "data-owner": o.id }, el("th", { scope: "row" }, o.id), el("td", {}, o.name),
      el("td", {}, o.contact || ""))));
}

async function showAccounts() {
  const { accounts } = await api("GET", API.accounts);
  document.getElementById("accounts").replaceChildren(...accounts.map((a) =>
    el("tr", { "data-username": a.username }, el("th", { scope: "row" }, a.username),
      el("td", {}, a.role), el("td", {}, a.owner || ""))));
}

async function showWaivers() {
  const { waivers } = await api("GET", API.waivers);
  document.getElementById("waivers").replaceChildren(...waivers.slice().reverse().map((w) =>
    el("li", { "data-version": w.version },
      el("p", {}, el("strong", {}, `Version ${w.version}`), ", SHA-256 ", el("code", {}, w.sha256)),
      el("p", { class: "waiver" }, w.text))));
}

// One bar per column total of a report table; a suppressed count is drawn as an empty
// outlined bar labelled "hidden" (fewer than k, or would reveal one).
function chart(name, table) {
  const columns = table.columns;
  const values = columns.map((c) => table.column_totals[c]);
  const top = Math.max(1, ...values.filter((v) => v !== null));
  const width = 60 * columns.length + 20;
  const bars = columns.flatMap((c, i) => {
    const v = values[i];
    const h = v === null ? 100 : Math.round((100 * v) / top);
    const x = 20 + 60 * i;
    return [
      svg("rect", { x, y: 120 - h, width: 40, height: h, class: v === null ? "bar hidden" : "bar" }),
      svg("text", { x: x + 20, y: 112 - h, "text-anchor": "middle" }, v === null ? "hidden" : v),
      svg("text", { x: x + 20, y: 136, "text-anchor": "middle" }, c),
    ];
  });
  const title = `${name.replaceAll("_", " ")}: ${columns.map((c, i) =>
    `${c} ${values[i] === null ? "hidden" : values[i]}`).join(", ")}`;
  return svg("svg", { viewBox: `0 0 ${width} 145`, width, height: 145, role: "img",
    "aria-label": title, "data-table": name }, svg("title", {}, title), ...bars);
}

function reportTable(name, table) {
  const cell = (v) => (v === null ? "hidden" : v);
  return el("table", { "data-table": name },
    el("caption", {}, name.replaceAll("_", " ")),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, ""),
      table.columns.map((c) => el("th", { scope: "col" }, c)), el("th", { scope: "col" }, "total"))),
    el("tbody", {}, table.rows.map((r) => el("tr", {}, el("th", { scope: "row" }, r),
      table.columns.map((c) => el("td", {}, cell(table.cells[r][c]))),
      el("td", {}, cell(table.row_totals[r]))))));
}

onSubmit("report", "report-error", async (form) => {
  const query = new URLSearchParams({ period: form.period.value.trim(), k: form.k.value });
  const report = await api("GET", `${API.report}?${query}`);
  const out = [];
  for (const [name, value] of Object.entries(report)) {
    if (value && typeof value === "object" && Array.isArray(value.columns) && value.cells) {
      out.push(el("figure", { class: "chart" }, chart(name, value), reportTable(name, value)));
    }
  }
  document.getElementById("report-out").replaceChildren(...out);
  say(`Report for ${query.get("period")} shown.`);
});

onSubmit("publish", "publish-error", async (form) => {
  const made = await api("POST", API.waivers, { version: form.version.value.trim(), text: form.text.value });
  form.reset();
  say(`Waiver ${made.version} published.`);
  await showWaivers();
});

onSubmit("invite", "invite-error", async (form) => {
  const id = form.id.value.trim();
  await api("POST", API.owners, { id, name: form.name.value.trim(), contact: form.contact.value.trim() });
  const invite = await api("POST", API.invites(id), {});
  const link = `${window.location.origin}${invite.path}`;
  document.getElementById("invite-link").replaceChildren("Send the owner this link (it works once): ",
    el("code", {}, link));
  form.reset();
  await showOwners();
});

(async () => {
  await loadSession();
  showRules();
  document.getElementById("publish").hidden = !CONFIG.canPublish;
  document.getElementById("invite").hidden = !CONFIG.canInvite;
  document.getElementById("owners-card").hidden = !CONFIG.canReadOwners;
  document.getElementById("accounts-card").hidden = !CONFIG.canReadAccounts;
  document.getElementById("period").value = String(new Date().getUTCFullYear());
  await Promise.all([showWaivers(), CONFIG.canReadOwners ? showOwners() : null,
    CONFIG.canReadAccounts ? showAccounts() : null])
    .catch((error) => say(problemText(error)));
})();

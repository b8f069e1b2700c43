/* Flagstaff console: shared behaviour for every page (no build step, no framework).
 *
 * - fsApi(): JSON calls to /ui/api with the session cookie and the CSRF header;
 * - fsShowErrors(): puts an API error next to the field it names (details.field);
 * - generic forms (data-api), action buttons (data-action, optional confirmation dialog),
 *   on/off switches, the sandbox, and live updates from /ui/events (EventSource);
 * - the flag page's reach section, refreshed every second while a change is still spreading.
 */
"use strict";

const fs = {};
window.fs = fs;

fs.csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
fs.pageVersion = () => Number(document.body.dataset.version || 0);
fs.ownVersions = new Set();
fs.pending = 0;       // console writes in flight
fs.deferred = [];     // live events that arrived meanwhile (they may be our own writes)

fs.el = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
};

fs.api = async function (method, url, body, options) {
  const headers = { "X-CSRF-Token": fs.csrf(), "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (options && options.ifMatch) headers["If-Match"] = '"' + options.ifMatch + '"';
  fs.pending += 1;
  let response;
  let data = {};
  try {
    response = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    try { data = await response.json(); } catch (e) { data = {}; }
    // Remember our own versions before live events about them are looked at.
    if (response.ok && data && data.flag) fs.ownVersions.add(data.flag.version);
  } finally {
    fs.pending -= 1;
    if (fs.pending === 0) fs.deferred.splice(0).forEach((args) => onChange(...args));
  }
  if (!response.ok) {
    const error = (data && data.error) || { code: "http_" + response.status, message: response.statusText, details: {} };
    error.status = response.status;
    throw error;
  }
  return data;
};

/* --- errors next to fields ---------------------------------------------------------------- */

fs.clearErrors = function (root) {
  root.querySelectorAll(".field-error").forEach((n) => n.remove());
  root.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
  root.querySelectorAll(".form-error").forEach((n) => { n.hidden = true; n.textContent = ""; });
};

function matchesField(candidate, field) {
  if (!candidate) return false;
  if (candidate === field) return true;
  return field.startsWith(candidate) && (field[candidate.length] === "." || field[candidate.length] === "[");
}

fs.fieldFor = function (root, field) {
  let best = null;
  root.querySelectorAll("[data-field], [name]").forEach((node) => {
    const name = node.dataset.field || node.getAttribute("name");
    if (matchesField(name, field) && (!best || name.length > best.name.length)) best = { node, name };
  });
  return best && best.node;
};

fs.showErrors = function (root, error) {
  if (error.status === 412 && error.details && error.details.changes) { fs.showConflict(error); return; }
  const field = (error.details && error.details.field) || "";
  const target = field ? fs.fieldFor(root, field) : null;
  const text = (field && !target ? field + ": " : "") + error.message;
  if (target) {
    const id = "err-" + Math.random().toString(36).slice(2);
    const note = fs.el("p", { class: "error field-error", id, role: "alert", text });
    const control = target.matches("input, select, textarea, button") ? target : target.querySelector("input, select, textarea");
    if (control) {
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", id);
    }
    target.after(note);
    if (control) control.focus();
    return;
  }
  const general = root.querySelector(".form-error") || document.querySelector("#page-error");
  if (general) { general.hidden = false; general.textContent = text; general.focus && general.focus(); }
  else fs.announce(text);
};

fs.announce = function (text) {
  const live = document.getElementById("live");
  if (!live) return;
  live.textContent = text;
  live.classList.add("visible");
  clearTimeout(fs._announceTimer);
  fs._announceTimer = setTimeout(() => live.classList.remove("visible"), 6000);
};

/* --- 412: the flag changed since the page was loaded -------------------------------------- */

// "moves 20.4 % of its users to another variant (order)": the server's reassign entry in words.
fs.reassignedText = function (d) {
  const percent = String(Number((d.share * 100).toFixed(3)));
  return `moves ${d.exact ? "" : "about "}${percent} % of its users to another variant (${(d.causes || []).join(", ")})`;
};

function diffItem(d) {
  const show = (v) => JSON.stringify(v);
  if (d.op === "reassign") return fs.el("li", { class: "diff-reassign" }, fs.el("code", { class: "path", text: d.path }), " ", fs.el("strong", { class: "reassign", text: fs.reassignedText(d) }));
  if (d.op === "add") return fs.el("li", { class: "diff-add" }, fs.el("code", { class: "path", text: d.path }), " ", fs.el("ins", { text: show(d.new) }));
  if (d.op === "remove") return fs.el("li", { class: "diff-remove" }, fs.el("code", { class: "path", text: d.path }), " ", fs.el("del", { text: show(d.old) }));
  return fs.el("li", { class: "diff-replace" }, fs.el("code", { class: "path", text: d.path }), " ",
    fs.el("del", { text: show(d.old) }), " → ", fs.el("ins", { text: show(d.new) }));
}

fs.showConflict = function (error) {
  const panel = document.getElementById("conflict");
  if (!panel) { fs.announce(error.message); return; }
  panel.querySelector(".conflict-message").textContent = error.message;
  const list = fs.el("ol", { class: "audit" });
  for (const change of error.details.changes) {
    list.append(fs.el("li", { class: "audit-entry" },
      fs.el("div", { class: "audit-head" }, fs.el("strong", { text: change.action }),
        change.environment ? " in " + change.environment : "",
        fs.el("span", { class: "muted", text: ` → version ${change.version} by ${change.actor} · ${String(change.created_at).slice(0, 16).replace("T", " ")} UTC` })),
      fs.el("ul", { class: "diff" }, change.diff.map(diffItem))));
  }
  const box = panel.querySelector(".conflict-changes");
  box.replaceChildren(list);
  panel.hidden = false;
  panel.setAttribute("tabindex", "-1");
  panel.focus();
  panel.scrollIntoView({ block: "start" });
};

/* --- confirmation dialog ------------------------------------------------------------------ */

// The users a write moves, for a confirmation: null (not known, say nothing) or the server's
// reassign entries (an empty list: no rollout moves anyone).
function reassignList(entries) {
  if (entries === null) return [];
  const title = fs.el("strong", { text: "Users reassigned" });
  if (!entries.length) return [title, fs.el("p", { text: "None: no rollout serves anyone another variant." })];
  return [title,
    fs.el("ul", { class: "diff" }, entries.map((d) => fs.el("li", { class: "diff-reassign" },
      fs.el("code", { class: "path", text: d.path }), " ", fs.el("strong", { class: "reassign", text: fs.reassignedText(d) })))),
    fs.el("p", { class: "muted", text: "From the rollouts' bucket ranges, not sampled" +
      (entries.some((d) => !d.exact) ? "; estimated where the salt or bucketing attribute changes." : ".") })];
}

fs.confirm = function (message, label, askReason, reassigns = null) {
  return new Promise((resolve) => {
    let dialog = document.getElementById("confirm-dialog");
    if (!dialog) {
      dialog = fs.el("dialog", { id: "confirm-dialog", "aria-labelledby": "confirm-text" },
        fs.el("form", { method: "dialog", class: "stack" },
          fs.el("p", { id: "confirm-text" }),
          fs.el("div", { class: "confirm-reassigns", id: "confirm-reassigns" }),
          fs.el("div", { class: "field confirm-reason" },
            fs.el("label", { for: "confirm-reason", text: "Reason (kept in the audit log)" }),
            fs.el("input", { id: "confirm-reason", name: "reason", maxlength: "500",
                             placeholder: "e.g. checkout errors after deploy 4812" })),
          fs.el("div", { class: "actions" },
            fs.el("button", { value: "cancel", class: "cancel", autofocus: true, text: "Cancel" }),
            fs.el("button", { value: "ok", class: "danger confirm-ok" }))));
      document.body.append(dialog);
    }
    dialog.querySelector("#confirm-text").textContent = message;
    dialog.querySelector(".confirm-ok").textContent = label || "Confirm";
    const moved = dialog.querySelector(".confirm-reassigns");
    moved.replaceChildren(...reassignList(reassigns));
    moved.hidden = reassigns === null;
    dialog.querySelector(".confirm-reason").hidden = !askReason;
    dialog.querySelector("#confirm-reason").value = "";
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    dialog.querySelector(".cancel").focus();
  });
};

/* --- writes that change the page ---------------------------------------------------------- */

fs.afterFlagWrite = async function (data) {
  if (data && data.flag) {
    fs.ownVersions.add(data.flag.version);
    document.body.dataset.version = data.flag.version;
    const shown = document.getElementById("flag-version");
    if (shown) shown.textContent = data.flag.version;
    if (window.fsEditor && window.fsEditor.reloadFlag) window.fsEditor.reloadFlag(data.flag);
  }
  await fs.refreshStatus();
  await fs.refreshFleet();
};

fs.refreshStatus = async function () {
  const box = document.getElementById("flag-status");
  const key = document.body.dataset.flag;
  if (!box || !key) return;
  const response = await fetch(`/ui/fragments/flag-status/${encodeURIComponent(key)}`, { credentials: "same-origin" });
  if (!response.ok) return;
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.toggle : null;
  box.innerHTML = await response.text();
  if (focused) { const again = box.querySelector(`[data-toggle="${focused}"]`); if (again) again.focus(); }
};

/* --- reach: which SDK instances and relays have the flag's latest change -------------------- */

fs.refreshFleet = async function () {
  const box = document.getElementById("flag-fleet");
  const key = document.body.dataset.flag;
  if (!box || !key) return;
  const response = await fetch(`/ui/fragments/flag-fleet/${encodeURIComponent(key)}`, { credentials: "same-origin" });
  if (!response.ok) return;
  const template = document.createElement("template");
  template.innerHTML = (await response.text()).trim();
  const fresh = template.content.firstElementChild;
  if (fresh) box.replaceWith(fresh);
};

function watchFleet() {
  if (!document.getElementById("flag-fleet")) return;
  // Every second while the latest change is still spreading (a kill converging), else every 5 s.
  const tick = async () => {
    if (!document.hidden) { try { await fs.refreshFleet(); } catch (e) { /* next tick */ } }
    const box = document.getElementById("flag-fleet");
    setTimeout(tick, box && box.dataset.complete !== "true" ? 1000 : 5000);
  };
  setTimeout(tick, 1000);
}

document.addEventListener("click", async (event) => {
  const toggle = event.target.closest("[data-toggle]");
  if (toggle) {
    event.preventDefault();
    const env = toggle.dataset.toggle;
    const enabled = toggle.getAttribute("aria-checked") !== "true";
    const key = document.body.dataset.flag;
    // aria-busy rather than disabled: disabling would drop the keyboard focus.
    if (toggle.getAttribute("aria-busy") === "true") return;
    toggle.setAttribute("aria-busy", "true");
    try {
      const data = await fs.api("PATCH", `/ui/api/flags/${encodeURIComponent(key)}/environments/${encodeURIComponent(env)}`,
        { enabled }, { ifMatch: fs.pageVersion() });
      fs.announce(`${key} is now ${enabled ? "on" : "off"} in ${env}`);
      await fs.afterFlagWrite(data);
    } catch (error) {
      toggle.removeAttribute("aria-busy");
      fs.showErrors(document.getElementById("flag-status"), error);
    }
    return;
  }
  const action = event.target.closest("[data-action]");
  if (action) {
    event.preventDefault();
    const askReason = action.hasAttribute("data-reason");
    const reassigns = action.dataset.reassigns ? JSON.parse(action.dataset.reassigns) : null;
    if (action.dataset.confirm && !(await fs.confirm(action.dataset.confirm, action.dataset.confirmLabel, askReason, reassigns))) return;
    try {
      const options = action.hasAttribute("data-if-match") ? { ifMatch: fs.pageVersion() } : undefined;
      const reason = askReason ? document.getElementById("confirm-reason").value.trim() : "";
      const body = reason ? { reason } : undefined;
      const data = await fs.api(action.dataset.method || "POST", action.dataset.action, body, options);
      const after = action.dataset.after || "reload";
      if (after === "status") { fs.announce("Done."); await fs.afterFlagWrite(data); }
      else if (after === "reload") window.location.reload();
      else window.location.assign(after);
    } catch (error) {
      fs.showErrors(action.closest("section, td, form, main") || document.body, error);
    }
    return;
  }
  const opener = event.target.closest("[data-open-dialog]");
  if (opener) { document.getElementById(opener.dataset.openDialog).showModal(); return; }
  const closer = event.target.closest("[data-close-dialog]");
  if (closer) closer.closest("dialog").close();
});

/* --- generic JSON forms (data-api) -------------------------------------------------------- */

function formBody(form) {
  const body = {};
  for (const input of form.querySelectorAll("[name]")) {
    let value = input.type === "checkbox" ? input.checked : input.value.trim();
    if (input.hasAttribute("data-optional") && value === "") continue;
    if (input.dataset.kind === "list") value = value.split(",").map((s) => s.trim()).filter(Boolean);
    if (input.dataset.kind === "json") {
      try { value = JSON.parse(value); } catch (e) {
        throw { message: "not valid JSON: " + e.message, details: { field: input.name } };
      }
    }
    body[input.name] = value;
  }
  return body;
}

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.dataset.api) return;
  event.preventDefault();
  fs.clearErrors(form);
  try {
    // A submit button may post the same fields elsewhere (a review's Approve / Reject / Comment).
    const endpoint = (event.submitter && event.submitter.dataset.api) || form.dataset.api;
    const data = await fs.api(form.dataset.method || "POST", endpoint, formBody(form));
    if (form.hasAttribute("data-redirect-flag")) window.location.assign(`/ui/flags/${encodeURIComponent(data.flag.key)}`);
    else if (form.hasAttribute("data-show-secret")) {
      const panel = document.getElementById("new-secret");
      panel.hidden = false;
      document.getElementById("secret-value").value = data.secret;
      document.getElementById("secret-value").select();
      form.reset();
    } else if (form.dataset.redirect) window.location.assign(form.dataset.redirect.replace("{key}", encodeURIComponent(form.elements.key ? form.elements.key.value : "")));
  } catch (error) {
    fs.showErrors(form, error);
  }
});

/* --- sandbox ------------------------------------------------------------------------------ */

function sandbox(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fs.clearErrors(form);
    const out = document.getElementById("sandbox-results");
    try {
      let context;
      try { context = JSON.parse(form.elements.context.value); } catch (e) {
        throw { message: "the context is not valid JSON: " + e.message, details: { field: "context" } };
      }
      const data = await fs.api("POST", "/ui/api/evaluate", { context, environment: form.elements.environment.value });
      const rows = data.flags.map((r) => fs.el("tr", {},
        fs.el("th", { scope: "row" }, fs.el("a", { href: `/ui/flags/${encodeURIComponent(r.key)}`, text: r.key })),
        fs.el("td", { class: "mono", text: JSON.stringify(r.value) }), fs.el("td", { text: r.variant ?? "—" }),
        fs.el("td", {}, fs.el("span", { class: "reason", text: r.reason }), r.rule_id ? ` (${r.rule_id})` : "",
          r.prerequisite_key ? ` (prerequisite ${r.prerequisite_key})` : "", r.error_message ? ` ${r.error_message}` : "")));
      out.replaceChildren(fs.el("table", { class: "grid" },
        fs.el("caption", { text: `${data.flags.length} flags in ${data.environment} (snapshot ${data.version})` }),
        fs.el("thead", {}, fs.el("tr", {}, ["Flag", "Value", "Variant", "Reason"].map((t) => fs.el("th", { scope: "col", text: t })))),
        fs.el("tbody", {}, rows)));
    } catch (error) { fs.showErrors(form, error); }
  });
}

/* --- live updates ------------------------------------------------------------------------- */

async function refreshRow(key, archived) {
  const table = document.getElementById("flag-table");
  const row = document.getElementById("row-" + key);
  if (archived) { if (row) row.remove(); return; }
  const env = table.dataset.environment || "";
  const state = table.dataset.state || "";
  const response = await fetch(`/ui/fragments/flag-row/${encodeURIComponent(key)}?environment=${encodeURIComponent(env)}&state=${encodeURIComponent(state)}`, { credentials: "same-origin" });
  if (!response.ok) return;
  const template = document.createElement("template");
  template.innerHTML = (await response.text()).trim();
  const fresh = template.content.firstElementChild;
  fresh.classList.add("flash");
  if (row) row.replaceWith(fresh);
  else table.tBodies[0].prepend(fresh);
}

function onChange(type, data) {
  if (fs.pending > 0) { fs.deferred.push([type, data]); return; }
  const key = data.key;
  const page = document.body.dataset.page;
  if (page === "flags" && document.getElementById("flag-table")) {
    refreshRow(key, type === "flag_archived");
    fs.announce(`${key} was ${type === "flag_archived" ? "archived" : "changed"}`);
  } else if (page === "flag" && document.body.dataset.flag === key) {
    const version = data.flag ? data.flag.version : null;
    if (version !== null && fs.ownVersions.has(version)) return;
    fs.refreshStatus();
    fs.refreshFleet();
    if (version === null || version > fs.pageVersion()) {
      const notice = document.getElementById("changed-elsewhere");
      notice.replaceChildren(`Someone else changed this flag${version ? ` (now version ${version})` : ""}. `,
        fs.el("a", { href: window.location.href, text: "Reload to see the latest rules" }));
      notice.hidden = false;
    }
  }
}

function live() {
  if (!window.EventSource || !document.querySelector('meta[name="csrf-token"]')) return;
  const source = new EventSource("/ui/events");
  for (const type of ["flag_updated", "flag_archived"]) {
    source.addEventListener(type, (event) => {
      try { onChange(type, JSON.parse(event.data)); } catch (e) { /* ignore malformed events */ }
    });
  }
  source.addEventListener("open", () => { document.body.dataset.live = "connected"; });
  window.addEventListener("pagehide", () => source.close());
  fs.source = source;
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("sandbox-form");
  if (form) sandbox(form);
  live();
  watchFleet();
});


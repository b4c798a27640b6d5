// Postern's page: the live fixture view (every captured message, arriving
// without a reload) and, for an account that logged in, webmail (its
// folders, flags, moves and sending).
//
// Live updates come from GET /api/v1/events (Server-Sent Events). A
// browser's EventSource cannot send an Authorization header; it sends the
// session cookie the login form set (HttpOnly, SameSite=Strict), or
// nothing where the API is open (capture mode on loopback).

import { api, get, segment, setCsrfToken, ApiError } from "./api.js";
import { $, el, clear, size, shortTime, longTime, person, people } from "./util.js";
import { state, PAGE_SIZE, hasFlag } from "./state.js";
import { initMessageView, openMessage, closeMessage, refreshOpenMessage } from "./message.js";
import { initCompose } from "./compose.js";

let listRequest = 0;
let events = null;
let lastSeen = 0;
let renderQueued = false;
let reloadTimer = null;
let firstList = true;

export function setStatus(text) {
  $("status").textContent = text;
}

/** Shows an error in the status line and returns it. */
export function report(error) {
  setStatus(error instanceof ApiError ? error.message : String(error));
  return error;
}

// ---- session and login ----

async function boot() {
  try {
    state.session = await get("/api/v1/session");
  } catch (error) {
    report(error);
    return;
  }
  setCsrfToken(state.session.csrf_token);
  if (!state.session.identity) {
    showLogin();
    return;
  }
  await showMain();
}

function showLogin() {
  $("main").hidden = true;
  $("search").hidden = true;
  $("login").hidden = false;
  $("login-open").hidden = true;
  $("login-user").focus();
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const token = $("login-token").value.trim();
  const body = token
    ? { token }
    : { username: $("login-user").value.trim(), password: $("login-password").value };
  try {
    state.session = await api("POST", "/api/v1/login", body);
  } catch (error) {
    $("login-error").textContent = error.message;
    return;
  }
  $("login-password").value = "";
  $("login-token").value = "";
  setCsrfToken(state.session.csrf_token);
  $("login").hidden = true;
  await showMain();
}

async function logout() {
  try {
    await api("POST", "/api/v1/logout");
  } catch (error) {
    report(error);
  }
  location.reload();
}

function describeSession() {
  const s = state.session;
  const who = {
    open: "capture mode (open)",
    admin: "admin",
    sandbox: `sandbox ${s.domain || ""}`,
    account: s.address,
  }[s.identity];
  $("who").textContent = who || "";
  $("logout").hidden = !s.csrf_token;
  $("login-open").hidden = s.identity !== "open";
  $("compose").hidden = !s.can_send;
  $("delete-all").hidden = s.webmail;
}

async function showMain() {
  state.webmail = Boolean(state.session.webmail);
  describeSession();
  $("main").hidden = false;
  $("search").hidden = false;
  $("folders").hidden = !state.webmail;
  document.body.classList.toggle("webmail", state.webmail);
  if (state.webmail) await loadFolders();
  await connectEvents();
  await loadList();
}

// ---- folders (webmail) ----

async function loadFolders() {
  try {
    const answer = await get("/api/v1/mailboxes");
    state.folders = answer.mailboxes;
  } catch (error) {
    report(error);
  }
  renderFolders();
}

function folderLabel(f) {
  return f.name === "INBOX" ? "Inbox" : f.name;
}

function renderFolders() {
  const list = clear($("folder-list"));
  for (const f of state.folders) {
    const button = el(
      "button",
      { type: "button", class: f.name === state.folder ? "current" : "", dataset: { folder: f.name } },
      el("span", {}, folderLabel(f)),
      f.unread ? el("span", { class: "n", title: `${f.unread} unread` }, f.unread) : null,
    );
    button.addEventListener("click", () => chooseFolder(f.name));
    list.append(el("li", {}, button));
  }
  const move = clear($("m-move"));
  move.append(el("option", { value: "" }, "…"));
  for (const f of state.folders) move.append(el("option", { value: f.name }, folderLabel(f)));
}

function chooseFolder(name) {
  state.folder = name;
  state.start = 0;
  closeMessage();
  renderFolders();
  loadList();
}

function onFolders(list) {
  const before = state.folders.find((f) => f.name === state.folder);
  const after = list.find((f) => f.name === state.folder);
  state.folders = list;
  renderFolders();
  const changed =
    !before ||
    !after ||
    before.highest_modseq !== after.highest_modseq ||
    before.uid_next !== after.uid_next ||
    before.messages !== after.messages;
  if (changed) scheduleReload();
}

// ---- the list ----

function listPath() {
  const page = `start=${state.start}&limit=${PAGE_SIZE}`;
  const query = state.query ? `&query=${encodeURIComponent(state.query)}` : "";
  if (state.webmail) return `/api/v1/mailboxes/${segment(state.folder)}/messages?${page}${query}`;
  if (state.query) return `/api/v1/search?${page}${query}`;
  return `/api/v1/messages?${page}`;
}

export async function loadList() {
  const mine = ++listRequest;
  let answer;
  try {
    answer = await get(listPath());
  } catch (error) {
    report(error);
    return;
  }
  if (mine !== listRequest) return;
  state.rows = answer.messages;
  state.total = answer.messages_count;
  state.unread = answer.messages_unread;
  for (const m of state.rows) lastSeen = Math.max(lastSeen, Number(m.ID));
  renderList();
  if (firstList) {
    firstList = false;
    performance.mark("postern:list-rendered");
  }
}

function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => {
    loadList();
    refreshOpenMessage();
  }, 120);
}

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderList();
  });
}

function rowFor(m, fresh) {
  const unread = !m.Read;
  const flagged = hasFlag(m, "\\Flagged");
  const from = m.From ? m.From.Name || m.From.Address : "";
  const to = state.webmail ? people(m.To) : m.DeliveredTo || people(m.To);
  const classes = ["row"];
  if (unread) classes.push("unread");
  if (m.ID === state.selected) classes.push("selected");
  if (fresh) classes.push("fresh");
  const row = el(
    "tr",
    { class: classes.join(" "), dataset: { id: m.ID }, tabindex: 0 },
    el(
      "td",
      { class: "c-dot" },
      unread ? el("span", { class: "dot", title: "unread" }) : null,
      flagged ? el("span", { class: "flag", title: "flagged" }, "\u2605") : null,
    ),
    el("td", { class: "c-from", title: person(m.From) }, from),
    el("td", { class: "c-to", title: to }, to),
    el(
      "td",
      { class: "c-subject", title: m.Subject },
      el("span", { class: "subject" }, m.Subject || "(no subject)"),
      m.Snippet ? el("span", { class: "subject-snippet" }, ` \u2014 ${m.Snippet}`) : null,
    ),
    el(
      "td",
      { class: "c-att" },
      m.Attachments ? el("span", { class: "clip", title: `${m.Attachments} attachment(s)` }) : null,
    ),
    el("td", { class: "c-time", title: longTime(m.Created) }, shortTime(m.Created)),
    el("td", { class: "c-size" }, size(m.Size)),
  );
  return row;
}

const freshIds = new Set();

export function renderList() {
  const body = $("rows");
  const fragment = document.createDocumentFragment();
  for (const m of state.rows) fragment.append(rowFor(m, freshIds.has(m.ID)));
  freshIds.clear();
  body.replaceChildren(fragment);
  $("empty-list").hidden = state.rows.length > 0;
  const first = state.rows.length ? state.start + 1 : 0;
  const last = state.start + state.rows.length;
  const what = state.query ? "found" : "messages";
  $("count").textContent =
    `${first}\u2013${last} of ${state.total.toLocaleString()} ${what}` +
    (state.unread ? ` \u00b7 ${state.unread.toLocaleString()} unread` : "");
  $("newer").disabled = state.start === 0;
  $("older").disabled = last >= state.total;
}

/** Changes a listed message in place (read state, flags). */
export function patchRow(id, patch) {
  const m = state.rows.find((r) => r.ID === id);
  if (!m) return;
  if ("Read" in patch && patch.Read !== m.Read) state.unread += patch.Read ? -1 : 1;
  Object.assign(m, patch);
  queueRender();
}

/** Takes messages off the list (deleted, moved away). */
export function dropRows(ids) {
  const gone = new Set(ids);
  const before = state.rows.length;
  state.rows = state.rows.filter((m) => {
    if (!gone.has(m.ID)) return true;
    if (!m.Read) state.unread -= 1;
    return false;
  });
  state.total -= before - state.rows.length;
  if (gone.has(state.selected)) closeMessage();
  queueRender();
}

function onRowClick(event) {
  const row = event.target.closest("tr.row");
  if (!row) return;
  select(row.dataset.id);
}

function select(id) {
  state.selected = id;
  for (const row of $("rows").children) row.classList.toggle("selected", row.dataset.id === id);
  openMessage(id);
}

function onListKey(event) {
  if (!["ArrowDown", "ArrowUp", "Enter"].includes(event.key)) return;
  const index = state.rows.findIndex((m) => m.ID === state.selected);
  if (event.key === "Enter" && event.target.closest("tr.row")) {
    select(event.target.closest("tr.row").dataset.id);
  } else if (event.key === "ArrowDown" && index + 1 < state.rows.length) {
    select(state.rows[index + 1].ID);
  } else if (event.key === "ArrowUp" && index > 0) {
    select(state.rows[index - 1].ID);
  } else {
    return;
  }
  event.preventDefault();
  $("rows").querySelector("tr.selected")?.scrollIntoView({ block: "nearest" });
}

// ---- live events ----

async function connectEvents() {
  let after = lastSeen;
  // From what is there now: a stream from 0 would first replay every
  // message the caller may see (10,000 events for a big mailbox).
  if (!after) {
    try {
      after = (await get("/api/v1/cursor")).cursor;
    } catch (error) {
      report(error);
    }
  }
  lastSeen = Math.max(lastSeen, after || 0);
  openEvents();
}

function openEvents() {
  events?.close();
  const source = new EventSource(`/api/v1/events?after=${lastSeen}`);
  events = source;
  const data = (e) => JSON.parse(e.data);
  source.addEventListener("open", () => setStatus("live"));
  source.addEventListener("new", (e) => onNew(data(e)));
  source.addEventListener("read", (e) => data(e).IDs.forEach((id) => patchRow(id, { Read: true })));
  source.addEventListener("unread", (e) => data(e).IDs.forEach((id) => patchRow(id, { Read: false })));
  source.addEventListener("deleted", (e) => dropRows(data(e).IDs));
  source.addEventListener("mailboxes", (e) => onFolders(data(e).mailboxes));
  source.addEventListener("lagged", () => scheduleReload());
  // Reconnect by hand, from the last message seen: the browser's own
  // retry would repeat the first `after`.
  source.addEventListener("error", () => {
    source.close();
    if (events !== source) return;
    setStatus("reconnecting\u2026");
    setTimeout(() => {
      if (events === source) openEvents();
    }, 1500);
  });
}

function onNew(summary) {
  lastSeen = Math.max(lastSeen, Number(summary.ID));
  // Webmail follows its folders through `mailboxes` events.
  if (state.webmail) return;
  if (state.query) {
    scheduleReload();
    return;
  }
  if (state.rows.some((m) => m.ID === summary.ID)) return;
  state.total += 1;
  if (!summary.Read) state.unread += 1;
  if (state.start === 0) {
    state.rows.unshift(summary);
    if (state.rows.length > PAGE_SIZE) state.rows.length = PAGE_SIZE;
    freshIds.add(summary.ID);
  } else {
    // Later pages shift by one: keep showing the same messages' page.
    state.start += 1;
  }
  queueRender();
}

// ---- wiring ----

function wire() {
  $("login-form").addEventListener("submit", login);
  $("login-open").addEventListener("click", showLogin);
  $("logout").addEventListener("click", logout);
  $("rows").addEventListener("click", onRowClick);
  $("rows").addEventListener("keydown", onListKey);
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    state.query = $("query").value.trim();
    state.start = 0;
    loadList();
  });
  $("query").addEventListener("search", () => {
    if (!$("query").value.trim() && state.query) {
      state.query = "";
      state.start = 0;
      loadList();
    }
  });
  $("newer").addEventListener("click", () => {
    state.start = Math.max(0, state.start - PAGE_SIZE);
    loadList();
  });
  $("older").addEventListener("click", () => {
    state.start += PAGE_SIZE;
    loadList();
  });
  $("delete-all").addEventListener("click", async () => {
    const what = state.query ? `every message matching “${state.query}”` : "every message";
    if (!confirm(`Delete ${what}?`)) return;
    try {
      if (state.query) {
        await api("DELETE", `/api/v1/search?query=${encodeURIComponent(state.query)}`);
      } else {
        await api("DELETE", "/api/v1/messages");
      }
      closeMessage();
      state.start = 0;
      await loadList();
    } catch (error) {
      report(error);
    }
  });
  initMessageView();
  initCompose();
}

wire();
boot();

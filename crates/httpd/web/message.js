// The message pane: what arrived, in every form (HTML, text, headers,
// raw, envelope, SMTP transcript, attachments), and what can be done
// with it.
//
// The HTML tab frames GET /api/v1/message/{ID}/html: sandboxed without
// allow-scripts (and without allow-same-origin), under that response's
// own Content-Security-Policy that allows no script and, until the
// "Load remote images" button asks for ?remote=1, no image that is not
// part of the message.

import { api, get } from "./api.js";
import { $, el, clear, size, longTime, person, people } from "./util.js";
import { state, rowById, hasFlag, folderBySpecialUse } from "./state.js";
import { patchRow, dropRows, report, setStatus } from "./app.js";
import { openReply, openRelease } from "./compose.js";

let openRequest = 0;
let currentTab = "html";
/** Tabs filled for the open message. */
const loaded = new Set();

const REMOTE = /(?:src|srcset|background|poster)\s*=\s*["']?\s*(?:https?:)?\/\/|url\(\s*["']?\s*(?:https?:)?\/\//i;

export function initMessageView() {
  for (const tab of document.querySelectorAll(".tabs [data-tab]")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  $("load-remote").addEventListener("click", () => {
    if (!state.message) return;
    $("m-html").src = `/api/v1/message/${state.message.ID}/html?remote=1`;
    $("remote-note").hidden = true;
  });
  $("m-unread").addEventListener("click", toggleRead);
  $("m-flag").addEventListener("click", toggleFlag);
  $("m-delete").addEventListener("click", deleteMessage);
  $("m-move").addEventListener("change", () => {
    const to = $("m-move").value;
    $("m-move").value = "";
    if (to) moveMessage(to);
  });
  $("m-release").addEventListener("click", () => state.message && openRelease(state.message.ID));
  $("m-reply").addEventListener("click", () => state.message && openReply(state.message));
  $("m-html").addEventListener("load", () => {
    if (state.message && $("m-html").getAttribute("src")) finishOpen();
  });
}

export function closeMessage() {
  openRequest++;
  state.selected = null;
  state.message = null;
  $("message").hidden = true;
  $("no-message").hidden = false;
  $("m-html").removeAttribute("src");
}

/** Opens a message; records performance measure "postern:open". */
export async function openMessage(id) {
  const mine = ++openRequest;
  performance.clearMarks("postern:open:start");
  performance.clearMeasures("postern:open");
  performance.mark("postern:open:start");
  let message;
  try {
    message = await get(`/api/v1/message/${id}`);
  } catch (error) {
    report(error);
    return;
  }
  if (mine !== openRequest) return;
  state.message = message;
  loaded.clear();
  render(message);
  // Opening marks it read (as Mailpit does).
  patchRow(id, { Read: true });
  showTab(message.HTML ? "html" : currentTab === "html" ? "text" : currentTab);
}

/** Reloads what may have changed of the open message (flags). */
export function refreshOpenMessage() {
  if (!state.message) return;
  renderToolbar();
}

function finishOpen() {
  if (performance.getEntriesByName("postern:open", "measure").length) return;
  if (!performance.getEntriesByName("postern:open:start", "mark").length) return;
  performance.measure("postern:open", "postern:open:start");
}

function render(m) {
  $("no-message").hidden = true;
  $("message").hidden = false;
  $("m-subject").textContent = m.Subject || "(no subject)";
  $("m-from").textContent = person(m.From);
  $("m-to").textContent = people(m.To);
  $("m-cc").textContent = people(m.Cc);
  for (const node of document.querySelectorAll(".m-cc")) node.hidden = !(m.Cc || []).length;
  $("m-date").textContent = longTime(m.Date);
  $("m-text").textContent = m.Text;
  $("m-eml").href = `/api/v1/message/${m.ID}/raw`;
  $("m-eml").setAttribute("download", `message-${m.ID}.eml`);
  const files = [...(m.Attachments || []), ...(m.Inline || [])];
  $("m-att-count").textContent = files.length ? `(${files.length})` : "";
  $("remote-note").hidden = !REMOTE.test(m.HTML || "");
  $("no-html").hidden = Boolean(m.HTML);
  $("m-html").hidden = !m.HTML;
  $("m-html").removeAttribute("src");
  renderAttachments(m, files);
  renderToolbar();
}

function renderToolbar() {
  const row = rowById(state.message?.ID);
  const webmail = state.webmail;
  $("m-flag").hidden = !webmail;
  $("m-move-label").hidden = !webmail;
  $("m-reply").hidden = !state.session?.can_send;
  $("m-release").hidden = webmail;
  $("m-flag").textContent = hasFlag(row, "\\Flagged") ? "Unflag" : "Flag";
  $("m-unread").textContent = row && !row.Read ? "Mark read" : "Mark unread";
}

function renderAttachments(m, files) {
  const list = clear($("m-attachments"));
  if (!files.length) {
    list.append(el("li", { class: "muted" }, "No attachments."));
    return;
  }
  for (const a of files) {
    const name = a.FileName || `part-${a.PartID}`;
    list.append(
      el(
        "li",
        {},
        el("a", { href: `/api/v1/message/${m.ID}/part/${a.PartID}`, download: name }, name),
        el("span", { class: "muted" }, `${a.ContentType} \u00b7 ${size(a.Size)}`),
      ),
    );
  }
}

function showTab(name) {
  currentTab = name;
  for (const tab of document.querySelectorAll(".tabs [data-tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll(".panel")) {
    panel.classList.toggle("shown", panel.dataset.panel === name);
  }
  fill(name);
}

async function fill(name) {
  const m = state.message;
  if (!m || loaded.has(name)) {
    if (m && name !== "html") finishOpen();
    return;
  }
  loaded.add(name);
  const mine = openRequest;
  const still = () => mine === openRequest;
  try {
    if (name === "html") {
      if (m.HTML) $("m-html").src = `/api/v1/message/${m.ID}/html`;
      else finishOpen();
    } else if (name === "text") {
      finishOpen();
    } else if (name === "headers") {
      const headers = await get(`/api/v1/message/${m.ID}/headers`);
      if (!still()) return;
      const table = clear($("m-headers"));
      for (const [field, values] of Object.entries(headers)) {
        for (const value of values) table.append(el("tr", {}, el("th", {}, field), el("td", {}, value)));
      }
    } else if (name === "raw") {
      const raw = await get(`/api/v1/message/${m.ID}/raw`);
      if (still()) $("m-raw").textContent = raw;
    } else if (name === "envelope" || name === "transcript") {
      await fillEnvelope(m, still);
    }
  } catch (error) {
    loaded.delete(name);
    const target = { headers: "m-headers", raw: "m-raw", envelope: "m-envelope", transcript: "m-transcript" }[name];
    if (target && still()) clear($(target)).append(error.message);
  }
}

async function fillEnvelope(m, still) {
  loaded.add("envelope");
  loaded.add("transcript");
  const table = clear($("m-envelope"));
  const transcript = $("m-transcript");
  let envelope;
  try {
    envelope = await get(`/api/v1/message/${m.ID}/envelope`);
  } catch (error) {
    if (!still()) return;
    table.append(el("tr", {}, el("td", {}, error.message)));
    transcript.textContent = "No SMTP session is recorded for this message.";
    return;
  }
  if (!still()) return;
  const row = (k, v) => table.append(el("tr", {}, el("th", {}, k), el("td", {}, v ?? "")));
  row("MAIL FROM", `<${envelope.mail_from}>${envelope.mail_params ? ` ${envelope.mail_params}` : ""}`);
  for (const r of envelope.recipients) row("RCPT TO", `<${r.address}>${r.params ? ` ${r.params}` : ""}`);
  row("HELO", envelope.helo);
  row("Client", envelope.client);
  row("TLS", envelope.tls || "no");
  row("AUTH", envelope.auth_user || "no");
  row("Received", longTime(envelope.received_at));
  for (const w of envelope.warnings || []) row("Warning", w);
  if (envelope.session == null) {
    transcript.textContent = "The session's transcript is no longer kept.";
    return;
  }
  try {
    const session = await get(`/api/v1/sessions/${envelope.session}`);
    if (still()) transcript.textContent = session.transcript;
  } catch (error) {
    if (still()) transcript.textContent = error.message;
  }
}

// ---- actions ----

async function toggleRead() {
  const m = state.message;
  if (!m) return;
  const row = rowById(m.ID);
  const read = row ? !row.Read : false;
  try {
    await api("PUT", "/api/v1/messages", { IDs: [m.ID], Read: read });
    patchRow(m.ID, { Read: read, Flags: withFlag(row, "\\Seen", read) });
    renderToolbar();
  } catch (error) {
    report(error);
  }
}

function withFlag(row, flag, on) {
  const flags = (row?.Flags || []).filter((f) => f.toLowerCase() !== flag.toLowerCase());
  if (on) flags.push(flag);
  return flags;
}

async function toggleFlag() {
  const m = state.message;
  if (!m) return;
  const row = rowById(m.ID);
  const on = !hasFlag(row, "\\Flagged");
  try {
    await api("PUT", `/api/v1/message/${m.ID}/flags`, on ? { Add: ["\\Flagged"] } : { Remove: ["\\Flagged"] });
    patchRow(m.ID, { Flags: withFlag(row, "\\Flagged", on) });
    renderToolbar();
  } catch (error) {
    report(error);
  }
}

async function moveMessage(folder) {
  const m = state.message;
  if (!m) return;
  try {
    await api("POST", `/api/v1/message/${m.ID}/move`, { Mailbox: folder });
    setStatus(`moved to ${folder}`);
    dropRows([m.ID]);
  } catch (error) {
    report(error);
  }
}

async function deleteMessage() {
  const m = state.message;
  if (!m) return;
  const trash = folderBySpecialUse("\\Trash");
  // Webmail: to Trash first, as mail readers do; from Trash, for good.
  if (state.webmail && trash && state.folder !== trash.name) {
    await moveMessage(trash.name);
    return;
  }
  try {
    await api("DELETE", "/api/v1/messages", { IDs: [m.ID] });
    dropRows([m.ID]);
  } catch (error) {
    report(error);
  }
}


// Compose (plain text and attachments, sent with POST /api/v1/send as
// the logged-in account) and release (POST /api/v1/message/{ID}/release).

import { api, get } from "./api.js";
import { $, addressList, base64, person } from "./util.js";
import { state } from "./state.js";
import { setStatus } from "./app.js";

/** Headers of the message being answered (In-Reply-To, References). */
let replyHeaders = {};
let releaseId = null;

export function initCompose() {
  $("compose").addEventListener("click", () => {
    replyHeaders = {};
    openCompose({});
  });
  $("c-cancel").addEventListener("click", () => $("compose-dialog").close());
  $("compose-form").addEventListener("submit", send);
  $("r-cancel").addEventListener("click", () => $("release-dialog").close());
  $("release-form").addEventListener("submit", release);
}

function openCompose({ to = "", subject = "", text = "" }) {
  $("compose-form").reset();
  $("c-error").textContent = "";
  $("c-from").value = state.session?.address || "";
  $("c-from").closest("label").hidden = !state.session?.address;
  $("c-to").value = to;
  $("c-subject").value = subject;
  $("c-text").value = text;
  $("compose-dialog").showModal();
  (to ? $("c-text") : $("c-to")).focus();
  if (to) $("c-text").setSelectionRange(0, 0);
}

/** A reply to `m`: to its Reply-To (else From), "Re:", quoted, threaded. */
export async function openReply(m) {
  let headers = {};
  try {
    headers = await get(`/api/v1/message/${m.ID}/headers`);
  } catch {
    // Thread on the Message-ID alone.
  }
  const id = m.MessageID ? `<${m.MessageID}>` : "";
  const references = [...(headers.References || []).join(" ").split(/\s+/).filter(Boolean)];
  if (id && !references.includes(id)) references.push(id);
  replyHeaders = {};
  if (id) replyHeaders["In-Reply-To"] = id;
  if (references.length) replyHeaders.References = references.join(" ");
  const to = (m.ReplyTo && m.ReplyTo.length ? m.ReplyTo : [m.From]).filter(Boolean).map(person).join(", ");
  const subject = /^re:/i.test(m.Subject || "") ? m.Subject : `Re: ${m.Subject || ""}`;
  const quoted = (m.Text || "")
    .replace(/\s+$/, "")
    .split(/\r?\n/)
    .map((line) => `> ${line}`)
    .join("\n");
  const intro = `${person(m.From)} wrote:`;
  // openCompose resets the form, not the thread.
  openCompose({ to, subject, text: `\n\n${intro}\n${quoted}\n` });
}

function names(text) {
  return addressList(text).map((Email) => ({ Email }));
}

async function send(event) {
  event.preventDefault();
  $("c-error").textContent = "";
  const button = $("c-send");
  button.disabled = true;
  try {
    const attachments = [];
    for (const file of $("c-files").files) {
      attachments.push({
        Filename: file.name,
        ContentType: file.type || "",
        Content: base64(await file.arrayBuffer()),
      });
    }
    const request = {
      To: names($("c-to").value),
      Cc: names($("c-cc").value),
      Bcc: addressList($("c-bcc").value),
      Subject: $("c-subject").value,
      Text: $("c-text").value,
      Attachments: attachments,
      Headers: replyHeaders,
    };
    if (state.session?.address) request.From = { Email: state.session.address };
    const answer = await api("POST", "/api/v1/send", request);
    replyHeaders = {};
    $("compose-dialog").close();
    setStatus(`sent${answer.ID ? ` (message ${answer.ID})` : ""}`);
  } catch (error) {
    $("c-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

export function openRelease(id) {
  releaseId = id;
  $("release-form").reset();
  $("r-error").textContent = "";
  $("release-dialog").showModal();
  $("r-to").focus();
}

async function release(event) {
  event.preventDefault();
  const to = addressList($("r-to").value);
  try {
    await api("POST", `/api/v1/message/${releaseId}/release`, { To: to });
    $("release-dialog").close();
    setStatus(`released to ${to.join(", ")}`);
  } catch (error) {
    $("r-error").textContent = error.message;
  }
}

// An app's test suite with Postern as its mail fixture (README: "Use it in
// CI"): Node's own test runner and fetch, and nodemailer as the app's SMTP
// library. Run it against `postern up --capture`:
//
//   npm ci
//   SMTP_URL=smtp://app:secret@127.0.0.1:2525 MAIL_API=http://127.0.0.1:8025 node --test
//
// SMTP_URL is the app's own mail setting (capture mode takes any login and
// records the user name). SMTP_CA, when set, is a certificate file to
// trust (Postern's is DATA_DIR/tls/cert.pem) and the app sends over
// STARTTLS; unset, it sends in plain text. MAIL_API is Postern's HTTP API.
//
// These tests take a cursor before the app sends and send to an address
// of their own, so they need no sandbox: the wait finds only what came
// after the cursor, for that address. (test_signup_mail.py shows the
// other way, a sandbox per test.)
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import nodemailer from "nodemailer";

const SMTP_URL = process.env.SMTP_URL ?? "smtp://app:secret@127.0.0.1:2525";
const SMTP_CA = process.env.SMTP_CA;
const MAIL_API = (process.env.MAIL_API ?? "http://127.0.0.1:8025").replace(/\/$/, "");

// ---- the app under test (in a real suite this is imported from the app) ----

const AUDIT_ADDRESS = "audit@acme.example";

function mailer() {
  const url = new URL(SMTP_URL);
  return nodemailer.createTransport({
    host: url.hostname,
    port: Number(url.port || 25),
    secure: false,
    auth: { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) },
    // STARTTLS with the fixture's certificate, or none at all.
    ...(SMTP_CA ? { requireTLS: true, tls: { ca: readFileSync(SMTP_CA) } } : { ignoreTLS: true }),
  });
}

async function signUp(address) {
  const link = `https://app.example/confirm?token=${randomUUID()}`;
  const transport = mailer();
  try {
    await transport.sendMail({
      from: "Acme <noreply@app.example>",
      to: address,
      bcc: AUDIT_ADDRESS,
      subject: "Welcome to Acme",
      text: `Hello!\n\nConfirm your address: ${link}\n`,
      html: `<p>Hello!</p><p><a href="${link}">Confirm your address</a></p>`,
    });
  } finally {
    transport.close();
  }
  return link;
}

// ---- the fixture: Postern's HTTP API ----

async function api(path) {
  const response = await fetch(MAIL_API + path);
  return { status: response.status, body: await response.json() };
}

/** The first message after `cursor` that `query` matches, waited for on the server. */
function waitFor(query, cursor, timeout = 10) {
  const params = new URLSearchParams({ query, after: cursor, timeout });
  return api(`/api/v1/wait?${params}`);
}

async function cursor() {
  const { status, body } = await api("/api/v1/cursor");
  assert.equal(status, 200);
  return body.cursor;
}

test("the welcome mail reaches the new user, with the audit address in the envelope", async () => {
  const user = `new-user-${randomUUID()}@example.com`;
  const after = await cursor();
  const link = await signUp(user);

  const { status, body } = await waitFor(`to:${user} subject:Welcome`, after);
  assert.equal(status, 200, JSON.stringify(body));
  const message = body.message;
  assert.equal(message.Subject, "Welcome to Acme");
  assert.equal(message.From.Address, "noreply@app.example");
  assert.deepEqual(message.To.map((a) => a.Address), [user]);
  assert.ok(message.Text.includes(`Confirm your address: ${link}`), message.Text);
  assert.ok(message.HTML.includes(`href="${link}"`), message.HTML);
  // The Bcc never shows in the message itself...
  assert.deepEqual(message.Bcc, []);

  // ...but the envelope keeps it, with the login the app used.
  const envelope = await api(`/api/v1/message/${message.ID}/envelope`);
  assert.equal(envelope.status, 200);
  assert.equal(envelope.body.mail_from, "noreply@app.example");
  assert.deepEqual(envelope.body.recipients.map((r) => r.address), [user, AUDIT_ADDRESS]);
  assert.equal(envelope.body.auth_user, decodeURIComponent(new URL(SMTP_URL).username));
  if (SMTP_CA) assert.ok(envelope.body.tls, "the app was set up for STARTTLS");
});

test("signing up sends no password reset", async () => {
  const user = `new-user-${randomUUID()}@example.com`;
  const after = await cursor();
  await signUp(user);
  // A message the app did not send: the wait gives up with 408.
  const { status, body } = await waitFor(`to:${user} subject:"Reset your password"`, after, 1);
  assert.equal(status, 408, JSON.stringify(body));
  assert.match(body.Error, /no matching message/);
});

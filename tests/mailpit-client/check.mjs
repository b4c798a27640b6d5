// Drives Postern's HTTP API with the published Mailpit client `mailpit-api`,
// as an app's test suite would: list, search, read a message and its
// attachment, mark read, delete by search, wait, delete all. Run by
// tests/tests/http_api.rs with the base URL; prints one JSON line of what
// it saw, which the Rust test checks.
import assert from "node:assert/strict";
import { MailpitClient } from "mailpit-api";

const mailpit = new MailpitClient(process.argv[2]);
const report = {};

const listed = await mailpit.listMessages();
report.listed = listed.messages_count;
assert.equal(listed.messages.length, 3);

const found = await mailpit.searchMessages({ query: "subject:beta" });
report.found = found.messages.map((m) => m.Subject);

const rich = listed.messages.find((m) => m.Subject === "Café order");
assert.ok(rich, "the multipart message is listed");
assert.equal(rich.Attachments, 2);
const message = await mailpit.getMessageSummary(rich.ID);
report.subject = message.Subject;
assert.match(message.Text, /café order is ready/);
report.attachment = message.Attachments[0].FileName;
const blob = await mailpit.getMessageAttachment(rich.ID, message.Attachments[0].PartID);
report.attachmentBytes = blob.size;
assert.equal(blob.type, "application/pdf");

const headers = await mailpit.getMessageHeaders(rich.ID);
assert.deepEqual(headers["Message-Id"], ["<order-1@example.org>"]);
const source = await mailpit.getMessageSource(rich.ID);
assert.match(source, /Content-Type: multipart\/mixed/);

assert.equal(await mailpit.setReadStatus({ IDs: [rich.ID], Read: false }), "ok");
const unread = await mailpit.searchMessages({ query: "is:unread" });
assert.equal(unread.messages_count, 3);

assert.equal(await mailpit.deleteMessagesBySearch({ query: "news" }), "ok");
report.afterDelete = (await mailpit.listMessages()).messages_count;

const waited = await mailpit.waitForMessage(
  { query: "subject:Gamma" },
  { timeout: 20000, interval: 100 },
);
report.waited = waited.Subject;

const info = await mailpit.getInfo();
assert.equal(info.Messages, 2);

assert.equal(await mailpit.deleteMessages(), "ok");
console.log(JSON.stringify(report));

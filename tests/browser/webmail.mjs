// Webmail: log in with the form, read, flag, see a flag that an IMAP
// client sets and a message it files appear without a reload, reply with
// an attachment, move to another folder, delete to Trash and from Trash
// for good, mark unread, find the sent copy in Sent, search.
//
// node webmail.mjs BASE_URL IMAP_HOST:PORT ADDRESS PASSWORD SCREENSHOT_DIR
// Prints one JSON line; tests/tests/web_ui.rs checks the rest over IMAP.
import { join } from "node:path";
import { launch, expect, waitLive } from "./lib.mjs";
import { Imap } from "./imap.mjs";

const [base, imapAddress, address, password, shots] = process.argv.slice(2);
const report = {};
const browser = await launch();
const { page, problems } = browser;
const row = (subject) => page.locator("#rows tr.row", { hasText: subject });
const folder = (name) => page.locator(`#folder-list button[data-folder="${name}"]`);
// Where each event stream the page opens starts (its `after`).
await page.addInitScript(() => {
  const Native = window.EventSource;
  window.eventStreams = [];
  window.EventSource = class extends Native {
    constructor(url, options) {
      super(url, options);
      window.eventStreams.push(new URL(url, location.href).searchParams.get("after"));
    }
  };
});
try {
  await page.goto(base);
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#login-user", address);
  await page.fill("#login-password", "wrong password");
  await page.click('#login-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById("login-error").textContent !== "");
  report.wrongPassword = await page.textContent("#login-error");
  await page.fill("#login-password", password);
  await page.click('#login-form button[type="submit"]');
  await page.waitForSelector("#main:not([hidden])");
  await waitLive(page);
  report.who = await page.textContent("#who");
  report.eventsAfter = await page.evaluate(() => window.eventStreams);
  report.cookies = (await page.context().cookies()).map((c) => ({
    name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure,
  }));
  report.folders = await page.locator("#folder-list button").evaluateAll((bs) => bs.map((b) => b.dataset.folder));
  report.inboxUnread = await folder("INBOX").locator(".n").textContent();

  // Read.
  await row("Plans for Friday").click();
  await page.waitForSelector("#message:not([hidden])");
  await page.waitForFunction(() => document.getElementById("m-text").textContent.includes("Friday"));
  report.text = (await page.textContent("#m-text")).trim();
  await page.waitForFunction(() => !document.querySelector('#rows tr.row.unread td.c-subject')?.textContent.includes("Plans"));
  report.readInList = await row("Plans for Friday").evaluate((r) => !r.classList.contains("unread"));

  // Flag.
  await page.click("#m-flag");
  await row("Plans for Friday").locator(".flag").waitFor();
  report.flagButton = await page.textContent("#m-flag");

  // A flag set over IMAP shows on the page without a reload.
  const imap = await Imap.open(imapAddress);
  await imap.command(`LOGIN "${address}" "${password}"`);
  const selected = await imap.command("SELECT INBOX");
  report.imapSelected = selected.find((l) => / EXISTS$/.test(l));
  const search = await imap.command('UID SEARCH SUBJECT "Second note"');
  const uid = search.find((l) => l.startsWith("* SEARCH")).split(" ")[2];
  await imap.command(`UID STORE ${uid} +FLAGS (\\Flagged)`);
  await row("Second note").locator(".flag").waitFor({ timeout: 10000 });
  report.imapFlagShown = true;
  // So does a message it files (APPEND, with a LITERAL+ literal).
  const note = `From: Carol <carol@example.org>\r\nTo: ${address}\r\nSubject: Third note\r\n\r\nFiled over IMAP.\r\n`;
  await imap.command(`APPEND INBOX {${Buffer.byteLength(note)}+}\r\n${note}`);
  await imap.command("LOGOUT").catch(() => {});
  imap.close();
  await row("Third note").waitFor({ timeout: 10000 });
  report.imapAppendShown = await row("Third note").evaluate((r) => r.classList.contains("unread"));

  // Reply with an attachment.
  await page.click("#m-reply");
  await page.waitForSelector("#compose-dialog[open]");
  report.replyTo = await page.inputValue("#c-to");
  report.replySubject = await page.inputValue("#c-subject");
  await page.locator("#c-text").press("Home");
  await page.locator("#c-text").pressSequentially("Friday works for me. Agenda attached.");
  await page.setInputFiles("#c-files", {
    name: "agenda.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("1. Plans\n2. Lunch\n"),
  });
  await page.click("#c-send");
  await page.waitForFunction(() => !document.getElementById("compose-dialog").open, null, { timeout: 10000 });
  report.sentStatus = await page.textContent("#status");

  // Move to Archive.
  await page.selectOption("#m-move", "Archive");
  await row("Plans for Friday").waitFor({ state: "detached" });
  // Delete goes to Trash.
  await row("Second note").click();
  await page.waitForFunction(() => document.getElementById("m-subject").textContent === "Second note");
  await page.click("#m-delete");
  await row("Second note").waitFor({ state: "detached" });
  await folder("Trash").click();
  await row("Second note").waitFor();
  // From Trash, delete is for good.
  await row("Second note").click();
  await page.waitForFunction(() => document.getElementById("m-subject").textContent === "Second note");
  await page.click("#m-delete");
  await row("Second note").waitFor({ state: "detached" });
  report.trashRows = await page.locator("#rows tr.row").count();
  await folder("Archive").click();
  await row("Plans for Friday").locator(".flag").waitFor();
  report.archived = true;

  // Read, then marked unread again.
  await folder("INBOX").click();
  await row("Third note").click();
  await page.waitForFunction(() => document.getElementById("m-text").textContent.includes("Filed over IMAP"));
  await page.waitForFunction(() => !document.querySelector("#rows tr.row.selected")?.classList.contains("unread"));
  await page.click("#m-unread");
  await page.waitForFunction(() => document.querySelector("#rows tr.row.selected")?.classList.contains("unread"));
  report.markedUnread = true;

  // The sent copy, with its attachment.
  await folder("Sent").click();
  await row("Re: Plans for Friday").click();
  await page.waitForFunction(() => document.getElementById("m-subject").textContent === "Re: Plans for Friday");
  await page.click('.tabs [data-tab="attachments"]');
  report.sentAttachments = await page.locator("#m-attachments a").allTextContents();
  report.sentText = (await page.textContent("#m-text")).split("\n")[0];
  await page.click('.tabs [data-tab="text"]');
  await page.screenshot({ path: join(shots, "webmail.png") });
  report.screenshot = join(shots, "webmail.png");

  // Search within a folder.
  await folder("INBOX").click();
  await page.fill("#query", "filed");
  await page.press("#query", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#rows tr.row").length === 1);
  report.searchFound = await page.locator("#rows tr.row td.c-subject .subject").allTextContents();
  await page.fill("#query", "subject:nothing-like-this");
  await page.press("#query", "Enter");
  await page.waitForSelector("#empty-list:not([hidden])");
  report.searchEmpty = true;
  // The wrong password's 401 is the one failed request expected.
  const errors = problems.filter((p) => !p.includes("status of 401"));
  expect(errors.length === 0, "the page reported errors", errors);
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}

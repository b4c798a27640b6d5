// The fixture view (capture mode): swaks sends a message with a Bcc
// recipient while the page is open; its rows appear without a reload;
// the message opens; the HTML tab shows its HTML; the envelope tab names
// the Bcc recipient; a screenshot is saved. Then the rest of the view:
// the text, headers and raw tabs, the .eml download, mark unread (kept
// over a reload), an attachment (the list's mark, the tab, the
// download), search, release (to RELEASE_TO, an account, where it
// arrives as a new row), delete and delete all.
//
// node fixture.mjs BASE_URL SMTP_HOST:PORT SCREENSHOT_DIR RELEASE_TO
// Prints one JSON line: what the page showed.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { launch, expect, waitLive } from "./lib.mjs";

const [base, smtp, shots, releaseTo] = process.argv.slice(2);
const report = {};
const browser = await launch();
const { page, problems } = browser;
try {
  await page.goto(base);
  await page.waitForSelector("#main:not([hidden])");
  await waitLive(page);
  const before = await page.locator("#rows tr.row").count();
  const loads = [];
  page.on("load", () => loads.push(page.url()));

  const message = [
    "From: Ann Example <ann@example.org>",
    "To: Bob <bob@example.com>",
    "Subject: Your order has shipped",
    "MIME-Version: 1.0",
    'Content-Type: multipart/alternative; boundary="b1"',
    "",
    "--b1",
    "Content-Type: text/plain; charset=utf-8",
    "",
    "Hello Bob, order 1234 is on its way.",
    "--b1",
    "Content-Type: text/html; charset=utf-8",
    "",
    '<html><body><h1 id="headline">Order 1234 shipped</h1><p>Hello <b>Bob</b>, it is on its way.</p></body></html>',
    "--b1--",
    "",
  ].join("\r\n");
  const file = join(shots, "order.eml");
  writeFileSync(file, message);
  execFileSync("swaks", [
    "--server", smtp, "--from", "ann@example.org",
    // audit@ is a Bcc: an envelope recipient the header does not name.
    "--to", "bob@example.com,audit@example.net",
    "--data", `@${file}`, "--silent", "2",
  ]);

  // Two copies (Bob's and the Bcc's) arrive as rows, live.
  await page.waitForFunction(
    (n) => document.querySelectorAll("#rows tr.row").length >= n + 2,
    before,
    { timeout: 10000 },
  );
  expect(loads.length === 0, "the page reloaded", problems);
  const rows = page.locator("#rows tr.row", { hasText: "Your order has shipped" });
  report.rows = await rows.count();
  report.listedTo = (await page.locator("#rows tr.row td.c-to").allTextContents()).sort();
  const bccRow = page.locator("#rows tr.row", { hasText: "audit@example.net" });
  report.unreadBefore = await bccRow.evaluate((r) => r.classList.contains("unread"));
  await bccRow.click();

  await page.waitForSelector("#message:not([hidden])");
  report.subject = await page.textContent("#m-subject");
  const frame = page.frameLocator("#m-html");
  report.headline = await frame.locator("#headline").textContent({ timeout: 10000 });
  report.htmlBold = await frame.locator("b").textContent();
  report.frameSandbox = await page.getAttribute("#m-html", "sandbox");
  report.unreadAfter = await bccRow.evaluate((r) => r.classList.contains("unread"));

  await page.click('.tabs [data-tab="envelope"]');
  await page.waitForSelector("#m-envelope tr");
  report.envelope = await page.locator("#m-envelope tr").allTextContents();
  await page.click('.tabs [data-tab="transcript"]');
  await page.waitForFunction(() => document.getElementById("m-transcript").textContent.includes("DATA"));
  report.transcriptHasRcpt = (await page.textContent("#m-transcript")).includes("RCPT TO:<audit@example.net>");
  await page.click('.tabs [data-tab="text"]');
  report.text = (await page.textContent("#m-text")).trim();
  await page.click('.tabs [data-tab="html"]');
  await frame.locator("#headline").waitFor();
  await page.screenshot({ path: join(shots, "fixture.png") });
  report.screenshot = join(shots, "fixture.png");

  // Headers and raw.
  await page.click('.tabs [data-tab="headers"]');
  await page.waitForSelector("#m-headers tr");
  report.headers = await page.locator("#m-headers th").allTextContents();
  await page.click('.tabs [data-tab="raw"]');
  await page.waitForFunction(() => document.getElementById("m-raw").textContent.includes("text/html"));
  report.rawHasBoundary = (await page.textContent("#m-raw")).includes("--b1--");
  // The .eml download: the message's bytes.
  const [eml] = await Promise.all([page.waitForEvent("download"), page.click("#m-eml")]);
  report.emlName = eml.suggestedFilename();
  report.emlHasSubject = readFileSync(await eml.path(), "latin1").includes("Subject: Your order has shipped");

  // Mark unread: the row shows it, and so does a fresh load of the page.
  await page.click("#m-unread");
  await page.waitForFunction(() => document.querySelector("#rows tr.row.selected")?.classList.contains("unread"));
  report.unreadButton = await page.textContent("#m-unread");
  expect(loads.length === 0, "the page reloaded", problems);
  await page.reload();
  await page.waitForSelector("#main:not([hidden])");
  await waitLive(page);
  await bccRow.waitFor();
  report.unreadAfterReload = await bccRow.evaluate((r) => r.classList.contains("unread"));

  // An attachment: the list's mark, the tab, the download.
  const csv = join(shots, "invoice-77.csv");
  writeFileSync(csv, "item,amount\nwidget,12.50\n");
  execFileSync("swaks", [
    "--server", smtp, "--from", "billing@example.org", "--to", "carol@example.com",
    "--header", "Subject: Invoice 77", "--body", "Your invoice is attached.",
    "--attach-type", "text/csv", "--attach-name", "invoice-77.csv", "--attach", `@${csv}`,
    "--silent", "2",
  ]);
  const invoice = page.locator("#rows tr.row", { hasText: "Invoice 77" });
  await invoice.waitFor({ timeout: 10000 });
  report.attachmentMark = await invoice.locator("td.c-att .clip").count();
  report.orderAttachmentMark = await bccRow.locator("td.c-att .clip").count();
  await invoice.click();
  await page.waitForFunction(() => document.getElementById("m-subject").textContent === "Invoice 77");
  await page.click('.tabs [data-tab="attachments"]');
  report.attachments = await page.locator("#m-attachments a").allTextContents();
  const [part] = await Promise.all([
    page.waitForEvent("download"),
    page.click("#m-attachments a"),
  ]);
  report.attachmentName = part.suggestedFilename();
  report.attachmentBody = readFileSync(await part.path(), "utf8");

  // Search, and back to everything.
  await page.fill("#query", "has:attachment");
  await page.press("#query", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#rows tr.row").length === 1);
  report.searchRows = await page.locator("#rows tr.row td.c-subject .subject").allTextContents();
  report.searchCount = await page.textContent("#count");
  await page.fill("#query", "");
  await page.press("#query", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#rows tr.row").length === 3);

  // Release Bob's copy to an account: it arrives there through the queue,
  // and so shows as a new row.
  const bobRow = page.locator("#rows tr.row", { hasText: "bob@example.com" });
  await bobRow.click();
  await page.waitForFunction(() => document.getElementById("m-to").textContent.includes("bob@example.com"));
  await page.click("#m-release");
  await page.waitForSelector("#release-dialog[open]");
  await page.fill("#r-to", releaseTo);
  await page.click('#release-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("released"));
  report.releaseStatus = await page.textContent("#status");
  const released = page.locator("#rows tr.row", { hasText: releaseTo });
  await released.waitFor({ timeout: 20000 });
  report.releasedSubject = await released.locator("td.c-subject .subject").textContent();

  // Delete one, then all (after the confirmation).
  await invoice.click();
  await page.waitForFunction(() => document.getElementById("m-subject").textContent === "Invoice 77");
  await page.click("#m-delete");
  await invoice.waitFor({ state: "detached" });
  report.rowsAfterDelete = await page.locator("#rows tr.row").count();
  page.once("dialog", (dialog) => {
    report.confirm = dialog.message();
    dialog.accept();
  });
  await page.click("#delete-all");
  await page.waitForSelector("#empty-list:not([hidden])");
  report.rowsAfterDeleteAll = await page.locator("#rows tr.row").count();
  expect(problems.length === 0, "the page reported errors", problems);
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}

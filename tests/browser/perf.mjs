// The page with a big mailbox, measured in the browser (bench/web_page.sh
// fills the mailbox and runs this). For LOADS fresh loads of the page:
// first paint (Paint Timing's first-contentful-paint), the first list
// shown (the page's "postern:list-rendered" mark), both from the start of
// navigation; then OPENS message opens: the page's "postern:open"
// measure, from the click to the message shown (its HTML frame loaded,
// for HTML mail). Medians, and the slowest.
//
// node perf.mjs BASE_URL [ADDRESS PASSWORD]
// With an address, logs in with the form first and measures webmail.
// Prints one JSON line.
import { launch } from "./lib.mjs";

const [base, address, password] = process.argv.slice(2);
const LOADS = Number(process.env.LOADS || 5);
const OPENS = Number(process.env.OPENS || 9);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const round = (x) => Math.round(x);

const browser = await launch();
const { context } = browser;
try {
  if (address) {
    const page = browser.page;
    await page.goto(base);
    // In capture mode the page opens on everything; "Log in" asks.
    await page.waitForSelector("#login:not([hidden]), #login-open:not([hidden])");
    if (await page.isVisible("#login-open")) await page.click("#login-open");
    await page.waitForSelector("#login:not([hidden])");
    await page.fill("#login-user", address);
    await page.fill("#login-password", password);
    await page.click('#login-form button[type="submit"]');
    await page.waitForSelector("#main:not([hidden])");
  }
  const loads = [];
  let page = null;
  // The first load warms the browser's cache of the page's files (as a
  // developer's tab has it); it is not counted.
  for (let i = 0; i <= LOADS; i++) {
    await page?.close();
    page = await context.newPage();
    await page.goto(base, { waitUntil: "load" });
    await page.waitForFunction(() => performance.getEntriesByName("postern:list-rendered").length > 0, null, {
      timeout: 60000,
    });
    // Paint entries are recorded after the frame is shown.
    await page.waitForFunction(() => performance.getEntriesByName("first-contentful-paint").length > 0, null, {
      timeout: 10000,
    });
    const timing = await page.evaluate(() => ({
      firstPaint: performance.getEntriesByName("first-contentful-paint")[0].startTime,
      firstList: performance.getEntriesByName("postern:list-rendered")[0].startTime,
      count: document.getElementById("count").textContent,
      rows: document.querySelectorAll("#rows tr.row").length,
    }));
    if (i > 0) loads.push(timing);
  }
  const opens = [];
  const rows = page.locator("#rows tr.row");
  const listed = await rows.count();
  for (let i = 0; i < OPENS; i++) {
    // The last open's measure goes first, so that the wait below sees this one.
    await page.evaluate(() => performance.clearMeasures("postern:open"));
    await rows.nth((i * 5 + 1) % listed).click();
    await page.waitForFunction(() => performance.getEntriesByName("postern:open", "measure").length > 0, null, {
      timeout: 30000,
    });
    opens.push(await page.evaluate(() => performance.getEntriesByName("postern:open", "measure")[0].duration));
  }
  // A page deep in the list (start=5000), as the Older button asks for it.
  const deep = [];
  for (let i = 0; i < 5; i++) {
    deep.push(
      await page.evaluate(async (webmail) => {
        const path = webmail
          ? "/api/v1/mailboxes/INBOX/messages?start=5000&limit=50"
          : "/api/v1/messages?start=5000&limit=50";
        const t0 = performance.now();
        await (await fetch(path)).json();
        return performance.now() - t0;
      }, Boolean(address)),
    );
  }
  console.log(
    JSON.stringify({
      view: address ? "webmail" : "fixture",
      listed: loads[0].count,
      rows: loads[0].rows,
      firstPaintMs: round(median(loads.map((l) => l.firstPaint))),
      firstListMs: round(median(loads.map((l) => l.firstList))),
      firstListMaxMs: round(Math.max(...loads.map((l) => l.firstList))),
      openMs: round(median(opens)),
      openMaxMs: round(Math.max(...opens)),
      page5000Ms: round(median(deep)),
      loads: loads.length,
      opensMeasured: opens.length,
    }),
  );
} finally {
  await browser.close();
}

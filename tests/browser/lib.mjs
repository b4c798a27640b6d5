// Shared by the browser tests: Debian's Chromium, headless, with the flags
// this machine needs, a fresh profile per run, and nothing downloaded.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

export const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** A browser context on a fresh user-data-dir; `close()` removes it. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "postern-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1400, height: 900 },
    acceptDownloads: true,
  });
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  return {
    context,
    page,
    problems,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Fails with what the page said if `check` is false. */
export function expect(check, what, problems = []) {
  if (!check) throw new Error(`${what}${problems.length ? `\n${problems.join("\n")}` : ""}`);
}

/** Waits until the page's live event stream is connected. */
export async function waitLive(page) {
  await page.waitForFunction(() => document.getElementById("status")?.textContent === "live", null, {
    timeout: 10000,
  });
}

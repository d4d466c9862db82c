// Debian's chromium, headless, as root and without a display, for the browser checks: a throwaway profile,
// removed afterwards however `use` ends.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

/// Runs `use(page)` in a new page of a fresh chromium (`executable`, with `args` added to the common flags).
export async function withChromium(executable, args, use) {
  const profile = mkdtempSync(join(tmpdir(), "dime-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: executable,
    headless: true,
    userDataDir: profile,
    // No sandbox as root; a container's /dev/shm is small.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", ...args],
  });
  try {
    return await use(await browser.newPage());
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

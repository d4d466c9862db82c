// Plays a page with Dime's player (scripts/player/index.html) in Debian's chromium, headless, and checks that the
// stream really played: no fatal hls.js error, playback advanced by at least --min-played seconds, frames were
// decoded, at most --max-stalls stalls. Prints what it saw as JSON; exit 0 when every check holds, 1 otherwise.
//
//   node scripts/browser/play.mjs --url URL [--seconds 22] [--min-played 15] [--max-stalls 1]
//        [--screenshot FILE.png] [--chromium /usr/bin/chromium] [--trust-spki BASE64]
//
// --trust-spki: the browser trusts a certificate with this public key (base64 SHA-256 of its SubjectPublicKeyInfo),
// as the live demo's self-signed one, without touching the system's trust store.
import { parseArgs } from "node:util";
import { withChromium } from "./chromium.mjs";

const { values: opt } = parseArgs({
  options: {
    url: { type: "string" },
    seconds: { type: "string", default: "22" },
    "min-played": { type: "string", default: "15" },
    "max-stalls": { type: "string", default: "1" },
    screenshot: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    "trust-spki": { type: "string" },
  },
});
if (!opt.url) {
  console.error("play.mjs: --url is required");
  process.exit(2);
}
const seconds = Number(opt.seconds);
const problems = [];
const chromiumArgs = [
  "--mute-audio",
  "--autoplay-policy=no-user-gesture-required",
  ...(opt["trust-spki"] ? [`--ignore-certificate-errors-spki-list=${opt["trust-spki"]}`] : []),
];
const seen = await withChromium(opt.chromium, chromiumArgs, async (page) => {
  await page.setViewport({ width: 960, height: 720 });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.goto(opt.url, { waitUntil: "load", timeout: 20000 });
  // Playback is timed from the first frame shown, so the startup (first playlist, first segment) does not count.
  await page.waitForFunction(() => window.dime && window.dime.playing, { timeout: 20000 }).catch(() => {
    problems.push("the video never started playing within 20 s");
  });
  const start = await page.evaluate(() => document.getElementById("video").currentTime);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const state = await page.evaluate((start) => {
    const video = document.getElementById("video");
    const quality = video.getVideoPlaybackQuality();
    return { ...window.dime, played: video.currentTime - start, decodedFrames: quality.totalVideoFrames,
             droppedFrames: quality.droppedVideoFrames };
  }, start);
  if (opt.screenshot) await page.screenshot({ path: opt.screenshot });
  return state;
});
if (seen.fatal.length) problems.push(`fatal hls.js errors: ${seen.fatal.join("; ")}`);
if (!(seen.played >= Number(opt["min-played"]))) {
  problems.push(`playback advanced ${seen.played.toFixed(1)} s in ${seconds} s (at least ${opt["min-played"]} wanted)`);
}
if (!(seen.decodedFrames > 0)) problems.push("no video frame was decoded");
if (seen.stalls > Number(opt["max-stalls"])) problems.push(`${seen.stalls} stalls (at most ${opt["max-stalls"]})`);
console.log(JSON.stringify({ ...seen, problems }, null, 2));
process.exit(problems.length ? 1 : 0);

// Opens Reelflow's player page in Debian's Chromium (driven by
// playwright-core) and reports, as one JSON line, what a viewer would see:
//
//   node play_hls.mjs BASE VIDEO_ID PLAYBACK_TOKEN
//
// 1. Without a token the page of the (private) video must fail to play.
// 2. With the token it must play: currentTime passes 6 s, and a rendition
//    chosen in the quality menu is switched to; then the viewer pauses, so
//    the page flushes its beacons.
import { chromium } from "playwright-core";

const [base, videoId, token] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  args: ["--autoplay-policy=no-user-gesture-required", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const out = { console: [] };
try {
  const page = await browser.newPage();
  page.on("console", (m) => out.console.push(m.type() + ": " + m.text()));
  page.on("pageerror", (e) => out.console.push("pageerror: " + e.message));

  // 1. No token: the page reports an error, and nothing plays.
  await page.goto(`${base}/watch/${videoId}?autoplay=1`);
  await page.waitForFunction(() => document.body.dataset.state === "error", null, { timeout: 20000 });
  out.without_token = {
    state: await page.evaluate(() => document.body.dataset.state),
    status: await page.textContent("#status"),
    current_time: await page.evaluate(() => document.getElementById("video").currentTime),
  };

  // 2. With the token: it plays.
  await page.goto(`${base}/watch/${videoId}?autoplay=1&token=${encodeURIComponent(token)}`);
  out.mse_h264 = await page.evaluate(() =>
    window.MediaSource ? MediaSource.isTypeSupported('video/mp4; codecs="avc1.4d401e,mp4a.40.2"') : false,
  );
  await page.waitForFunction(() => document.getElementById("video").currentTime > 2, null, { timeout: 60000 });
  const levels = await page.evaluate(() =>
    window.reelflowPlayer.hls.levels.map((l) => ({ height: l.height, bitrate: l.bitrate, url: l.url })),
  );
  const before = await page.evaluate(() => window.reelflowPlayer.state.level);
  // The viewer picks another rendition in the quality menu.
  const target = before === 0 ? 1 : 0;
  await page.selectOption("#quality", String(target));
  await page.waitForFunction((t) => window.reelflowPlayer.state.level === t, target, { timeout: 30000 });
  await page.waitForFunction(() => document.getElementById("video").currentTime > 6, null, { timeout: 60000 });
  await page.evaluate(() => document.getElementById("video").pause());
  await page.waitForFunction(
    () => window.reelflowPlayer.sent.some((e) => e.type === "pause") && window.reelflowPlayer.state.queue.length === 0,
    null,
    { timeout: 20000 },
  );
  out.with_token = {
    state: await page.evaluate(() => document.body.dataset.state),
    current_time: await page.evaluate(() => document.getElementById("video").currentTime),
    levels,
    level_before: before,
    level_after: await page.evaluate(() => window.reelflowPlayer.state.level),
    switched_to: levels[target],
    session_id: await page.evaluate(() => window.reelflowPlayer.state.sessionId),
    sent: await page.evaluate(() => window.reelflowPlayer.sent),
    rejected: await page.evaluate(() => window.reelflowPlayer.rejected),
  };
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));

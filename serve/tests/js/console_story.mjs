// Plays the web console's whole story in Debian's Chromium (driven by
// playwright-core), as a new user would, and reports what they saw as one
// JSON line; a screenshot of each page goes to SHOTS.
//
//   node console_story.mjs BASE CLIP SHOTS ADMIN_EMAIL ADMIN_PASSWORD
//
// Sign up as a creator; upload CLIP through the page (tus-js-client);
// watch the library's progress bar move until the video is ready; play
// it; while it plays, see the analytics page count the view and the viewer.
// Then the SQL console, the phone-sized library, the errors a wrong
// password and a bad query give, and the admin's pages.
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const [base, clip, shots, adminEmail, adminPassword] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  args: ["--autoplay-policy=no-user-gesture-required", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const out = { console: [], http_errors: [], shots: [] };
const shot = async (page, name) => {
  const path = `${shots}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  out.shots.push(path);
};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // The browser logs every 4xx it fetched; those are checked by what
  // answered them, below.
  const watch = (p) => {
    p.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && out.console.push(m.text()));
    p.on("pageerror", (e) => out.console.push("pageerror: " + e.message));
    p.on("response", (r) => r.status() >= 400 && out.http_errors.push(r.request().method() + " " + new URL(r.url()).pathname + " " + r.status()));
  };
  watch(page);

  // A new user: the console sends them to sign in; they create an account.
  await page.goto(base + "/");
  await page.waitForSelector("form[aria-label='Sign in']");
  out.first_page = await page.textContent("h1");
  await shot(page, "1-sign-in");
  await page.fill("input[name=email]", "nobody@example.org");
  await page.fill("input[name=password]", "not the password at all");
  await page.click("button[type=submit]");
  await page.waitForFunction(() => document.querySelector("[role=alert]").textContent.length > 0);
  out.wrong_password = await page.textContent("[role=alert]");
  await page.click("text=Create an account");
  await page.waitForSelector("form[aria-label='Create an account']");
  await page.fill("input[name=email]", "new.creator@example.org");
  await page.fill("input[name=password]", "short");
  await page.fill("input[name=display_name]", "New Creator");
  // The browser's own check stops a short password; the server's message
  // for an email already taken comes back as text.
  out.short_password_blocked = await page.evaluate(() => !document.querySelector("input[name=password]").checkValidity());
  await page.fill("input[name=password]", "a long enough password");
  await shot(page, "2-sign-up");
  await page.click("button[type=submit]");
  await page.waitForSelector("#videos");
  out.after_sign_up = await page.textContent("h1");
  out.who = await page.textContent("#who");

  // Upload the clip through the page.
  await page.click("nav >> text=Upload");
  await page.waitForSelector("form[aria-label='Upload a video']");
  await page.setInputFiles("#file", clip);
  await page.fill("input[name=title]", "My first clip");
  await page.fill("textarea[name=description]", "Uploaded from the console");
  await page.fill("input[name=genre]", "documentary");
  await page.fill("input[name=language]", "en");
  await page.click("#upload");
  await page.waitForFunction(() => location.hash === "#/library", null, { timeout: 60000 });

  // The library: the card's progress bar moves until the video is ready.
  const card = "article.video";
  await page.waitForSelector(card, { timeout: 30000 });
  const seen = new Set();
  const statuses = new Set();
  const deadline = Date.now() + 180000;
  let shotProcessing = false;
  for (;;) {
    const s = await page.evaluate((sel) => {
      const c = document.querySelector(sel);
      return { status: c.dataset.status, progress: Number(c.dataset.progress), detail: c.querySelector(".detail").textContent };
    }, card);
    seen.add(s.progress);
    statuses.add(s.status);
    if (s.status === "processing" && s.progress > 0 && !shotProcessing) {
      await shot(page, "3-library-processing");
      shotProcessing = true;
    }
    if (s.status === "ready" || s.status === "failed") {
      out.final_status = s;
      break;
    }
    if (Date.now() > deadline) throw new Error("the video never became ready: " + JSON.stringify(s));
    await page.waitForTimeout(100);
  }
  out.progress_seen = [...seen].sort((a, b) => a - b);
  out.statuses_seen = [...statuses];
  await shot(page, "4-library-ready");
  const videoId = await page.getAttribute(card, "data-video");
  out.video_id = videoId;

  // Analytics first: nobody has watched yet.
  await page.click("nav >> text=Analytics");
  await page.waitForSelector("#views-total");
  await page.waitForFunction(() => document.getElementById("views-total").dataset.live === "1", null, { timeout: 20000 });
  const before = { views: await page.textContent("#views-total"), watching_now: await page.textContent("#concurrent-now") };

  // Play it in a second tab: the player page, signed in.
  const opened = Date.now();
  const player = await context.newPage();
  watch(player);
  await player.goto(`${base}/watch/${videoId}?autoplay=1`);
  await player.waitForFunction(() => document.getElementById("video").currentTime > 2, null, { timeout: 60000 });
  out.player = await player.evaluate(() => ({
    poster: document.getElementById("video").poster.includes("/poster.jpg"),
    levels: window.reelflowPlayer.hls.levels.length,
    quality_options: document.querySelectorAll("#quality option").length,
  }));
  // The storyboard previews the seek bar under the pointer.
  const seek = await player.$("#seek");
  const box = await seek.boundingBox();
  await player.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
  await player.waitForFunction(() => getComputedStyle(document.getElementById("preview")).display === "block", null, { timeout: 10000 });
  out.storyboard_preview = await player.evaluate(() => document.getElementById("preview").style.backgroundImage.includes("storyboard.jpg"));
  await shot(player, "5-watch");

  // Back on the analytics tab, while it plays: the view and the viewer
  // show up within seconds, without reloading.
  await page.waitForFunction(
    () => Number(document.getElementById("views-total").textContent) >= 1 && Number(document.getElementById("concurrent-now").textContent) >= 1,
    null,
    { timeout: 30000 },
  );
  out.analytics = {
    before,
    seconds_after_opening_the_player: (Date.now() - opened) / 1000,
    views: await page.textContent("#views-total"),
    watching_now: await page.textContent("#concurrent-now"),
  };
  await page.waitForTimeout(2500); // a point or two on the concurrency chart
  await shot(page, "6-analytics");
  await player.close();

  // The SQL console: a query, its time, a chart; and a clear error.
  await page.click("nav >> text=SQL");
  await page.waitForSelector("#query");
  await page.fill("#query", "SELECT video_id, views, watch_time_s FROM video_stats");
  await page.click("button[type=submit]");
  await page.waitForSelector("#result table");
  out.sql = {
    rows: await page.locator("#result tbody tr").count(),
    as_of: await page.textContent("#as-of"),
  };
  await page.selectOption("select[aria-label='Column to chart']", { label: "views" });
  await shot(page, "7-sql");
  await page.fill("#query", "SELECT nope FROM video_stats");
  await page.keyboard.press("Control+Enter");
  await page.waitForFunction(() => document.querySelector("[role=alert]").textContent.length > 0);
  out.sql_error = await page.textContent("[role=alert]");

  // A phone-sized screen, driven by the keyboard.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click("nav >> text=Library");
  await page.waitForSelector("article.video");
  out.phone = await page.evaluate(() => ({
    overflow: document.documentElement.scrollWidth > window.innerWidth + 1,
    card_width: document.querySelector("article.video").getBoundingClientRect().width,
  }));
  // After a page change the focus is on its content; Tab reaches its links.
  out.focus_after_route = await page.evaluate(() => document.activeElement.id);
  await page.keyboard.press("Tab");
  out.first_tab = await page.evaluate(() => document.activeElement.textContent.trim());
  await shot(page, "8-library-phone");

  // The admin: accounts and roles, the pipeline, the sources.
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.click("text=Sign out");
  await page.waitForSelector("form[aria-label='Sign in']");
  await page.fill("input[name=email]", adminEmail);
  await page.fill("input[name=password]", adminPassword);
  await page.click("button[type=submit]");
  await page.waitForSelector("nav >> text=Admin");
  await page.click("nav >> text=Admin");
  await page.waitForFunction(() => document.querySelectorAll("table").length >= 2 && document.querySelector("[data-count=ready]"), null, { timeout: 20000 });
  await page.waitForFunction(() => document.querySelector("[data-count=ready] .big").textContent === "1", null, { timeout: 20000 });
  out.admin = await page.evaluate(() => ({
    accounts: [...document.querySelectorAll("tbody tr td:first-child")].map((td) => td.textContent),
    ready: document.querySelector("[data-count=ready] .big").textContent,
    failed: document.querySelector("[data-count=failed] .big").textContent,
    source_rows: [...document.querySelectorAll("tbody tr")].filter((tr) => tr.firstChild.textContent.startsWith("reelflow.")).length,
  }));
  await shot(page, "9-admin");
} catch (e) {
  out.error = String(e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));

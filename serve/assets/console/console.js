// Reelflow's web console: sign up and in, the library with live processing
// status, uploads with tus-js-client, analytics charts, a SQL console and
// the admin's pages. Plain JavaScript over the public API:
//
// - accounts: /v1/auth/*, /v1/me, /v1/users (admins);
// - videos: /v1/videos, tus uploads at /v1/uploads, the player at /watch/<id>;
// - numbers: POST /v1/sql, and SUBSCRIBE read as server-sent events, so the
//   library's progress bars and the charts move as the events arrive,
//   without polling.
//
// The access token lives in localStorage as "reelflow.access_token", where
// the player page finds it too.
(() => {
  "use strict";
  const ACCESS = "reelflow.access_token";
  const REFRESH = "reelflow.refresh_token";
  const main = document.getElementById("main");
  const state = { me: null, cleanups: [] };
  window.reelflowConsole = state;

  // ---- small DOM helpers -------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }
  function toast(text) {
    const t = document.getElementById("toast");
    t.textContent = text;
    setTimeout(() => (t.textContent === text ? (t.textContent = "") : null), 4000);
  }
  function fmt(n, digits) {
    if (n === null || n === undefined) return "–";
    return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits ?? 1 });
  }
  function duration(s) {
    if (!Number.isFinite(s)) return "–";
    s = Math.round(s);
    const m = Math.floor(s / 60);
    return m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
  }

  // ---- the API -------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, problem) {
      const fields = (problem.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
      super([problem.detail || problem.title || `HTTP ${status}`, fields].filter(Boolean).join(" — "));
      this.status = status;
      this.problem = problem;
    }
  }
  // One refresh at a time: refresh tokens are single-use, and spending one
  // twice revokes the session. Tabs take turns through a lock, and a tab
  // that finds a token newer than the one that failed uses it as it is.
  let refreshing = null;
  function refreshTokens(failed) {
    if (!refreshing) {
      const run = async () => {
        const current = localStorage.getItem(ACCESS);
        if (current && current !== failed) return true;
        const refresh = localStorage.getItem(REFRESH);
        if (!refresh) return false;
        const r = await fetch("/v1/auth/refresh", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ refresh_token: refresh }),
        });
        if (!r.ok) return false;
        saveTokens(await r.json());
        return true;
      };
      refreshing = (navigator.locks ? navigator.locks.request("reelflow.refresh", run) : run()).finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }
  function saveTokens(t) {
    localStorage.setItem(ACCESS, t.access_token);
    if (t.refresh_token) localStorage.setItem(REFRESH, t.refresh_token);
  }
  function authHeaders() {
    const t = localStorage.getItem(ACCESS);
    return t ? { authorization: "Bearer " + t } : {};
  }
  // fetch with the access token, refreshed once on a 401; JSON in and out.
  async function api(path, opts = {}, retried = false) {
    if (refreshing) await refreshing;
    const used = localStorage.getItem(ACCESS);
    const headers = { ...authHeaders(), ...(opts.headers || {}) };
    let body = opts.body;
    if (body !== undefined && typeof body !== "string") {
      headers["content-type"] = "application/json";
      body = JSON.stringify(body);
    }
    const r = await fetch(path, { method: opts.method || "GET", headers, body, signal: opts.signal });
    if (r.status === 401 && !retried && (await refreshTokens(used))) return api(path, opts, true);
    if (opts.raw) return r;
    if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => ({})));
    return r.status === 204 ? null : r.json();
  }
  const sql = (query) => api("/v1/sql", { method: "POST", body: { query } });

  // A SUBSCRIBE read as server-sent events. `onChanges(changes)` gets each
  // batch ({at, diff, row}); `onProgress(at)` says all changes before `at`
  // have arrived. Returns a function that ends it.
  function subscribe(query, { onChanges, onProgress, onError }) {
    const abort = new AbortController();
    (async () => {
      const r = await api("/v1/sql", {
        method: "POST",
        headers: { accept: "text/event-stream", "content-type": "text/plain" },
        body: query,
        signal: abort.signal,
        raw: true,
      });
      if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => ({})));
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          const payload = data ? JSON.parse(data) : {};
          if (event === "changes") onChanges && onChanges(payload.changes);
          else if (event === "progress") onProgress && onProgress(payload.at);
          else if (event === "error") throw new ApiError(payload.status || 500, payload);
        }
      }
      throw new Error("the subscription ended");
    })().catch((e) => {
      if (abort.signal.aborted) return;
      (onError || ((err) => toast("Live updates stopped: " + err.message)))(e);
    });
    return () => abort.abort();
  }

  // A subscription's rows as they stand: each change adds or removes a row;
  // `onState(rows)` runs at every progress marker that follows changes.
  function live(query, onState) {
    const rows = new Map();
    let changed = true;
    // One state at a time, in order: a slow render never overwrites a
    // newer one.
    let rendering = Promise.resolve();
    const stop = subscribe(query, {
      onChanges(changes) {
        for (const c of changes) {
          const key = JSON.stringify(c.row);
          const n = (rows.get(key)?.n || 0) + c.diff;
          if (n > 0) rows.set(key, { row: c.row, n });
          else rows.delete(key);
        }
        changed = true;
      },
      onProgress(at) {
        if (!changed) return;
        changed = false;
        const snapshot = [...rows.values()].map((r) => r.row);
        rendering = rendering.then(() => onState(snapshot, at)).catch((e) => toast(e.message));
      },
    });
    state.cleanups.push(stop);
    return stop;
  }

  // Videos, looked up once.
  const videos = new Map();
  function video(id) {
    if (!videos.has(id)) videos.set(id, api("/v1/videos/" + id).catch(() => null));
    return videos.get(id);
  }
  async function title(id) {
    const v = await video(id);
    return v ? v.title : id.slice(0, 8);
  }

  // ---- pages -----------------------------------------------------------------
  function page(heading, ...content) {
    main.replaceChildren(h("h1", { text: heading }), ...content);
    document.title = heading + " · Reelflow";
    main.focus({ preventScroll: true });
  }
  function errorBox() {
    return h("p", { class: "error", role: "alert", "aria-live": "assertive" });
  }
  // Runs `action` on submit; what goes wrong is shown in `err`, with the
  // server's hint when it gives one.
  function onSubmit(form, err, action) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      err.textContent = "";
      try {
        await action();
      } catch (x) {
        err.textContent = x.message + (x.problem && x.problem.hint ? " Hint: " + x.problem.hint : "");
      }
    });
  }

  function signIn() {
    const err = errorBox();
    const form = h(
      "form",
      { class: "stack card", "aria-label": "Sign in" },
      h("label", {}, "Email", h("input", { name: "email", type: "email", autocomplete: "username", required: true })),
      h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
      err,
      h("div", { class: "row" }, h("button", { type: "submit" }, "Sign in"), h("a", { href: "#/signup" }, "Create an account")),
    );
    onSubmit(form, err, async () => {
      saveTokens(await api("/v1/auth/login", { method: "POST", body: { email: form.elements.email.value, password: form.elements.password.value } }));
      await loadMe();
      location.hash = "#/library";
    });
    page("Sign in", form);
  }

  function signUp() {
    const err = errorBox();
    const form = h(
      "form",
      { class: "stack card", "aria-label": "Create an account" },
      h("label", {}, "Email", h("input", { name: "email", type: "email", autocomplete: "username", required: true })),
      h("label", {}, "Password (at least 10 characters)",
        h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: "10" })),
      h("label", {}, "Display name", h("input", { name: "display_name", autocomplete: "nickname" })),
      h("label", {}, "I want to",
        h("select", { name: "role" }, h("option", { value: "creator" }, "upload videos (creator)"), h("option", { value: "viewer" }, "watch (viewer)"))),
      err,
      h("div", { class: "row" }, h("button", { type: "submit" }, "Create account"), h("a", { href: "#/signin" }, "I have an account")),
    );
    onSubmit(form, err, async () => {
      const body = { email: form.elements.email.value, password: form.elements.password.value, role: form.elements.role.value };
      if (form.elements.display_name.value.trim()) body.display_name = form.elements.display_name.value.trim();
      saveTokens(await api("/v1/auth/register", { method: "POST", body }));
      await loadMe();
      location.hash = state.me.role === "viewer" ? "#/analytics" : "#/library";
    });
    page("Create an account", form);
  }

  // The library: my videos, each with its status, kept live by a
  // subscription to video_status.
  async function library() {
    const list = h("div", { id: "videos" });
    const empty = h("p", { class: "muted" }, "No videos yet. ", h("a", { href: "#/upload" }, "Upload one"), ".");
    page("My videos", list);
    const cards = new Map();
    function card(v) {
      if (cards.has(v.id)) return cards.get(v.id);
      const c = {
        el: h("article", { class: "card video", "data-video": v.id, "data-status": v.status || "awaiting_upload" }),
        status: h("span", { class: "status" }),
        bar: h("progress", { max: "100", value: "0", "aria-label": "Processing progress" }),
        detail: h("p", { class: "detail muted" }),
        watch: h("a", { href: "/watch/" + v.id, hidden: true }, "Watch"),
      };
      c.el.append(
        h("h2", { text: v.title }),
        h("div", { class: "row" }, c.status, c.watch),
        c.bar,
        c.detail,
      );
      setStatus(c, { status: v.status || "awaiting_upload", progress_pct: v.status === "ready" ? 100 : 0 });
      cards.set(v.id, c);
      list.prepend(c.el);
      empty.remove();
      return c;
    }
    function setStatus(c, s) {
      const status = s.status || "awaiting_upload";
      c.el.dataset.status = status;
      c.status.textContent = status.replace("_", " ");
      const pct = status === "ready" ? 100 : Number(s.progress_pct || 0);
      c.bar.value = pct;
      c.bar.textContent = pct + "%";
      c.el.dataset.progress = String(pct);
      c.watch.hidden = status !== "ready";
      c.detail.textContent =
        status === "failed"
          ? "Failed: " + (s.error || "unknown reason")
          : status === "ready"
            ? `Ready · ${(s.renditions || []).join(", ")}${s.duration_s ? " · " + duration(s.duration_s) : ""}`
            : s.stage
              ? `${s.stage} · ${fmt(pct, 0)}%`
              : status === "awaiting_upload"
                ? "Waiting for the upload"
                : "";
    }
    try {
      const mine = await api(`/v1/videos?owner=${state.me.id}&limit=100`);
      if (!mine.items.length) list.append(empty);
      for (const v of mine.items.reverse()) card(v);
    } catch (x) {
      list.append(h("p", { class: "error" }, x.message));
    }
    live(
      "SUBSCRIBE TO (SELECT video_id, status, progress_pct, stage, error, renditions, duration_s FROM video_status)",
      async (rows) => {
        for (const s of rows) {
          let c = cards.get(s.video_id);
          if (!c) {
            // A video of mine created since the page opened (an admin's
            // subscription sees everyone's).
            const v = await video(s.video_id);
            if (!v || v.owner_id !== state.me.id) continue;
            c = card({ id: v.id, title: v.title, status: s.status });
          }
          setStatus(c, s);
        }
      },
    );
  }

  function upload() {
    const err = errorBox();
    const file = h("input", { type: "file", name: "file", accept: "video/*", id: "file" });
    const drop = h("label", { class: "drop", for: "file" }, "Drop a video here, or choose one ", file);
    const chosen = h("p", { class: "muted", id: "chosen" });
    const bar = h("progress", { max: "100", value: "0", hidden: true, id: "upload-progress", "aria-label": "Upload progress" });
    const info = h("p", { class: "muted", id: "upload-info", "aria-live": "polite" });
    const pause = h("button", { type: "button", class: "secondary", hidden: true }, "Pause");
    const send = h("button", { type: "submit", id: "upload" }, "Upload");
    let picked = null;
    const pick = (f) => {
      picked = f;
      chosen.textContent = f ? `${f.name} · ${fmt(f.size / 1e6)} MB` : "";
      if (f && !form.elements.title.value) form.elements.title.value = f.name.replace(/\.[^.]+$/, "");
    };
    file.addEventListener("change", () => pick(file.files[0] || null));
    drop.addEventListener("dragover", (e) => (e.preventDefault(), drop.classList.add("over")));
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      pick(e.dataTransfer.files[0] || null);
    });
    const form = h(
      "form",
      { class: "stack card", "aria-label": "Upload a video" },
      drop,
      chosen,
      h("label", {}, "Title", h("input", { name: "title", required: true, maxlength: "200" })),
      h("label", {}, "Description", h("textarea", { name: "description", maxlength: "5000" })),
      h("label", {}, "Genre", h("input", { name: "genre", maxlength: "50", placeholder: "music, sports…" })),
      h("label", {}, "Language", h("input", { name: "language", placeholder: "en" })),
      h("label", {}, "Visibility",
        h("select", { name: "visibility" }, ...["public", "unlisted", "private"].map((v) => h("option", { value: v }, v)))),
      err,
      h("div", { class: "row" }, send, pause),
      bar,
      info,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      err.textContent = "";
      if (!picked) {
        err.textContent = "Choose a video file first.";
        return;
      }
      const body = { title: form.elements.title.value, description: form.elements.description.value, visibility: form.elements.visibility.value };
      if (form.elements.genre.value.trim()) body.genre = form.elements.genre.value.trim();
      if (form.elements.language.value.trim()) body.language = form.elements.language.value.trim();
      let video;
      try {
        video = await api("/v1/videos", { method: "POST", body });
      } catch (x) {
        err.textContent = x.message;
        return;
      }
      send.disabled = true;
      bar.hidden = false;
      pause.hidden = false;
      const started = performance.now();
      const up = new tus.Upload(picked, {
        endpoint: "/v1/uploads",
        metadata: { video_id: video.id, filename: picked.name, filetype: picked.type || "video/mp4" },
        chunkSize: 8 * 1024 * 1024,
        retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        async onBeforeRequest(req) {
          if (refreshing) await refreshing;
          const t = localStorage.getItem(ACCESS);
          if (t) req.setHeader("Authorization", "Bearer " + t);
        },
        onShouldRetry(error, attempt) {
          const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
          if (status === 401) refreshTokens(localStorage.getItem(ACCESS));
          return status === 0 || status === 401 || status === 409 || status === 423 || status >= 500 ? attempt < 6 : false;
        },
        onProgress(sent, total) {
          const secs = (performance.now() - started) / 1000;
          const speed = sent / Math.max(secs, 0.001);
          const left = speed > 0 ? (total - sent) / speed : Infinity;
          bar.value = Math.floor((sent / total) * 100);
          info.textContent = `${fmt((sent / total) * 100, 0)}% · ${fmt(speed / 1e6, 1)} MB/s · ${duration(left)} left`;
        },
        onError(x) {
          err.textContent = "The upload failed: " + x.message;
          send.disabled = false;
        },
        onSuccess() {
          bar.value = 100;
          info.textContent = "Uploaded. Processing starts now.";
          pause.hidden = true;
          toast("Uploaded " + video.title);
          location.hash = "#/library";
        },
      });
      let paused = false;
      pause.onclick = () => {
        paused = !paused;
        if (paused) {
          up.abort();
          pause.textContent = "Resume";
          info.textContent += " · paused";
        } else {
          up.start();
          pause.textContent = "Pause";
        }
      };
      const previous = await up.findPreviousUploads();
      if (previous.length) up.resumeFromPreviousUpload(previous[0]);
      up.start();
    });
    page("Upload a video", form);
  }

  function chart(canvas, type, options) {
    const c = new Chart(canvas, {
      type,
      data: { labels: [], datasets: [] },
      options: { responsive: true, maintainAspectRatio: false, animation: false, ...options },
    });
    state.cleanups.push(() => c.destroy());
    return c;
  }
  const box = (heading, ...content) => h("section", { class: "card" }, h("h2", { text: heading }), ...content);
  const canvasBox = () => h("div", { class: "chart" }, h("canvas", {}));

  // Analytics: a creator's own videos, or the whole platform for admins;
  // every chart follows a subscription.
  function analytics() {
    const nowEl = h("div", { class: "big", id: "concurrent-now" }, "0");
    const viewsEl = h("div", { class: "big", id: "views-total" }, "0");
    const watchEl = h("div", { class: "big", id: "watch-total" }, "0 s");
    const concurrentBox = canvasBox();
    const viewsBox = canvasBox();
    const retentionBox = canvasBox();
    const qoeTable = h("div", { class: "table" });
    const trendingTable = h("div", { class: "table" });
    const pickVideo = h("select", { "aria-label": "Video for the retention curve" }, h("option", { value: "" }, "Choose a video"));
    const scope = state.me.role === "admin" ? "the whole platform" : "your videos";
    page(
      "Analytics",
      h("p", { class: "muted" }, `Live numbers for ${scope}; they move as events arrive.`),
      h("div", { class: "grid" },
        box("Watching now", nowEl, h("p", { class: "muted" }, "sessions active in the last minute")),
        box("Views", viewsEl),
        box("Watch time", watchEl)),
      h("div", { class: "grid" },
        box("Concurrent viewers", concurrentBox),
        box("Views and watch time per video", viewsBox)),
      box("Quality of experience", qoeTable),
      h("div", { class: "grid" },
        box("Retention", pickVideo, retentionBox),
        box("Trending", trendingTable)),
    );
    const concurrent = chart(concurrentBox.firstChild, "line", {
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { display: false } },
    });
    concurrent.data.datasets.push({ label: "viewers", data: [], fill: true, tension: 0.2 });
    let viewers = 0;
    live("SUBSCRIBE TO (SELECT video_id, viewers FROM concurrent_viewers)", (rows) => {
      viewers = rows.reduce((a, r) => a + r.viewers, 0);
      nowEl.textContent = fmt(viewers, 0);
    });
    // The concurrency line gains a point every 2 s, from the live value.
    const tick = setInterval(() => {
      const labels = concurrent.data.labels;
      labels.push(new Date().toLocaleTimeString());
      concurrent.data.datasets[0].data.push(viewers);
      if (labels.length > 150) {
        labels.shift();
        concurrent.data.datasets[0].data.shift();
      }
      concurrent.update();
    }, 2000);
    state.cleanups.push(() => clearInterval(tick));

    const perVideo = chart(viewsBox.firstChild, "bar", {
      scales: { y: { beginAtZero: true, position: "left" }, y2: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } },
    });
    perVideo.data.datasets.push({ label: "views", data: [], yAxisID: "y" }, { label: "watch time (s)", data: [], yAxisID: "y2" });
    live("SUBSCRIBE TO (SELECT video_id, views, watch_time_s FROM video_stats)", async (rows) => {
      rows.sort((a, b) => b.views - a.views);
      viewsEl.textContent = fmt(rows.reduce((a, r) => a + r.views, 0), 0);
      viewsEl.dataset.live = "1";
      watchEl.textContent = duration(rows.reduce((a, r) => a + r.watch_time_s, 0));
      const top = rows.slice(0, 15);
      perVideo.data.labels = await Promise.all(top.map((r) => title(r.video_id)));
      perVideo.data.datasets[0].data = top.map((r) => r.views);
      perVideo.data.datasets[1].data = top.map((r) => r.watch_time_s);
      perVideo.update();
      for (const r of rows) {
        if (![...pickVideo.options].some((o) => o.value === r.video_id)) {
          pickVideo.append(h("option", { value: r.video_id }, await title(r.video_id)));
        }
      }
    });

    live("SUBSCRIBE qoe", async (rows) => {
      const head = ["Video", "Sessions", "Startup avg (ms)", "Startup p95 (ms)", "Rebuffering %", "Failures %", "Exits before start %", "Bitrate (kbps)"];
      const body = await Promise.all(
        rows.map(async (r) => [await title(r.video_id), r.sessions, r.startup_ms_avg, r.startup_ms_p95, r.rebuffer_pct, r.failure_pct, r.ebvs_pct, r.avg_bitrate_kbps]),
      );
      qoeTable.replaceChildren(table(head, body));
    });

    const retention = chart(retentionBox.firstChild, "line", {
      scales: { y: { min: 0, max: 100, title: { display: true, text: "% of viewers" } }, x: { title: { display: true, text: "% of the video" } } },
      plugins: { legend: { display: false } },
    });
    retention.data.datasets.push({ label: "viewers %", data: [], tension: 0.2 });
    let stopRetention = null;
    pickVideo.addEventListener("change", () => {
      if (stopRetention) stopRetention();
      const id = pickVideo.value;
      if (!/^[0-9a-f-]{36}$/.test(id)) return;
      stopRetention = live(`SUBSCRIBE TO (SELECT bucket, viewers_pct FROM retention WHERE video_id = '${id}')`, (rows) => {
        rows.sort((a, b) => a.bucket - b.bucket);
        retention.data.labels = rows.map((r) => r.bucket);
        retention.data.datasets[0].data = rows.map((r) => r.viewers_pct);
        retention.update();
      });
    });

    live("SUBSCRIBE trending", async (rows) => {
      rows.sort((a, b) => (a.window === b.window ? a.rank - b.rank : a.window < b.window ? -1 : 1));
      const body = await Promise.all(rows.slice(0, 20).map(async (r) => [r.window, r.rank, await title(r.video_id), r.views]));
      trendingTable.replaceChildren(table(["Window", "Rank", "Video", "Views"], body));
    });
  }

  function table(head, rows) {
    const numeric = (v) => typeof v === "number";
    return h(
      "table",
      {},
      h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((v) => h("td", { class: numeric(v) ? "num" : null }, numeric(v) ? fmt(v, 2) : v ?? "–"))))),
    );
  }

  // The SQL console: run a query, see its rows and the time they are
  // consistent at, chart a column.
  function sqlConsole() {
    const q = h("textarea", { id: "query", "aria-label": "SQL", spellcheck: "false" },
      "SELECT video_id, views, watch_time_s FROM video_stats ORDER BY views DESC LIMIT 10");
    const run = h("button", { type: "submit" }, "Run");
    const meta = h("p", { class: "muted", id: "as-of", "aria-live": "polite" });
    const err = errorBox();
    const result = h("div", { class: "table", id: "result" });
    const pick = h("select", { "aria-label": "Column to chart" });
    const chartBox = canvasBox();
    chartBox.hidden = true;
    const form = h("form", { class: "card stack wide" }, q, h("div", { class: "row" }, run, h("span", { class: "muted" }, "Ctrl+Enter runs")), err);
    page("SQL", form, meta, result, h("div", { class: "card" }, h("label", {}, "Chart a column", pick), chartBox));
    let answer = null;
    let c = null;
    q.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
    });
    onSubmit(form, err, async () => {
      run.disabled = true;
      try {
        answer = await sql(q.value);
        meta.textContent = `${answer.row_count} rows${answer.truncated ? " (cut)" : ""}, consistent as of ${answer.as_of_time}`;
        result.replaceChildren(table(answer.columns.map((c) => c.name), answer.rows));
        const numeric = answer.columns.map((c, i) => [c, i]).filter(([c]) => /int|float|numeric/.test(c.type));
        pick.replaceChildren(h("option", { value: "" }, "—"), ...numeric.map(([c, i]) => h("option", { value: String(i) }, c.name)));
        chartBox.hidden = true;
      } finally {
        run.disabled = false;
      }
    });
    pick.addEventListener("change", () => {
      if (!answer || pick.value === "") return;
      const i = Number(pick.value);
      const label = answer.columns.findIndex((c) => c.type === "text");
      if (!c) c = chart(chartBox.firstChild, "bar", { plugins: { legend: { display: false } } });
      c.data.labels = answer.rows.map((r, n) => (label >= 0 ? String(r[label]).slice(0, 12) : n + 1));
      c.data.datasets = [{ label: answer.columns[i].name, data: answer.rows.map((r) => r[i]) }];
      chartBox.hidden = false;
      c.update();
    });
  }

  // Admin: accounts and roles, the processing pipeline, the sources.
  async function admin() {
    if (state.me.role !== "admin") {
      page("Admin", h("p", { class: "error" }, "Only admins can see this page."));
      return;
    }
    const users = h("div", { class: "table" });
    const pipeline = h("div", { class: "row", id: "pipeline" });
    const failures = h("div", { class: "table" });
    const sources = h("div", { class: "table" });
    const search = h("input", { type: "search", placeholder: "Find by email", "aria-label": "Find accounts by email" });
    page("Admin", box("Accounts", search, users), box("Pipeline", pipeline, h("h2", {}, "Failures"), failures), box("Sources", sources));
    async function loadUsers() {
      const list = await api("/v1/users?limit=200&q=" + encodeURIComponent(search.value));
      users.replaceChildren(
        h("table", {},
          h("thead", {}, h("tr", {}, ["Email", "Name", "Role", "Since"].map((c) => h("th", {}, c)))),
          h("tbody", {}, list.map((u) => {
            const role = h("select", { "aria-label": "Role of " + u.email },
              ...["viewer", "creator", "admin"].map((r) => h("option", { value: r, selected: r === u.role }, r)));
            role.addEventListener("change", async () => {
              try {
                await api(`/v1/users/${u.id}/role`, { method: "PUT", body: { role: role.value } });
                toast(`${u.email} is now ${role.value}`);
              } catch (x) {
                toast(x.message);
              }
            });
            return h("tr", {}, h("td", {}, u.email), h("td", {}, u.display_name), h("td", {}, role), h("td", {}, new Date(u.created_at).toLocaleDateString()));
          }))),
      );
    }
    search.addEventListener("input", () => loadUsers().catch((x) => toast(x.message)));
    loadUsers().catch((x) => users.replaceChildren(h("p", { class: "error" }, x.message)));
    live("SUBSCRIBE TO (SELECT video_id, status, stage, error, updated_at FROM video_status)", async (rows) => {
      const counts = {};
      for (const r of rows) counts[r.status] = (counts[r.status] || 0) + 1;
      pipeline.replaceChildren(
        ...["uploaded", "queued", "processing", "ready", "failed"].map((s) =>
          h("div", { class: "card", "data-count": s }, h("div", { class: "big" }, String(counts[s] || 0)), h("div", { class: "muted" }, s)),
        ),
      );
      const failed = rows.filter((r) => r.status === "failed");
      failures.replaceChildren(
        failed.length
          ? table(["Video", "Stage", "Reason", "When"], await Promise.all(failed.map(async (r) => [await title(r.video_id), r.stage, r.error, r.updated_at])))
          : h("p", { class: "muted" }, "No failures."),
      );
    });
    live("SUBSCRIBE source_progress", (rows) => {
      rows.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
      sources.replaceChildren(table(["Topic", "Partition", "Offset", "High watermark", "Lag"], rows.map((r) => [r.topic, r.partition, r.offset, r.high_watermark, r.lag])));
    });
  }

  // ---- shell -----------------------------------------------------------------
  async function loadMe() {
    state.me = await api("/v1/me");
    const who = document.getElementById("who");
    who.replaceChildren(
      h("span", {}, `${state.me.display_name} · ${state.me.role}`),
      h("button", { type: "button", class: "secondary", onclick: signOut }, "Sign out"),
    );
    document.getElementById("nav").hidden = false;
    document.querySelector("[data-admin]").hidden = state.me.role !== "admin";
  }
  async function signOut() {
    const refresh = localStorage.getItem(REFRESH);
    if (refresh) await api("/v1/auth/logout", { method: "POST", body: { refresh_token: refresh } }).catch(() => null);
    localStorage.removeItem(ACCESS);
    localStorage.removeItem(REFRESH);
    state.me = null;
    document.getElementById("who").replaceChildren();
    document.getElementById("nav").hidden = true;
    location.hash = "#/signin";
  }

  const routes = { signin: signIn, signup: signUp, library, upload, analytics, sql: sqlConsole, admin };
  async function route() {
    for (const stop of state.cleanups.splice(0)) stop();
    const name = (location.hash.replace(/^#\/?/, "").split("/")[0] || "library").toLowerCase();
    if (!state.me && localStorage.getItem(ACCESS)) {
      await loadMe().catch(() => null);
    }
    if (!state.me && name !== "signin" && name !== "signup") {
      location.hash = "#/signin";
      return;
    }
    for (const a of document.querySelectorAll("nav a")) {
      a.toggleAttribute("aria-current", a.getAttribute("href") === "#/" + name);
      if (a.getAttribute("href") === "#/" + name) a.setAttribute("aria-current", "page");
    }
    await (routes[name] || library)();
  }
  document.querySelector(".skip").addEventListener("click", (e) => {
    e.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", () => route().catch((e) => toast(e.message)));
  route().catch((e) => toast(e.message));
})();

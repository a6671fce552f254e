// Reelflow's player page: hls.js plays the video and the page sends the
// player's beacons to POST /v1/playback/events, in the reelflow.playback
// schema. Startup time runs from the play request to the first frame;
// rebuffers, rendition changes and errors come from hls.js's own events;
// a heartbeat goes every 10 s while the session is open.
//
// Access: ?token=… (a playback token) is used as is; otherwise the page asks
// POST /v1/videos/{id}/playback-token, as the signed-in user when
// localStorage holds "reelflow.access_token". ?autoplay=1 starts muted.
(() => {
  "use strict";
  const HEARTBEAT_MS = 10000;
  const params = new URLSearchParams(location.search);
  const videoId = location.pathname.split("/").filter(Boolean).pop();
  const video = document.getElementById("video");
  const statusEl = document.getElementById("status");
  const quality = document.getElementById("quality");
  const accessToken = localStorage.getItem("reelflow.access_token");
  const auth = accessToken ? { Authorization: "Bearer " + accessToken } : {};

  const s = {
    token: params.get("token"),
    sessionId: null,
    sessionToken: null,
    queue: [],
    sending: false,
    started: false,
    firstFrame: false,
    ended: false,
    playRequestedAt: null,
    stallStartedAt: null,
    playedMs: 0,
    lastPosition: 0,
    level: null,
    recoveries: 0,
  };
  const player = { state: s, sent: [], rejected: [], hls: null, flush };
  window.reelflowPlayer = player;

  function show(text, state) {
    statusEl.textContent = text;
    if (state) document.body.dataset.state = state;
  }

  function levelName(level) {
    const m = /([^/?]+)\/index\.m3u8/.exec(level.url || "");
    return m ? m[1] : level.height + "p";
  }

  function currentLevel() {
    const hls = player.hls;
    if (!hls || s.level === null || !hls.levels[s.level]) return {};
    const l = hls.levels[s.level];
    return { rendition: levelName(l), bitrate_kbps: Math.round(l.bitrate / 1000) };
  }

  function position() {
    return Math.max(0, Number.isFinite(video.currentTime) ? video.currentTime : 0);
  }

  function queue(type, fields) {
    s.queue.push(Object.assign({ type }, fields || {}));
    if (s.queue.length >= 50) flush();
  }

  function heartbeat() {
    if (!s.started || s.ended) return;
    queue("heartbeat", Object.assign({ position_s: position(), played_ms: Math.round(s.playedMs) }, currentLevel()));
    s.playedMs = 0;
  }

  async function flush() {
    if (s.sending || s.queue.length === 0) return;
    const events = s.queue.splice(0, 100);
    const body = { video_id: videoId, events };
    if (s.sessionToken) body.session_token = s.sessionToken;
    if (s.token) body.token = s.token;
    s.sending = true;
    try {
      const r = await fetch("/v1/playback/events", {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json" }, auth),
        body: JSON.stringify(body),
        keepalive: true,
      });
      if (r.status === 202) {
        const ack = await r.json();
        s.sessionId = ack.session_id;
        s.sessionToken = ack.session_token; // the session is ours: later batches prove it
        player.sent.push(...events);
      } else if (r.status === 429 || r.status >= 500) {
        s.queue.unshift(...events); // worth another try
      } else {
        player.rejected.push({ status: r.status, problem: await r.json().catch(() => null), events });
      }
    } catch (e) {
      s.queue.unshift(...events);
    } finally {
      s.sending = false;
    }
  }

  function fail(text) {
    show(text, "error");
  }

  async function grant() {
    if (s.token) {
      const q = "?token=" + encodeURIComponent(s.token);
      video.poster = "/v1/videos/" + videoId + "/poster.jpg" + q;
      storyboard("/v1/videos/" + videoId + "/storyboard.jpg" + q);
      return "/v1/videos/" + videoId + "/hls/master.m3u8" + q;
    }
    const r = await fetch("/v1/videos/" + videoId + "/playback-token", { method: "POST", headers: auth });
    if (!r.ok) {
      const p = await r.json().catch(() => ({}));
      throw new Error(p.detail || "HTTP " + r.status);
    }
    const g = await r.json();
    s.token = g.token;
    video.poster = g.poster_url;
    storyboard(g.storyboard_url);
    return g.master_url;
  }

  // The seek bar: a preview from the storyboard (100 thumbnails over the
  // video, tiled 10x10) follows the pointer, or the keyboard.
  const seek = document.getElementById("seek");
  const preview = document.getElementById("preview");
  const sprite = { url: null, w: 0, h: 0 };
  function storyboard(url) {
    const img = new Image();
    img.onload = () => {
      sprite.url = url;
      sprite.w = img.naturalWidth / 10;
      sprite.h = img.naturalHeight / 10;
      preview.style.backgroundImage = "url(" + JSON.stringify(url) + ")";
      preview.style.backgroundSize = img.naturalWidth + "px " + img.naturalHeight + "px";
      preview.style.width = sprite.w + "px";
      preview.style.height = sprite.h + "px";
    };
    img.src = url;
  }
  function clock(t) {
    const m = Math.floor(t / 60);
    const sec = Math.floor(t % 60);
    return m + ":" + String(sec).padStart(2, "0");
  }
  function showPreview(fraction) {
    if (!sprite.url || !Number.isFinite(video.duration)) return;
    const i = Math.min(99, Math.max(0, Math.floor(fraction * 100)));
    preview.style.backgroundPosition = -(i % 10) * sprite.w + "px " + -Math.floor(i / 10) * sprite.h + "px";
    preview.style.left = fraction * 100 + "%";
    preview.style.display = "block";
    preview.firstElementChild.textContent = clock(fraction * video.duration);
  }
  seek.addEventListener("pointermove", (e) => {
    const r = seek.getBoundingClientRect();
    showPreview(Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)));
  });
  seek.addEventListener("pointerleave", () => (preview.style.display = "none"));
  seek.addEventListener("blur", () => (preview.style.display = "none"));
  seek.addEventListener("input", () => {
    const f = Number(seek.value) / 1000;
    showPreview(f);
    if (Number.isFinite(video.duration)) video.currentTime = f * video.duration;
  });
  video.addEventListener("timeupdate", () => {
    if (document.activeElement !== seek && Number.isFinite(video.duration) && video.duration > 0) {
      seek.value = String(Math.round((video.currentTime / video.duration) * 1000));
    }
  });

  async function title() {
    const r = await fetch("/v1/videos/" + videoId, { headers: auth }).catch(() => null);
    if (r && r.ok) {
      const v = await r.json();
      document.getElementById("title").textContent = v.title;
      document.title = v.title + " · Reelflow";
    }
  }

  // The session: a play request opens it; the first frame ends startup.
  video.addEventListener("play", () => {
    if (s.started) return;
    s.started = true;
    s.playRequestedAt = performance.now();
    queue("session_start", { player: "hls.js " + Hls.version });
    flush();
  });
  video.addEventListener("playing", () => {
    if (!s.firstFrame) {
      s.firstFrame = true;
      queue("first_frame", { startup_ms: Math.round(performance.now() - s.playRequestedAt) });
      flush();
      show("Playing", "playing");
    } else if (s.stallStartedAt !== null) {
      queue("rebuffer_end", { duration_ms: Math.round(performance.now() - s.stallStartedAt) });
      s.stallStartedAt = null;
      show("Playing", "playing");
    }
  });
  video.addEventListener("waiting", () => {
    if (s.firstFrame && !video.seeking && s.stallStartedAt === null) {
      s.stallStartedAt = performance.now();
      queue("rebuffer_start", { position_s: position() });
      show("Buffering…");
    }
  });
  video.addEventListener("timeupdate", () => {
    const now = position();
    const delta = now - s.lastPosition;
    if (!video.seeking && !video.paused && delta > 0 && delta < 2) s.playedMs += delta * 1000;
    if (!video.seeking) s.lastPosition = now;
  });
  video.addEventListener("seeking", () => {
    if (s.started) queue("seek", { from_s: s.lastPosition, to_s: position() });
  });
  video.addEventListener("seeked", () => {
    s.lastPosition = position();
  });
  video.addEventListener("pause", () => {
    if (!s.started || video.ended) return;
    heartbeat();
    queue("pause", { position_s: position() });
    flush();
    show("Paused", "paused");
  });
  video.addEventListener("ended", () => {
    if (!s.started || s.ended) return;
    heartbeat();
    queue("end", { position_s: position() });
    s.ended = true;
    flush();
    show("Ended", "ended");
  });
  video.addEventListener("error", () => {
    const e = video.error;
    if (!e || player.hls) return; // hls.js reports its own errors
    queue("error", { code: "media_error_" + e.code, message: e.message || "", fatal: true });
    flush();
    fail("Playback failed: " + (e.message || "media error " + e.code));
  });
  window.addEventListener("pagehide", () => {
    if (s.started && !s.ended) {
      heartbeat();
      queue("end", { position_s: position() });
      s.ended = true;
    }
    flush();
  });
  setInterval(() => {
    heartbeat();
    flush();
  }, HEARTBEAT_MS);

  quality.addEventListener("change", () => {
    if (player.hls) player.hls.currentLevel = Number(quality.value);
  });

  async function start() {
    title();
    let master;
    try {
      master = await grant();
    } catch (e) {
      fail("This video cannot be played: " + e.message);
      return;
    }
    if (!window.Hls || !Hls.isSupported()) {
      fail("This browser cannot play HLS with Media Source Extensions.");
      return;
    }
    const hls = new Hls({ enableWorker: true });
    player.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
      for (let i = data.levels.length - 1; i >= 0; i--) {
        const o = document.createElement("option");
        o.value = String(i);
        o.textContent = levelName(data.levels[i]);
        quality.appendChild(o);
      }
      show("Ready", "ready");
      if (params.get("autoplay") === "1") {
        video.muted = true;
        video.play().catch((e) => show("Press play (" + e.message + ")"));
      }
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
      const from = s.level === null ? null : levelName(hls.levels[s.level]);
      s.level = data.level;
      const l = hls.levels[data.level];
      if (s.started) {
        heartbeat();
        queue("rendition_change", { from, to: levelName(l), bitrate_kbps: Math.round(l.bitrate / 1000) });
      }
    });
    hls.on(Hls.Events.ERROR, (_, data) => {
      const message = String((data.error && data.error.message) || data.reason || data.type || "");
      const code = String(data.details || data.type || "unknown");
      // Fatal errors are retried once per kind; one that stays fatal ends
      // the session.
      let fatal = false;
      if (data.fatal) {
        if (data.type === Hls.ErrorTypes.NETWORK_ERROR && s.recoveries < 2 && data.response?.code !== 404 && data.response?.code !== 403) {
          s.recoveries++;
          hls.startLoad();
        } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR && s.recoveries < 2) {
          s.recoveries++;
          hls.recoverMediaError();
        } else {
          fatal = true;
        }
      }
      if (s.started || fatal) {
        queue("error", { code: code.slice(0, 64), message: message.slice(0, 1000), fatal });
        flush();
      }
      if (fatal) {
        s.ended = true;
        hls.destroy();
        fail("Playback failed: " + code);
      }
    });
    hls.loadSource(master);
    hls.attachMedia(video);
  }
  start();
})();

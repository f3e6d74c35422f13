"use strict";
// The console's media: live video from WS /live/{grant} played through Media Source
// Extensions (a grid of tiles, one per camera), and the downloads of snapshot and recorded
// grants. Loaded before common.js: only declarations here, called by console.js.

// What a live socket's close code means, in the officer's words (docs/api.md, "Live socket").
const CLOSE_WORDS = {
  4001: "the owner revoked consent",
  4002: "the grant's time is over (or its incident closed)",
  4003: "this access is not allowed",
  4004: "no such grant of yours",
  4005: "you are not signed in any more",
  4006: "this grant was used already: request access again",
  4007: "the camera ended the stream or could not be reached",
  4008: "the owner changed the privacy masks: request access again",
  1001: "the server is shutting down",
  1011: "the server failed",
};

// Live, not a growing delay: a picture more than twice this behind the newest received (in
// seconds) jumps to a third of it behind (bench/browser_live.py measures the effect).
const LIVE_EDGE_S = 0.1;

// The MSE type of an fMP4 init segment's video track, from its avcC box (H.264 profile,
// compatibility and level bytes); null when it carries no H.264.
function mseType(init) {
  for (let at = 4; at + 8 <= init.length; at++) {
    if (init[at] === 0x61 && init[at + 1] === 0x76 && init[at + 2] === 0x63 && init[at + 3] === 0x43) {
      const hex = (b) => b.toString(16).padStart(2, "0");
      return `video/mp4; codecs="avc1.${hex(init[at + 5])}${hex(init[at + 6])}${hex(init[at + 7])}"`;
    }
  }
  return null;
}

// Why a live socket closed, in words: the documented code's meaning and the server's reason.
function closeWords(event) {
  const words = CLOSE_WORDS[event.code] || "the connection to the server was lost";
  return event.reason ? `${words} (${event.reason}, ${event.code})` : `${words} (${event.code})`;
}

// A tile of the live grid for a camera: its heading, its player or picture, its status line.
function mediaTile(key, title) {
  const old = document.querySelector(`#media li[data-key="${CSS.escape(key)}"]`);
  if (old) old.remove();
  const tile = el("li", { "data-key": key },
    el("h3", {}, title),
    el("div", { class: "frame" }),
    el("p", { class: "media-status", role: "status" }, "Connecting…"),
    el("p", { class: "media-actions" }));
  document.getElementById("media").append(tile);
  document.getElementById("media-empty").hidden = true;
  return tile;
}

function tileSays(tile, text, state) {
  const line = tile.querySelector(".media-status");
  line.textContent = text;
  tile.dataset.state = state;
}

// Watch a live grant in the grid. onEnd(words) is called once when the video stops because
// the server closed the socket (revocation, expiry, …), with why in words.
function watchLive(grant, camera, onEnd) {
  const tile = mediaTile(`live-${grant}`, `Camera ${camera}, live`);
  const video = el("video", { muted: true, autoplay: true, playsinline: true,
    "aria-label": `Live video of camera ${camera}` });
  video.muted = true;
  tile.querySelector(".frame").append(video);
  const source = new MediaSource();
  video.src = URL.createObjectURL(source);
  const queue = [];
  let buffer = null;
  let stopped = false;
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/live/${encodeURIComponent(grant)}`);
  socket.binaryType = "arraybuffer";

  const stop = (text, state) => {
    if (stopped) return;
    stopped = true;
    video.pause();
    video.removeAttribute("src");
    video.load();
    tileSays(tile, text, state);
    tile.querySelector(".media-actions").replaceChildren();
  };
  const feed = () => {
    if (!buffer || buffer.updating || queue.length === 0 || stopped) return;
    buffer.appendBuffer(queue.shift());
  };
  const start = () => {
    if (buffer || stopped || source.readyState !== "open" || queue.length === 0) return;
    const type = mseType(new Uint8Array(queue[0]));
    if (!type || !MediaSource.isTypeSupported(type)) {
      socket.close(1000);
      stop("Stopped: this camera's video is not H.264, which this browser plays.", "failed");
      return;
    }
    buffer = source.addSourceBuffer(type);
    buffer.mode = "segments";
    buffer.addEventListener("updateend", () => {
      // Follow the live edge: a page that fell behind jumps to the newest picture.
      const ranges = buffer.buffered;
      if (ranges.length && ranges.end(ranges.length - 1) - video.currentTime > LIVE_EDGE_S * 2) {
        video.currentTime = Math.max(ranges.start(0), ranges.end(ranges.length - 1) - LIVE_EDGE_S / 3);
      }
      if (video.paused) video.play().catch(() => null);
      feed();
    });
    feed();
  };
  source.addEventListener("sourceopen", start);
  socket.addEventListener("message", (event) => {
    queue.push(event.data);
    if (!buffer) start();
    else feed();
  });
  video.addEventListener("playing", () => {
    if (!stopped) tileSays(tile, "Live.", "playing");
  }, { once: true });
  socket.addEventListener("close", (event) => {
    if (stopped) return;
    const words = closeWords(event);
    stop(`Stopped: ${words}.`, "ended");
    onEnd(words);
  });
  tile.querySelector(".media-actions").append(el("button", { type: "button", class: "secondary",
    onclick: () => { socket.close(1000); stop("You stopped watching.", "closed"); } },
  `Stop watching camera ${camera}`));
  return tile;
}

// Download what a snapshot or recorded grant gives (GET /grants/{grant}/snapshot or /clip),
// show it in the grid, and offer it to save. A grant is redeemed once.
async function download(grant, camera, scope) {
  const still = scope === "snapshot";
  const tile = mediaTile(`${scope}-${grant}`, `Camera ${camera}, ${still ? "snapshot" : "recorded video"}`);
  tileSays(tile, "Downloading…", "loading");
  const answer = await fetch(`/grants/${encodeURIComponent(grant)}/${still ? "snapshot" : "clip"}`, {
    credentials: "same-origin", redirect: "error" });
  if (!answer.ok) {
    const problem = await answer.json().catch(() => ({}));
    const error = new ApiError(answer.status, problem);
    tileSays(tile, `Not downloaded: ${problemText(error)}`, "failed");
    throw error;
  }
  const sha256 = answer.headers.get("X-Camgate-Sha256") || "";
  const url = URL.createObjectURL(await answer.blob());
  const name = `${camera}-${grant}.${still ? "jpg" : "mp4"}`;
  const shown = still
    ? el("img", { src: url, alt: `Snapshot of camera ${camera}` })
    : el("video", { src: url, controls: true, "aria-label": `Recorded video of camera ${camera}` });
  tile.querySelector(".frame").append(shown);
  tileSays(tile, `Downloaded. SHA-256 in the audit log: ${sha256}`, "done");
  tile.querySelector(".media-actions").append(
    el("a", { href: url, download: name }, `Save ${name}`));
  return tile;
}

// The page's whole logic: list the faces of the picked video (POST /faces), submit a job with
// its parameters, poll it, show the result beside the source, list the key's recent jobs.
// Talks only to this origin, with the API key (kept in this browser's localStorage) as the
// API's bearer token.
"use strict";

const KEY_STORE = "latentsync.apiKey";
const POLL_MS = 500;
const $ = (id) => document.getElementById(id);

let current = null; // the job being watched: {id, timer}
let resultUrl = null; // the object URL of the shown result (released when a new job starts)
let sourceUrl = null; // the object URL of the picked video, shown beside the result
let scanId = null; // the face scan of the picked video

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(method, path, body) {
  const response = await fetch(path, { method, body, headers: authHeaders() });
  if (!response.ok) {
    let code = `HTTP_${response.status}`;
    let message = response.statusText;
    try {
      const err = (await response.json()).error;
      code = err.code;
      message = err.message;
    } catch (_) {
      // not the API's JSON error (a proxy in between?): keep the HTTP status
    }
    throw new Error(`${code}: ${message} (HTTP ${response.status})`);
  }
  return response;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function seconds(s) {
  if (s == null) return "";
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

function describe(job) {
  if (job.status === "queued") {
    const where = job.queue_position ? `, position ${job.queue_position} in the queue` : "";
    const wait = job.eta_seconds ? `, starts in about ${seconds(job.eta_seconds)}` : "";
    return `Queued${where}${wait}`;
  }
  if (job.status === "running") {
    const pct = Math.round(job.progress * 100);
    const frames = job.frames_total ? ` (${job.frames_done}/${job.frames_total} frames)` : "";
    const eta = job.eta_seconds ? `, about ${seconds(job.eta_seconds)} left` : "";
    return `Running: ${job.stage || "starting"}, ${pct}%${frames}${eta}`;
  }
  if (job.status === "succeeded") return "Done";
  if (job.status === "failed") return "Failed";
  return job.status.charAt(0).toUpperCase() + job.status.slice(1);
}

function describeSync(sync) {
  if (!sync) return "No sync score for this result (scoring is off, or no face was tracked).";
  const sign = sync.offset_frames > 0 ? "+" : "";
  const text = `Sync score: LSE-C ${sync.lse_c.toFixed(2)}, LSE-D ${sync.lse_d.toFixed(2)}, ` +
    `offset ${sign}${sync.offset_frames} frames (${sign}${sync.offset_ms} ms)`;
  return sync.weights === "demo" ? `${text}; demo SyncNet weights: the numbers mean nothing` : text;
}

async function showResult(job) {
  const blob = await (await api("GET", job.result_url)).blob(); // fetched with the key, then local
  if (resultUrl) URL.revokeObjectURL(resultUrl);
  resultUrl = URL.createObjectURL(blob);
  $("player").src = resultUrl;
  $("download").href = resultUrl;
  $("download").download = `lipsync-${job.id}.mp4`;
  $("sync").textContent = describeSync(job.result && job.result.sync);
  $("notice").textContent = (job.result && job.result.notice) || "";
  $("face-choice").textContent = describeFaceChoice(job.result && job.result.face);
  $("result").hidden = false;
}

// ---- faces of the picked video: thumbnails, a click chooses one (face=track:<id>) -------------
function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader(); // a data: URL (the page's policy allows data: images only)
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function markChosenFace() {
  for (const button of document.querySelectorAll("#face-tracks .face")) {
    button.setAttribute("aria-pressed", String($("face").value.trim() === `track:${button.dataset.track}`));
  }
}

async function showTracks(scan) {
  const list = $("face-tracks");
  list.replaceChildren();
  $("faces-status").textContent = scan.tracks.length
    ? `${scan.tracks.length} faces found: click the one to lip-sync (default: the largest of each shot).`
    : "No face found in this video.";
  for (const track of scan.tracks) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "face";
    button.dataset.track = String(track.id);
    const img = document.createElement("img");
    img.alt = `face ${track.id}`;
    const label = document.createElement("span");
    label.textContent = `#${track.id}, ${track.start.toFixed(1)}-${track.end.toFixed(1)} s`;
    button.append(img, label);
    button.addEventListener("click", () => {
      $("face").value = `track:${track.id}`;
      markChosenFace();
    });
    list.append(button);
    img.src = await dataUrl(await (await api("GET", track.thumbnail_url)).blob()); // fetched with the key
  }
  markChosenFace();
}

async function pollScan(id) {
  if (scanId !== id) return; // another video was picked meanwhile
  try {
    const scan = await (await api("GET", `/faces/${id}`)).json();
    if (scanId !== id) return;
    if (scan.status === "queued" || scan.status === "running") {
      const pct = Math.round(scan.progress * 100);
      $("faces-status").textContent = `Looking for faces: ${scan.status}, ${pct}%`;
      setTimeout(() => pollScan(id), POLL_MS);
    } else if (scan.status === "failed") {
      $("faces-status").textContent = `Faces could not be listed: ${scan.error.code}: ${scan.error.message}`;
    } else {
      await showTracks(scan);
    }
  } catch (err) {
    $("faces-status").textContent = `Faces could not be listed: ${err.message || err}`;
  }
}

async function scanFaces() {
  const file = $("video").files[0];
  scanId = null;
  $("face").value = "";
  $("face-tracks").replaceChildren();
  if (sourceUrl) URL.revokeObjectURL(sourceUrl);
  sourceUrl = file ? URL.createObjectURL(file) : null;
  $("source").src = sourceUrl || "";
  $("faces").hidden = !file;
  if (!file) return;
  $("faces-status").textContent = "Looking for faces...";
  const form = new FormData();
  form.append("video", file);
  try {
    const scan = await (await api("POST", "/faces", form)).json();
    scanId = scan.id;
    pollScan(scan.id);
  } catch (err) {
    $("faces-status").textContent = `Faces could not be listed: ${err.message || err}`;
  }
}

// ---- the key's recent jobs ----------------------------------------------------------------------
async function listJobs() {
  const list = $("job-list");
  try {
    const { jobs } = await (await api("GET", "/jobs?limit=10")).json();
    list.replaceChildren(
      ...jobs.map((job) => {
        const item = document.createElement("li");
        item.dataset.id = job.id;
        const when = new Date(job.created_at * 1000).toLocaleString();
        const face = job.params.face ? `, face ${job.params.face}` : "";
        item.textContent = `${job.id.slice(0, 8)}: ${job.status} (${when}${face})`;
        return item;
      }),
    );
    if (!jobs.length) list.textContent = "No jobs yet.";
  } catch (err) {
    list.textContent = `Jobs cannot be listed: ${err.message || err}`;
  }
}

function describeFaceChoice(face) {
  if (!face) return "";
  const shots = face.shots.map((s) => `shot ${s.shot}: ${s.track == null ? "no face" : `face ${s.track}`} (${s.reason})`);
  return `Face ${face.face}: ${shots.join("; ")}`;
}

async function poll() {
  const job = current;
  if (!job) return;
  try {
    const view = await (await api("GET", `/jobs/${job.id}`)).json();
    if (current !== job) return; // a newer job replaced this one meanwhile
    $("status").textContent = describe(view);
    $("progress").value = view.status === "succeeded" ? 1 : view.progress;
    $("detail").textContent = view.attempts > 1 ? `attempt ${view.attempts}` : "";
    const final = ["succeeded", "failed", "canceled"].includes(view.status);
    if (!final) {
      job.timer = setTimeout(poll, POLL_MS);
      return;
    }
    current = null;
    $("cancel").hidden = true;
    $("submit").disabled = false;
    if (view.status === "succeeded") await showResult(view);
    if (view.error && view.status === "failed") showError(`${view.error.code}: ${view.error.message}`);
    listJobs();
  } catch (err) {
    showError(String(err.message || err));
    if (current === job) job.timer = setTimeout(poll, POLL_MS * 4); // the service may be restarting
  }
}

async function submit(event) {
  event.preventDefault();
  showError("");
  const form = new FormData();
  form.append("video", $("video").files[0]);
  form.append("audio", $("audio").files[0]);
  const fields = {
    inference_steps: "steps",
    guidance_scale: "guidance",
    seed: "seed",
    enable_deepcache: "deepcache",
    sync_mode: "sync-mode",
    sampler: "sampler",
    quality: "quality",
    face: "face",
  };
  for (const [name, id] of Object.entries(fields)) {
    const value = $(id).value.trim();
    if (value) form.append(name, value); // unset: the service's default
  }
  $("submit").disabled = true;
  $("result").hidden = true;
  try {
    const job = await (await api("POST", "/lipsync", form)).json();
    if (current) clearTimeout(current.timer);
    current = { id: job.id, timer: null };
    $("job-id").textContent = job.id;
    $("status").textContent = describe(job);
    $("progress").value = 0;
    $("job").hidden = false;
    $("cancel").hidden = false;
    poll();
    listJobs();
  } catch (err) {
    showError(String(err.message || err));
    $("submit").disabled = false;
  }
}

async function cancel() {
  if (!current) return;
  try {
    await api("DELETE", `/jobs/${current.id}`);
  } catch (err) {
    showError(String(err.message || err));
  }
}

function init() {
  const key = $("api-key");
  key.value = localStorage.getItem(KEY_STORE) || "";
  key.addEventListener("input", () => localStorage.setItem(KEY_STORE, key.value.trim()));
  key.addEventListener("change", () => {
    listJobs();
    if ($("video").files[0] && !scanId) scanFaces(); // picked before the key was typed
  });
  $("video").addEventListener("change", scanFaces);
  $("face").addEventListener("input", markChosenFace);
  $("job-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
  listJobs();
}

document.addEventListener("DOMContentLoaded", init);

// The page's whole logic: submit a job, poll it, show the result. Talks only to this origin,
// with the API key (kept in this browser's localStorage) as the API's bearer token.
"use strict";

const KEY_STORE = "latentsync.apiKey";
const POLL_MS = 500;
const $ = (id) => document.getElementById(id);

let current = null; // the job being watched: {id, timer}
let resultUrl = null; // the object URL of the shown result (released when a new job starts)

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
  $("result").hidden = false;
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
  if ($("steps").value) form.append("inference_steps", $("steps").value);
  if ($("seed").value) form.append("seed", $("seed").value);
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
  $("job-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
}

document.addEventListener("DOMContentLoaded", init);

// The live preview: while a job renders, play GET /jobs/{id}/stream (a fragmented MP4 that
// grows window by window) from its first window on. The stream needs the API key, which a
// plain <video src> cannot send, so it is fetched and fed to the player through Media Source
// Extensions. It watches the page app.js drives (the job id shown, the result section) and
// changes nothing of it: a new job id starts a preview, the result appearing ends it.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let live = null; // {id, abort, url}

  function stop() {
    if (!live) return;
    live.abort.abort();
    URL.revokeObjectURL(live.url);
    live = null;
    const player = $("live-player");
    player.pause();
    player.removeAttribute("src");
    player.load();
    $("live").hidden = true;
  }

  function appended(buffer, chunk) {
    return new Promise((resolve, reject) => {
      buffer.addEventListener("updateend", resolve, { once: true });
      buffer.addEventListener("error", reject, { once: true });
      buffer.appendBuffer(chunk);
    });
  }

  async function start(jobId) {
    stop();
    if (!jobId || !window.MediaSource) return;
    const key = $("api-key").value.trim();
    const abort = new AbortController();
    const source = new MediaSource();
    const mine = { id: jobId, abort, url: URL.createObjectURL(source) };
    live = mine;
    try {
      // Answered once the first window is out (the service holds the request until then).
      const response = await fetch(`/jobs/${jobId}/stream`, {
        headers: key ? { Authorization: `Bearer ${key}` } : {},
        signal: abort.signal,
      });
      const type = response.headers.get("content-type") || "";
      if (live !== mine || !response.ok || !MediaSource.isTypeSupported(type)) return;
      const player = $("live-player");
      player.src = mine.url;
      await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
      const buffer = source.addSourceBuffer(type);
      $("live").hidden = false;
      const reader = response.body.getReader();
      let playing = false;
      for (;;) {
        const { done, value } = await reader.read();
        if (done || live !== mine) break;
        await appended(buffer, value);
        if (!playing && buffer.buffered.length) {
          playing = true;
          player.play().catch(() => {
            player.muted = true; // a browser that allows no sound before a click on the page
            return player.play();
          }).catch(() => {});
        }
      }
      if (live === mine && source.readyState === "open") source.endOfStream();
    } catch (_) {
      // no preview (an old browser, the job failed, a new job started): the result still comes
    }
  }

  function init() {
    const jobId = $("job-id");
    new MutationObserver(() => start(jobId.textContent.trim())).observe(jobId, { childList: true });
    // The finished result replaces the preview.
    new MutationObserver(() => { if (!$("result").hidden) stop(); })
      .observe($("result"), { attributes: true, attributeFilter: ["hidden"] });
  }

  document.addEventListener("DOMContentLoaded", init);
})();

"""The soak's CI form (issue 22): embedded mode on a small disk of its own, a seeded mix of
uploads, polls, cancels, deletes, a slow and an idle client, kill -9 and SIGTERM of the
service (the SIGTERM while a webhook waits for its retry) and a full disk; then every
invariant of ``tests/soak.py``. The long form, with cluster mode (Redis restart, worker
kills), is ``scripts/bench_soak.py``."""

from __future__ import annotations

from pathlib import Path

from tests.media_helpers import make_audio, make_clip
from tests.soak import SETTINGS, Soak, WebhookReceiver, make_plan
from tests.soak_services import Embedded

SEED = 22
STEPS = 6  # traffic actions besides the ones placed once below; each restart costs a model load
# sigterm_webhook_pending: SIGTERM while a webhook's retry waits (the service's SIGTERM case)
ONCE = ["kill9_api", "sigterm_webhook_pending", "full_disk", "idle_upload", "slow_upload"]
TRAFFIC = {"upload": 4, "poll": 6, "cancel": 1, "delete": 1.5}
DISK_MB = 64  # the demo weights (~15 MB) and a running short job (~20 MB at peak), with room to fill


def test_soak_embedded(media_dir: Path, tmp_path: Path) -> None:
    # 0.6 s jobs (one window): the run's CPU goes to restarts (a model load each) and jobs
    inputs = {
        "video": make_clip(media_dir / "demo1_video.mp4", tmp_path / "v.mp4", 0.6, start=1.0),
        "audio": make_audio(media_dir / "demo1_audio.wav", tmp_path / "a.wav", 0.6),
    }
    receiver = WebhookReceiver()
    service = Embedded(tmp_path / "svc", DISK_MB, **SETTINGS)
    try:
        soak = Soak(service, inputs, SEED, receiver)
        soak.warm_up()
        soak.run(make_plan(SEED, STEPS, ONCE, TRAFFIC))
        soak.wait_all(timeout=300)
        problems = soak.check()
        figures = soak.figures()
        print(figures)
    finally:
        service.close()
        receiver.close()
    assert problems == []
    assert figures["faults"] == {"kill9_api": 1, "sigterm_webhook_pending": 1, "full_disk": 1}
    assert figures["jobs_accepted"] >= 2 and figures["polls"] > 0

"""``face=speaker`` where the answer is known, judged by a SyncNet trained in the test.

A tiny StableSyncNet learns sync on envelope clips (``tests/sync_helpers.py``, as the SyncNet
learning test trains it: until its held-out accuracy is 5 standard deviations above chance).
The video: two real faces side by side (the bundled talking head and a mirrored copy), each
with a painted mouth whose grey level follows its own random envelope; the audio is noise
whose loudness follows one of the two envelopes. Scored through the service's interface
(``speaker_confidences`` -> ``choose_faces``, and the job's ``plan_selected_source``), the
face whose mouth follows the audio must be chosen, and the other one when the audio is
swapped for the other mouth's envelope.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from latentsync_core.configs.syncnet import load_syncnet_config
from latentsync_core.inference import LipSyncParams
from latentsync_core.inference.context import open_job
from latentsync_core.inference.face_choice import choose_faces
from latentsync_core.inference.face_selection import parse_face
from latentsync_core.inference.selected_source import plan_selected_source
from latentsync_core.media.probe import probe_video
from latentsync_core.sync.speaker import speaker_confidences
from latentsync_core.training.syncnet_trainer import SyncNetTrainer
from latentsync_core.vision.face_detection import make_face_detector
from latentsync_core.vision.face_tracks import FaceTracks, track_faces
from tests.face_media import SIDE, square_frames, write_lossless
from tests.sync_helpers import (
    TINY_SYNCNET_CONFIG,
    PatchScorer,
    accuracy_bar,
    envelope_speech,
    make_envelope_data,
    mouth_grey,
    random_envelope,
    train_until_accurate,
    write_wav,
)

FRAMES = 100  # 4 s, as long as a training clip
PATCH = (slice(190, 202), slice(102, 122))  # inside the painted mouth in any crop of a face (as test_sync_video)


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> PatchScorer:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine two spinning threads run ~10x slower
    try:
        folder = tmp_path_factory.mktemp("syncnet")
        config = folder / "tiny.yaml"
        config.write_text(TINY_SYNCNET_CONFIG)
        cfg = load_syncnet_config(config)
        trainer = SyncNetTrainer(cfg, make_envelope_data(folder / "data"), folder / "run")
        trainer.prepare_output(resume=False)
        # As the learning test: looked at every 40 steps, up to twice the slowest run it saw.
        _, after, history = train_until_accurate(trainer, accuracy_bar(cfg.data.num_val_samples), 40, 600)
        print(f"held-out accuracy by step: {history}")
        assert after["accuracy"] >= accuracy_bar(cfg.data.num_val_samples), history
        yield PatchScorer(trainer.model.eval(), cfg.data, PATCH)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def speakers(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same frames twice (lossless), once with each mouth's speech as the audio track."""
    folder = tmp_path_factory.mktemp("speakers")
    still = np.concatenate([square_frames(folder, 1)[0], square_frames(folder, 1, start=3.0, mirrored=True)[0]], 1)
    faces = sorted(make_face_detector(None).detect_all(still), key=lambda f: f.box[0])
    assert len(faces) == 2
    rng = np.random.default_rng(11)
    envelopes = [random_envelope(rng, FRAMES) for _ in faces]
    assert np.corrcoef(envelopes[0], envelopes[1])[0, 1] < 0.5  # two different mouths
    frames = np.repeat(still[None], FRAMES, axis=0)
    for face, envelope in zip(faces, envelopes, strict=True):
        x1, y1, x2, y2 = face.box
        cx, cy, s = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) / 2
        rows, cols = slice(int(cy + 1.25 * s), int(cy + 1.65 * s)), slice(int(cx - 0.3 * s), int(cx + 0.3 * s))
        frames[:, rows, cols] = mouth_grey(envelope)[:, None, None, None]
    speech = [envelope_speech(e, rng) for e in envelopes]
    videos = [
        write_lossless(folder / f"speaks_{i}.mkv", frames, write_wav(folder / f"speech_{i}.wav", pcm))
        for i, pcm in enumerate(speech)
    ]
    return {"videos": videos, "speech": speech}


@pytest.fixture(scope="module")
def tracks(speakers: dict) -> FaceTracks:
    found = track_faces(speakers["videos"][0], make_face_detector(None), workers=1)  # the same frames in both
    assert found.ids == [0, 1] and found.tracks[0].boxes[0, 0] < found.tracks[1].boxes[0, 0]
    return found


def test_the_trained_net_picks_the_face_that_follows_the_audio(
    scorer: PatchScorer, speakers: dict, tracks: FaceTracks
) -> None:
    for speaking, (video, pcm) in enumerate(zip(speakers["videos"], speakers["speech"], strict=True)):
        conf = speaker_confidences(video, tracks, pcm, scorer)
        print(f"audio of face {speaking}: confidences {conf}")
        assert set(conf) == {0, 1} and conf[speaking] > conf[1 - speaking]
        choice = choose_faces(parse_face("speaker"), tracks, conf, threshold=scorer.min_confidence)
        assert [(s.track, s.reason) for s in choice.shots] == [(speaking, "speaker")]
        assert set(choice.frame_track.tolist()) == {speaking}
        # No track confident enough: the largest, and the record says so.
        high = choose_faces(parse_face("speaker"), tracks, conf, threshold=1e9)
        assert high.shots[0].reason == "largest (no track above confidence 1e+09)" and high.shots[0].track is not None
        assert high.to_json()["shots"][0]["confidence"] == {str(k): round(v, 3) for k, v in conf.items()}
    no_audio = choose_faces(parse_face("speaker"), tracks, None, "the video has no audio")
    assert no_audio.shots[0].reason == "largest (the video has no audio)"


def test_the_job_path_reads_the_videos_own_audio(scorer: PatchScorer, speakers: dict, tmp_path: Path) -> None:
    """``plan_selected_source`` (what a job runs): the right face speaks the audio track."""
    video = speakers["videos"][1]
    params = LipSyncParams(face="speaker")
    info = probe_video(video)
    detector = make_face_detector(None)
    with open_job(
        video, video, tmp_path / "o.mkv", params, torch.device("cpu"), torch.float32, work_dir=tmp_path
    ) as ctx:
        with plan_selected_source(ctx, info, FRAMES, parse_face("speaker"), detector, 256, 1, scorer) as plan:
            assert plan.face_choice is not None
            assert [(s["track"], s["reason"]) for s in plan.face_choice["shots"]] == [(1, "speaker")]
            assert plan.has_face.all() and (plan.boxes[:, 0] >= SIDE).all()  # the right face, every frame
        silent = dataclasses.replace(info, has_audio=False)
        with plan_selected_source(ctx, silent, FRAMES, parse_face("speaker"), detector, 256, 1, scorer) as plan:
            assert plan.face_choice["shots"][0]["reason"] == "largest (the video has no audio)"  # type: ignore[index]

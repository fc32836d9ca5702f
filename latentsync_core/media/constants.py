"""The rates LatentSync works at, in every part of the library: video at 25 frames per
second (the UNet's 16-frame windows, SyncNet's clips, the training set) and speech at
16 kHz (Whisper's and the mel spectrogram's input)."""

from __future__ import annotations

FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640 audio samples per video frame

"""Audio conditioning: Whisper encoder features and the per-video-frame token windows.

Only the Whisper *encoder* is built and run (no text decoding). Features are the input
embedding plus every block's output, so each 20 ms audio frame carries (layers+1, dim)
values; each video frame then takes 10 of those frames around its own time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from whisper.audio import N_FRAMES, log_mel_spectrogram, pad_or_trim
from whisper.model import AudioEncoder, ModelDimensions

from latentsync_core.media.audio_io import load_audio
from latentsync_core.models.checkpoint import CheckpointError

FEATURE_FPS = 50  # Whisper encoder frames per second (two per 10 ms mel hop pair)
WINDOW_BEFORE = 2  # video frames of context on each side ...
WINDOW_AFTER = 2  # ... giving (2 + 1 + 2) * 2 = 10 encoder frames per video frame


class WhisperFeatureExtractor:
    """Whisper encoder loaded from an openai-whisper checkpoint file (never downloaded)."""

    def __init__(self, model_path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
        """``dtype`` is accepted for symmetry with the other models and ignored: the encoder
        always runs in float32 (whisper's LayerNorm needs float32 weights, and the tiny
        encoder costs milliseconds either way); features are float32."""
        path = Path(model_path)
        if not path.is_file():
            raise CheckpointError(f"Whisper checkpoint not found: {path} (run `latentsync download-weights`)")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            dims = ModelDimensions(**ckpt["dims"])
            state = ckpt["model_state_dict"]
        except Exception as exc:
            raise CheckpointError(f"{path} is not an openai-whisper checkpoint: {exc}") from exc
        self.dims = dims
        self.device = torch.device(device)
        encoder = AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer)
        prefix = "encoder."
        enc_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            encoder.load_state_dict(enc_state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: encoder weights do not match its dims: {exc}") from exc
        self.encoder = encoder.to(self.device).eval()

    @property
    def embedding_dim(self) -> int:
        return self.dims.n_audio_state

    @property
    def num_layers(self) -> int:
        return self.dims.n_audio_layer + 1

    @torch.no_grad()
    def features_from_samples(self, samples: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(T, layers+1, dim) float32 features at 50 frames/s for 16 kHz mono samples."""
        audio = torch.as_tensor(samples, dtype=torch.float32)
        if audio.numel() == 0:
            raise ValueError("audio is empty")
        mel = log_mel_spectrogram(audio, self.dims.n_mels)
        n_frames = mel.shape[-1]
        parts = []
        # 30 s windows; each keeps the encoder frames that cover real (unpadded) audio.
        for start in range(0, n_frames, N_FRAMES):
            end = min(start + N_FRAMES, n_frames)
            window = pad_or_trim(mel[:, start:end], N_FRAMES).unsqueeze(0)
            layers = self._encode_layers(window.to(self.device))
            parts.append(layers[0, : (end - start) // 2].float().cpu())
        return torch.cat(parts, dim=0)

    def features(self, audio_path: str | Path) -> torch.Tensor:
        """Features of an audio file (any format ffmpeg reads; resampled to 16 kHz mono)."""
        return self.features_from_samples(load_audio(audio_path))

    def _encode_layers(self, mel: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        x = torch.nn.functional.gelu(enc.conv1(mel))
        x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = (x + enc.positional_embedding).to(x.dtype)
        outputs = [x]
        for block in enc.blocks:
            x = block(x)
            outputs.append(x)
        return torch.stack(outputs, dim=2)  # (1, frames, layers+1, dim)

    @staticmethod
    def num_chunks(num_features: int, fps: float = 25) -> int:
        """Number of video frames the features cover (upstream's count: one past the last
        frame whose centre lies inside the features)."""
        step = FEATURE_FPS / fps
        count = 0
        while int(count * step) <= num_features:
            count += 1
        return count + 1

    @staticmethod
    def chunks(features: torch.Tensor, fps: float = 25, start: int = 0, count: int | None = None) -> torch.Tensor:
        """(N, 10*(layers+1), dim) cross-attention tokens, one window per video frame.

        ``start``/``count`` select a range of video frames, so long audio can be windowed
        lazily without materialising every chunk.
        """
        total = WhisperFeatureExtractor.num_chunks(len(features), fps)
        if count is None:
            count = total - start
        frames = torch.arange(start, start + count)
        centres = torch.floor(frames.double() * FEATURE_FPS / fps).long()
        offsets = torch.arange(-WINDOW_BEFORE * 2, (WINDOW_AFTER + 1) * 2)
        idx = (centres[:, None] + offsets[None, :]).clamp(0, len(features) - 1)
        picked = features[idx]  # (N, 10, layers+1, dim)
        return picked.reshape(count, -1, features.shape[-1])

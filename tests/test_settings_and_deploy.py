from pathlib import Path

import pytest
import yaml

from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_in_env_example() -> None:
    documented = {
        line.split("=", 1)[0].strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.startswith("LATENTSYNC_")
    }
    expected = {f"LATENTSYNC_{name.upper()}" for name in Settings.model_fields}
    assert expected == documented


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LATENTSYNC_INFERENCE_STEPS", "7")
    monkeypatch.setenv("LATENTSYNC_API_KEYS", "a, b")
    monkeypatch.setenv("LATENTSYNC_INPUT_DIRS", f'["{tmp_path}"]')
    monkeypatch.setenv("LATENTSYNC_ENABLE_DEEPCACHE", "true")
    s = Settings()
    assert s.inference_steps == 7 and s.api_keys == ["a", "b"] and s.input_dirs == [tmp_path] and s.enable_deepcache
    monkeypatch.setenv("LATENTSYNC_INFERENCE_STEPS", "0")
    with pytest.raises(ValueError):
        Settings()


def test_compose_file_reserves_a_gpu_and_mounts_data() -> None:
    """No Docker engine runs here: check the compose file's structure instead."""
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    svc = spec["services"]["latentsync"]
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert any(v.endswith(":/app/checkpoints:ro") for v in svc["volumes"])
    assert any(v.endswith(":/app/data") for v in svc["volumes"])
    assert svc["env_file"] == ".env"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile and "USER app" in dockerfile
    assert "ffmpeg" in dockerfile

"""Portable compile artifacts: what one process compiled, another loads instead of compiling.

Both "processes" are simulated in one interpreter by giving each compile a fresh, empty
inductor cache folder and resetting dynamo, which is what a new container has; a real
inductor compile (CPU C++ back end) makes the kernels, so a broken save or load shows as a
cache miss.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters
from torch._inductor.utils import fresh_cache

from latentsync_core.inference.compile_cache import CompileArtifacts, artifact_key


def _fn(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.silu(x) * 2 + 1


def _compile_and_run(x: torch.Tensor) -> torch.Tensor:
    torch._dynamo.reset()
    counters.clear()
    return torch.compile(_fn, dynamic=False, fullgraph=True)(x)


def test_artifacts_saved_after_a_cold_compile_are_hits_in_a_fresh_cache(tmp_path: Path) -> None:
    store = CompileArtifacts(tmp_path / "artifacts")
    fields = {"model": "tiny", "dtype": "float32"}
    key = artifact_key(fields)
    x = torch.linspace(-3, 3, 16)
    with fresh_cache():
        assert not store.load(key)  # nothing there yet
        cold = _compile_and_run(x)
        assert counters["inductor"]["fxgraph_cache_miss"] >= 1
        assert store.save(key, fields) == store.path(key)
    assert store.path(key).stat().st_size > 0
    assert '"dtype": "float32"' in store.path(key).with_suffix(".json").read_text()
    assert not list(store.folder.glob(".part-*"))  # atomic: no partial file left behind

    with fresh_cache():  # a new machine: empty inductor cache, only the artifact file
        assert store.load(key)
        warm = _compile_and_run(x)
        assert counters["inductor"]["fxgraph_cache_hit"] >= 1
        assert counters["inductor"]["fxgraph_cache_miss"] == 0
    torch.testing.assert_close(warm, cold, rtol=0, atol=0)


def test_a_damaged_artifact_file_means_a_cold_compile_not_a_failure(tmp_path: Path) -> None:
    store = CompileArtifacts(tmp_path)
    key = artifact_key({"model": "tiny"})
    store.path(key).write_bytes(b"not a cache")
    with fresh_cache():
        assert not store.load(key)  # no exception: the caller compiles from scratch


@pytest.mark.parametrize("change", [{"gpu": "NVIDIA H100 80GB HBM3"}, {"torch": "2.99"}, {"dtype": "torch.bfloat16"}])
def test_the_key_names_everything_the_kernels_depend_on(change: dict) -> None:
    base = {"gpu": "NVIDIA H200", "torch": "2.11.0", "dtype": "torch.float16", "unet": {"a": 1}}
    assert artifact_key(base) == artifact_key(dict(reversed(list(base.items()))))  # order-free
    assert artifact_key({**base, **change}) != artifact_key(base)

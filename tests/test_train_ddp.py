"""Two-process DDP on CPU (torchrun, gloo) against one process with the same global batch:
the same samples (the data position is the step; every random draw is per sample) and
gradients averaged over the processes give the same parameters, up to rounding.

Both runs are in float64. In float32 the bound cannot be derived from the result: a gradient
is a sum of ~1e4 terms taken in another order and batch split, so its rounding error is
relative to the sum of the terms' magnitudes, not to the sum, and where terms cancel (a norm
bias near 0) the relative error of the sum has no bound (seen: 1.2e-2 of the training change,
1e5 float32 eps). In float64 the same cancellation costs 5e8 times less; a real mismatch
(another sample, a missing or doubled gradient average) moves a tensor by its whole training
change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from latentsync_core.configs.unet import load_unet_config
from latentsync_core.training.checkpoints import read_state
from latentsync_core.training.distributed import init_distributed
from latentsync_core.training.unet_models import WeightSource
from latentsync_core.training.unet_trainer import TrainOptions, UNetTrainer
from tests.train_helpers import make_data, make_weights, write_config

ROOT = Path(__file__).resolve().parent.parent
STEPS, LR = 2, 1e-3


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    data = make_data(tmp_path_factory.mktemp("data"), train=[(0.0, 1.4), (2.0, 1.4)], val=[])
    return data, make_weights(tmp_path_factory.mktemp("weights"))


def test_two_process_ddp_matches_one_process(tmp_path, setup):
    data, weights = setup
    # adam_epsilon 1: an update is then lr * m / (sqrt(v) + 1), Lipschitz in the gradient
    # with constant lr, so float32 rounding differences in the gradients stay that small
    # in the parameters (with 1e-8 an update is ~lr * sign(g) and flips with the rounding).
    common = {"optimizer__lr": LR, "optimizer__adam_epsilon": 1.0}
    ddp_cfg = write_config(tmp_path / "ddp.yaml", weights, data__batch_size=1, **common)
    one_cfg = write_config(tmp_path / "one.yaml", weights, data__batch_size=2, **common)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "latentsync_core.training.cli", "train", "unet", "--config", str(ddp_cfg), "--data", str(data),
           "--output", str(tmp_path / "ddp"), "--checkpoint-dir", str(weights), "--max-steps", str(STEPS),
           "--device", "cpu", "--no-validation", "--no-progress", "--dtype", "float64"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        options = TrainOptions(data, tmp_path / "one", WeightSource("official", weights), max_steps=STEPS,
                               progress=False, validate=False, dtype=torch.float64)  # fmt: skip
        one = UNetTrainer(load_unet_config(one_cfg), options, init_distributed("cpu")).run()
    finally:
        torch.set_num_threads(before)

    ddp_state = read_state(tmp_path / "ddp" / "checkpoints" / f"state-{STEPS:08d}.pt")
    one_state = read_state(one.last_state)
    start = torch.load(weights / "latentsync_unet.pt", weights_only=True)["state_dict"]
    assert ddp_state.global_batch == one_state.global_batch == 2
    eps = torch.finfo(torch.float64).eps
    worst = 0.0
    trained = 0
    for key, p_one in one_state.unet.items():
        p_ddp, p_start = ddp_state.unet[key], start[key].double()
        assert p_one.dtype == p_ddp.dtype == torch.float64, key
        step_scale = float((p_one - p_start).abs().max())  # how far training moved this tensor
        # Rounding of the parameters themselves (a few ulp), plus the updates' difference:
        # with adam_epsilon 1 an update is Lipschitz in the gradient (constant lr), and a
        # gradient is a float64 sum of at most ~1e4 terms (frames x latent pixels x channels)
        # in another order: an error of at most 1e4 eps of the terms' summed magnitudes.
        # Allowing those magnitudes 1e4 times the training change (deeper cancellation than
        # the worst float32 case above) bounds the difference by 1e8 eps = 2.2e-8 of the
        # change (measured: ~1e-11); a real mismatch moves a tensor by its whole change.
        tol = 8 * eps * p_one.abs() + 1e8 * eps * step_scale
        diff = (p_ddp - p_one).abs()
        assert torch.all(diff <= tol), (key, float(diff.max()), step_scale)
        if step_scale > 0:
            trained += 1
            worst = max(worst, float(diff.max()) / step_scale)
    assert trained > 100, trained  # stage 2's motion modules and attention moved
    print(f"worst DDP vs one-process difference: {worst:.2e} of a tensor's training change")

import numpy as np
import pytest
import torch

from latentsync_core.vision import FaceAligner
from tests.reference_data import load


@pytest.fixture(scope="module")
def reference() -> dict:
    return load("affine_512")


def _grey_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    d = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return float(d.mean()), int(d.max())


def test_align_with_smoothing_matches_upstream(reference: dict) -> None:
    aligner = FaceAligner(resolution=512)
    image = reference["image"].numpy()
    for i in range(len(reference["landmarks3"])):
        face, matrix = aligner.align(image, reference["landmarks3"][i].numpy())
        assert face.shape == (560, 420, 3) and face.dtype == np.uint8
        assert np.abs(matrix - reference["affine_matrices"][i].numpy()).max() < 1e-3
        if i < len(reference["faces"]):  # the first frames' faces are stored (tests/data/README.md)
            mean, worst = _grey_diff(face, reference["faces"][i].numpy())
            print(f"frame {i}: face mean {mean:.4f} max {worst}")
            assert mean < 0.5 and worst <= 3


def test_smoothing_carries_state(reference: dict) -> None:
    aligner = FaceAligner(resolution=512)
    image = reference["image"].numpy()
    aligner.align(image, reference["landmarks3"][0].numpy())
    _, second = aligner.align(image, reference["landmarks3"][1].numpy())
    fresh = FaceAligner(resolution=512)
    _, alone = fresh.align(image, reference["landmarks3"][1].numpy())
    assert np.abs(second - alone).max() > 1e-3


def test_restore_matches_upstream(reference: dict) -> None:
    aligner = FaceAligner(resolution=512)
    out = aligner.restore(
        reference["image"].numpy(), reference["generated_face"], reference["affine_matrices"][-1].numpy()
    )
    mean, worst = _grey_diff(out, reference["restored"].numpy())
    print(f"restore: mean {mean:.4f} max {worst}")
    assert out.shape == (360, 480, 3)
    assert mean < 0.5 and worst <= 3


def test_batched_warps_equal_single_ones(reference: dict) -> None:
    aligner = FaceAligner(resolution=512)
    image = torch.from_numpy(reference["image"].numpy())
    frames = image[None].repeat(3, 1, 1, 1)
    matrices = reference["affine_matrices"][:3]
    batch = aligner.warp_faces(frames, matrices)
    for i in range(3):
        assert torch.equal(batch[i], torch.from_numpy(reference["faces"][i].numpy())) or (
            (batch[i].int() - reference["faces"][i].int()).abs().max() <= 3
        )
    faces = reference["generated_face"][None].repeat(3, 1, 1, 1)
    restored = aligner.restore_batch(frames, faces, matrices)
    for i in range(3):
        single = aligner.restore(image.numpy(), reference["generated_face"], matrices[i].numpy())
        assert np.array_equal(restored[i].numpy(), single)


@pytest.mark.parametrize(
    "offset", [(300.0, 700.0), (-150.0, -100.0), (900.0, 1700.0)], ids=["inside", "edge", "corner"]
)
def test_restore_on_the_face_region_equals_the_whole_frame(reference: dict, offset: tuple[float, float]) -> None:
    """The fast path (work only where the face lands) gives exactly the full-frame result."""
    aligner = FaceAligner(resolution=512)
    rng = np.random.default_rng(1)
    frame = torch.from_numpy(rng.integers(0, 255, (1920, 1080, 3), dtype=np.uint8))[None]
    m = reference["affine_matrices"][-1].clone()
    m[:, 2] = m[:, 2] - m[:, :2] @ torch.tensor(offset)  # the same face, elsewhere in a big frame
    face = reference["generated_face"][None]
    fast = aligner.restore_batch(frame, face, m[None], crop=True)
    full = aligner.restore_batch(frame, face, m[None], crop=False)
    assert torch.equal(fast, full)
    assert (fast != frame).any()

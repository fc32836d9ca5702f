"""The LatentSync UNet3D and its checkpoint loader."""

from latentsync_core.models.checkpoint import CheckpointError, load_unet_checkpoint, load_unet_state_dict
from latentsync_core.models.unet import DeepCacheState, UNet3DConditionModel, UNetOutput

__all__ = [
    "CheckpointError",
    "DeepCacheState",
    "UNet3DConditionModel",
    "UNetOutput",
    "load_unet_checkpoint",
    "load_unet_state_dict",
]

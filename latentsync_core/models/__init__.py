"""The LatentSync UNet3D and its checkpoint loader."""

from latentsync_core.models.checkpoint import CheckpointError, load_unet_checkpoint, load_unet_state_dict
from latentsync_core.models.stable_syncnet import StableSyncNet, load_stable_syncnet
from latentsync_core.models.syncnet_v2 import SyncNetV2, load_syncnet_v2_checkpoint
from latentsync_core.models.unet import DeepCacheState, UNet3DConditionModel, UNetOutput

__all__ = [
    "CheckpointError",
    "DeepCacheState",
    "StableSyncNet",
    "SyncNetV2",
    "UNet3DConditionModel",
    "UNetOutput",
    "load_stable_syncnet",
    "load_syncnet_v2_checkpoint",
    "load_unet_checkpoint",
    "load_unet_state_dict",
]

"""Training: the UNet (stage 1 and 2) trainer, its dataset, losses, checkpoints, validation
and export; the SyncNet trainer and the loss networks (LPIPS, TREPA) live beside them.

Nothing here is imported by inference or the service: modules load on use."""

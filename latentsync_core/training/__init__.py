"""Training: datasets, loss networks and trainers (UNet stages 1/2, SyncNet)."""

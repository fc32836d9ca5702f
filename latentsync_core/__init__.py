"""LatentSync 1.6 model library: UNet3D, audio features, face alignment, media and the
lip-sync pipeline. Knows nothing about HTTP."""

__version__ = "0.1.0"

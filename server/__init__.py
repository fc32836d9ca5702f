"""The HTTP service around the lip-sync pipeline."""

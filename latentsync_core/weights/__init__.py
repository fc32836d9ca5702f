"""Weight files: random checkpoints for tests and the demo, official layout and download."""

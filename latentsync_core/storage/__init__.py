"""What the library keeps on disk: files published whole, never half written (``atomic.py``),
the decoded-frame store of a running job (``frame_store.py``) and the worst-case estimate of a
job's disk need that admission checks (``job_disk.py``)."""

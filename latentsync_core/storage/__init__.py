"""What a job keeps on disk while it runs: the decoded-frame store (``frame_store.py``) and
the worst-case estimate of a job's disk need that admission checks (``job_disk.py``)."""

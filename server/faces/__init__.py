"""Face scans (``POST /faces``): the face tracks of a video, found off the event loop, kept in
their own folder with a thumbnail per track, so that a person can pick a face before a job.

``record`` (a scan's record and its folder), ``scanner`` (runs scans on a bounded thread
pool, one at a time by default) and ``known`` (the tracks of a file by its SHA-256, which
``/lipsync`` checks ``face=track:<id>`` against). Nothing here knows HTTP."""

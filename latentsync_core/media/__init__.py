"""Media I/O through ffmpeg: probing, decoding, encoding and muxing.

Import from the modules (``media.audio_io``, ``media.ffmpeg_bin``, ...): the package itself
imports nothing, so a module as low as ``storage.job_disk`` can use ``media.constants``
without loading the decoders (which import the disk estimate back)."""

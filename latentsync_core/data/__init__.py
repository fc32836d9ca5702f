"""Training-data preprocessing: raw talking-head footage in, a clean training set out.

Seven stages (``items.Stage``, one module each under ``stages/``): check, resample (25 fps,
16 kHz mono), shots, segment, align (the inference face geometry), sync (SyncNetV2 offset
and confidence) and quality. The scheduler decides what runs next and the manifest
(``manifest.sqlite``) records every decision, so runs resume. An ``Engine`` runs the tasks
(``engine.drive``): the local one on a CPU process pool and one worker per device, the Ray
one on a cluster.

Entry points: :func:`run_preprocess` with a :class:`PreprocessConfig` (from
:func:`load_preprocess_config`), or the ``preprocess`` command (``cli.add_parser``).
"""

from latentsync_core.data.config import PreprocessConfig, load_preprocess_config
from latentsync_core.data.pipeline import RunSummary, run_preprocess

__all__ = ["PreprocessConfig", "RunSummary", "load_preprocess_config", "run_preprocess"]

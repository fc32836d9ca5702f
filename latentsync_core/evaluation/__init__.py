"""Evaluation of lip-sync models (``latentsync eval``): generate a test set with one or more
UNets, score every output (LSE-C / LSE-D / offset with SyncNetV2, FVD with I3D features of
face crops, visual quality, face coverage), keep the results in SQLite and report per model
with intervals and model-vs-model paired differences.

Modules, one job each: ``testset`` (the LIST file), ``frechet`` (Fréchet distance),
``i3d`` (FVD face clips and I3D features), ``visual_quality``, ``scoring`` (one video's
scores; training validation uses it too), ``store`` (results.sqlite), ``generate`` (the
pipeline per UNet), ``runner`` (``eval run``), ``stats`` (bootstrap, paired test),
``report`` and ``plot`` (``eval report``), ``syncnet_acc`` and ``cli``.
"""

"""``eval run``: check the inputs, score the source videos (the ground-truth row and FVD's
real set), then generate and score every test with every UNet, storing each result as it
is finished. Rerunning the same command continues a killed run: finished results are kept,
a finished output that was not scored yet is scored without being generated again.

Outputs: ``DIR/videos/<model>/<test>.mp4``, ``DIR/results.sqlite``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from latentsync_core.common.errors import CodedError
from latentsync_core.evaluation.generate import GenerationOptions, Generator, UNetSpec, generate, remove_leftovers
from latentsync_core.evaluation.i3d import I3D_FILE, I3DFeatures
from latentsync_core.evaluation.scoring import VideoScore, VideoScorer
from latentsync_core.evaluation.store import GROUND_TRUTH, ResultRow, ResultsStore
from latentsync_core.evaluation.testset import EvalPair, check_pairs, read_test_set
from latentsync_core.evaluation.visual_quality import make_quality_measure
from latentsync_core.inference.params import LipSyncParams
from latentsync_core.models.loading import pick_device
from latentsync_core.sync.video import load_syncnet_v2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    test_set: Path
    unets: list[UNetSpec]
    output: Path
    generation: GenerationOptions
    params: LipSyncParams = field(default_factory=LipSyncParams)
    i3d: Path | None = None  # None: checkpoint_dir / auxiliary / i3d_torchscript.pt
    fvd: bool = True
    progress: bool = True


@dataclass
class RunSummary:
    generated: int = 0  # outputs made by this run
    scored: int = 0  # results stored by this run (generated or found on disk)
    kept: int = 0  # results a previous run had already stored
    failed: int = 0  # results stored as failed by this run
    sources: int = 0  # source videos scored by this run


def _row(model: str, test: EvalPair, score: VideoScore, output: Path | None = None) -> ResultRow:
    return ResultRow(
        model=model,
        test=test.key,
        video=str(test.video),
        speech=str(test.speech_path),
        own_audio=test.own_audio,
        status="done",
        metrics=score.metrics(),
        quality_model=score.quality_model,
        features=score.features,
        output=None if output is None else str(output),
        fvd_start=score.fvd_start,
    )


def _settings(options: RunOptions, quality: str) -> dict:
    """What every stored result depends on (the models may differ between runs)."""
    gen = options.generation
    return {
        "params": asdict(options.params),
        "weights": gen.weights,
        "unet_config": str(gen.unet_config),
        "fvd": options.fvd,
        "quality": quality,
    }


def run_eval(options: RunOptions) -> RunSummary:
    """Raises :class:`CodedError` for what makes the run impossible (the test list, a pair,
    a missing network, results of other settings in ``output``); a test that fails to
    generate is stored as failed and the run goes on."""
    tests = read_test_set(options.test_set)
    check_pairs(tests)
    options.params.validate()
    gen = options.generation
    device = str(pick_device(gen.device))
    # the scoring networks before anything is written: a missing file stops the run with nothing done
    i3d = I3DFeatures(options.i3d or gen.checkpoint_dir / I3D_FILE, device) if options.fvd else None
    syncnet, _ = load_syncnet_v2(gen.checkpoint_dir, gen.weights, device)
    quality = make_quality_measure(gen.checkpoint_dir, gen.weights, device)
    store = ResultsStore(options.output)
    try:
        store.check_settings(_settings(options, quality.name))
        for spec in options.unets:
            store.add_model(spec.name, spec.label)
        generator = Generator(gen)
        scorer = VideoScorer(syncnet, generator.detector, quality, i3d, gen.detect_workers)
        summary = RunSummary()
        _score_sources(tests, store, scorer, summary, options.progress)
        for spec in options.unets:
            _run_model(spec, tests, store, generator, scorer, options, summary)
        return summary
    finally:
        store.close()


def _score_sources(
    tests: list[EvalPair], store: ResultsStore, scorer: VideoScorer, summary: RunSummary, progress: bool
) -> None:
    """Each source video once: its FVD features and, for own-audio tests, the ground truth."""
    truth = store.finished(GROUND_TRUTH)
    todo = [t for t in tests if not store.has_source(str(t.video)) or (t.own_audio and t.key not in truth)]
    for test in tqdm(todo, desc="ground truth", unit="video", disable=not progress):
        if not test.own_audio and store.has_source(str(test.video)):
            continue  # its video was scored with another test of this list
        start = time.perf_counter()
        score = scorer.score(test.video, None, sync=test.own_audio)
        if test.own_audio:
            store.put(_row(GROUND_TRUTH, test, score), score.notes, time.perf_counter() - start)
        store.put_source(str(test.video), score)
        summary.sources += 1


def _run_model(
    spec: UNetSpec,
    tests: list[EvalPair],
    store: ResultsStore,
    generator: Generator,
    scorer: VideoScorer,
    options: RunOptions,
    summary: RunSummary,
) -> None:
    done = store.finished(spec.name)
    todo = [t for t in tests if t.key not in done]
    summary.kept += len(tests) - len(todo)
    if not todo:
        return
    pipeline = generator.pipeline(spec)
    folder = options.output / "videos" / spec.name
    remove_leftovers(folder)
    for test in tqdm(todo, desc=spec.name, unit="video", disable=not options.progress):
        start = time.perf_counter()
        output = folder / f"{test.key}.mp4"
        if not output.is_file():
            try:
                generate(pipeline, test.video, test.speech_path, output, options.params)
            except CodedError as exc:  # the pipeline refused this pair: recorded, the run goes on
                log.warning("%s on %s: [%s] %s", spec.name, test.key, exc.code, exc.message)
                row = _row(spec.name, test, VideoScore())
                row.status, row.error = "failed", f"{exc.code}: {exc.message}"
                store.put(row, [], time.perf_counter() - start)
                summary.failed += 1
                continue
            summary.generated += 1
        score = scorer.score(output)  # against the output's own track (the speech), as upstream scores
        store.put(_row(spec.name, test, score, output), score.notes, time.perf_counter() - start)
        summary.scored += 1

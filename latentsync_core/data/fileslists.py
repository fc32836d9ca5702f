"""The training and validation lists: kept clips, split by source file so that no speaker
recording feeds both sides. The side of a source depends only on its path (a hash compared
with ``val_fraction``), so adding sources never moves an existing one.

The format: one clip path per line (absolute as written here; a relative one is relative to
the list's folder). :func:`write_fileslists` writes them, :func:`read_fileslist` is the one
reader (the trainers and validation).
"""

from __future__ import annotations

from pathlib import Path

from latentsync_core.common.errors import CodedError
from latentsync_core.data.items import split_key
from latentsync_core.data.layout import Layout
from latentsync_core.data.manifest import Manifest
from latentsync_core.storage.atomic import write_text_atomic


def assign_splits(rel_paths: list[str], val_fraction: float) -> dict[str, str]:
    """``rel_path -> "train" | "val"``. When the hash puts no source on the validation side
    but there are at least two sources, the one with the smallest key goes there, so a
    small dataset still gets a validation list."""
    if not rel_paths:
        return {}
    splits = {p: ("val" if split_key(p) < val_fraction else "train") for p in rel_paths}
    if val_fraction > 0 and len(rel_paths) >= 2 and "val" not in splits.values():
        splits[min(rel_paths, key=split_key)] = "val"
    return splits


def write_fileslists(manifest: Manifest, layout: Layout, val_fraction: float) -> dict[str, int]:
    """Write both lists (absolute clip paths, sorted) and each clip's side into the manifest."""
    sources = {row["source_id"]: row["rel_path"] for row in manifest.sources()}
    kept = [row for row in manifest.clips() if row["status"] == "kept"]
    with_clips = sorted({sources[row["source_id"]] for row in kept})
    by_source = assign_splits(with_clips, val_fraction)
    splits = {row["clip_id"]: by_source[sources[row["source_id"]]] for row in kept}
    manifest.set_splits(splits)
    lists: dict[str, list[str]] = {"train": [], "val": []}
    for row in kept:
        lists[splits[row["clip_id"]]].append(str(layout.clip(row["clip_id"])))
    write_text_atomic(layout.train_list, "".join(f"{p}\n" for p in sorted(lists["train"])))
    write_text_atomic(layout.val_list, "".join(f"{p}\n" for p in sorted(lists["val"])))
    return {side: len(paths) for side, paths in lists.items()}


def read_fileslist(path: str | Path, missing_ok: bool = False) -> list[Path]:
    """The clip paths of a ``fileslist_*.txt`` (blank lines ignored). A missing list is a
    ``NO_TRAINING_DATA`` error, or no clips when ``missing_ok`` (an optional validation list)."""
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return []
        raise CodedError("NO_TRAINING_DATA", f"file list not found: {path} (run `latentsync preprocess` first)")
    clips = [Path(line.strip()) for line in path.read_text().splitlines() if line.strip()]
    return [c if c.is_absolute() else path.parent / c for c in clips]

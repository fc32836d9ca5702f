"""Loads the reference vectors shipped in ``tests/data`` (see its README for their origin).

Each vector is one compressed ``.npz``: arrays under slash-separated paths of the original
nested structure (``state_dict/conv_in.weight``, ``cases/0/features``) and everything that
is not an array as JSON under ``__meta__``. ``load`` gives back that structure with torch
tensors, as ``torch.load`` of the upstream file did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATA = Path(__file__).resolve().parent / "data"
META = "__meta__"


def pack(tree: dict, path: Path, narrow: dict[str, np.dtype] | None = None) -> None:
    """Write ``tree`` (nested dicts/lists of tensors, arrays and JSON values) to ``path``."""
    arrays: dict[str, np.ndarray] = {}

    def walk(node: Any, prefix: str) -> Any:
        if isinstance(node, dict):
            return {"__dict__": {str(k): walk(v, f"{prefix}{k}/") for k, v in node.items()}}
        if isinstance(node, (list, tuple)):
            return {"__list__": [walk(v, f"{prefix}{i}/") for i, v in enumerate(node)]}
        if isinstance(node, torch.Tensor | np.ndarray):
            key = prefix.rstrip("/")
            array = node.numpy() if isinstance(node, torch.Tensor) else node
            original = str(array.dtype)
            if narrow and key in narrow:  # stored narrower (README says which), widened on load
                array = array.astype(narrow[key])
            arrays[key] = array
            return {"__array__": key, "torch": isinstance(node, torch.Tensor), "dtype": original}
        return node

    meta = walk(tree, "")
    np.savez_compressed(path, **arrays, **{META: np.array(json.dumps(meta))})


def load(name: str) -> dict:
    """The vector ``tests/data/<name>.npz`` as the nested structure it was packed from."""
    with np.load(DATA / f"{name}.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop(META)))

    def build(node: Any) -> Any:
        if isinstance(node, dict) and "__dict__" in node:
            return {k: build(v) for k, v in node["__dict__"].items()}
        if isinstance(node, dict) and "__list__" in node:
            return [build(v) for v in node["__list__"]]
        if isinstance(node, dict) and "__array__" in node:
            array = arrays[node["__array__"]].astype(node["dtype"], copy=False)
            return torch.from_numpy(array.copy()) if node["torch"] else array
        return node

    return build(meta)

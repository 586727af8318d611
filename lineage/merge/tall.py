"""TALL-mask compression (Wang, Dimitriadis et al., ICML 2024): T fine-tuned models stored
as one multi-task vector plus one bit per weight per task.

    tau_t   = theta_t - theta_0,   tau_MTL = sum_t tau_t (or their TIES merge)
    m_t     = |tau_t| >= lam_t * |tau_MTL - tau_t|
    theta_t ~= theta_0 + m_t * tau_MTL

A compressed folder holds ``tau_mtl.safetensors`` (float tensors in the base's dtype),
``masks.safetensors`` (per task and tensor, ``numpy.packbits`` of the flattened mask as
uint8, key ``task{t}::{name}``) and ``tall.json`` (models, lambdas, shapes, sizes). The
base model is not stored: reconstruction reads it again. Non-float tensors (integer
buffers) are taken from the base.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from lineage.errors import SpecError, UnknownNameError
from lineage.merge import output, tall_masks
from lineage.merge.run import MergeResult, check_compatible
from lineage.weights import ModelWeights, open_model
from lineage.weights.dtypes import is_float, torch_dtype

Score = Callable[[int, float, Mapping[str, torch.Tensor]], float]
LAMBDAS = (0.2, 0.3, 0.4, 0.5, 0.6)
FORMAT = "lineage-tall-v1"


@dataclass(frozen=True)
class CompressResult:
    """What :func:`compress` stored; ``ratio`` = compressed bytes / bytes of T full models."""

    out_dir: Path
    model_ids: tuple[str, ...]
    lams: tuple[float, ...]
    compressed_bytes: int
    full_bytes: int

    @property
    def ratio(self) -> float:
        return self.compressed_bytes / self.full_bytes


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """bool [*shape] -> uint8 [ceil(numel / 8)], 8 weights per byte."""
    return torch.from_numpy(np.packbits(mask.reshape(-1).numpy()))


def unpack_mask(packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`pack_mask`: uint8 [ceil(n / 8)] -> bool [*shape]."""
    n = int(np.prod(shape)) if len(shape) else 1
    bits = np.unpackbits(packed.numpy(), count=n).astype(bool)
    return torch.from_numpy(bits).reshape(tuple(shape))


def _per_tensor(base_m, models, name, lams, merge, density):
    """(theta_0 [*shape] float32, tau_MTL, masks bool [T, *shape]) for one tensor."""
    theta0 = base_m.tensor(name).float()
    taus = torch.stack([m.tensor(name).float() - theta0 for m in models])
    n = len(models)
    mtl = tall_masks.multitask_vector(taus, weight=[1.0] * n, density=[density] * n,
                                      merge=merge)
    return theta0, mtl, tall_masks.masks(taus, mtl, lams)


def _float_names(m: ModelWeights) -> list[str]:
    return [n for n, i in m.infos().items() if is_float(i.dtype)]


def _choose_lams(base_m, models, score: Score, candidates, merge, density) -> list[float]:
    """Per task, the candidate lambda whose reconstruction ``score`` rates highest.

    One streaming pass per (task, lambda): memory is one reconstructed state dict.
    """
    chosen = []
    names = base_m.names()
    floats = set(_float_names(base_m))
    for t in range(len(models)):
        best = None
        for lam in candidates:
            state = {}
            for name in names:
                if name not in floats:
                    state[name] = base_m.tensor(name).clone()
                    continue
                theta0, mtl, m = _per_tensor(base_m, models, name, [lam] * len(models),
                                             merge, density)
                state[name] = (theta0 + m[t] * mtl).to(base_m.tensor(name).dtype)
            value = float(score(t, lam, state))
            if best is None or value > best[0]:
                best = (value, lam)
        chosen.append(best[1])
    return chosen


def _lams(lam, n: int) -> list[float]:
    lams = [float(lam)] * n if isinstance(lam, int | float) else [float(x) for x in lam]
    if len(lams) != n:
        raise SpecError(f"TALL lam={lam!r}", f"needs one value per fine-tuned model ({n})",
                        "Give a single float or one per model")
    return lams


def compress(
    base: str,
    finetuned: Sequence[str],
    out_dir: str | Path,
    *,
    lam: float | Sequence[float] = 0.4,
    score: Score | None = None,
    candidates: Sequence[float] = LAMBDAS,
    merge: str = "sum",
    density: float = 1.0,
    resolve: Callable[[str], str | Path] = Path,
    overwrite: bool = False,
) -> CompressResult:
    """Compress ``finetuned`` models (fine-tunes of ``base``) into ``out_dir``.

    ``lam``: the mask threshold, one for all or one per model; with ``score`` each task's
    lambda is instead chosen from ``candidates`` by ``score(task_index, lam, state_dict)``
    (higher is better; the caller evaluates the reconstructed state on held-out data).
    ``merge``: tau_MTL as the "sum" of task vectors or their "ties" merge (``density``).
    """
    if merge not in tall_masks.MTL_MERGES:
        raise UnknownNameError.of("multi-task merge", merge, tall_masks.MTL_MERGES)
    with ExitStack() as stack:
        base_m = stack.enter_context(open_model(resolve(base)))
        models = [stack.enter_context(open_model(resolve(f))) for f in finetuned]
        check_compatible({base: base_m, **dict(zip(finetuned, models, strict=True))}, base)
        lams = (_choose_lams(base_m, models, score, candidates, merge, density) if score
                else _lams(lam, len(models)))
        with output.AtomicFolder(out_dir, overwrite=overwrite) as folder:
            _write_compressed(folder.tmp, base_m, models, lams, merge, density)
            sizes = sum((folder.tmp / f).stat().st_size
                        for f in ("tau_mtl.safetensors", "masks.safetensors"))
            full = sum(i.nbytes for m in models for i in m.infos().values())
            meta = {"format": FORMAT, "base": base, "models": list(finetuned), "lam": lams,
                    "merge": merge, "density": density, "compressed_bytes": sizes,
                    "full_bytes": full, "ratio": sizes / full}
            (folder.tmp / "tall.json").write_text(json.dumps(meta, indent=2) + "\n")
            folder.commit()
    return CompressResult(Path(out_dir), tuple(finetuned), tuple(lams), sizes, full)


def _write_compressed(folder: Path, base_m, models, lams, merge, density) -> None:
    # Both dicts grow to tau_MTL (one model) + T bits per weight: the compressed size.
    taus, packed = {}, {}
    for name in _float_names(base_m):
        _, mtl, m = _per_tensor(base_m, models, name, lams, merge, density)
        taus[name] = mtl.to(base_m.tensor(name).dtype).contiguous()
        for t in range(len(models)):
            packed[f"task{t}::{name}"] = pack_mask(m[t])
    save_file(taus, str(folder / "tau_mtl.safetensors"), metadata={"format": FORMAT})
    save_file(packed, str(folder / "masks.safetensors"), metadata={"format": FORMAT})


def _task_index(meta: dict, which: int | str) -> int:
    models = meta["models"]
    if isinstance(which, int) and 0 <= which < len(models):
        return which
    if isinstance(which, str) and which in models:
        return models.index(which)
    raise UnknownNameError.of("compressed model", str(which),
                              [*models, *map(str, range(len(models)))])


def reconstruct(
    compressed_dir: str | Path,
    index_or_name: int | str,
    out_dir: str | Path,
    *,
    base: str | None = None,
    resolve: Callable[[str], str | Path] = Path,
    overwrite: bool = False,
    max_shard_bytes: int = output.DEFAULT_MAX_SHARD_BYTES,
) -> MergeResult:
    """Rebuild one compressed model ``theta_0 + m_t * tau_MTL`` as a model folder.

    ``index_or_name``: the model's position in the compressed list or its id. ``base``
    overrides the base reference stored in ``tall.json`` (resolved by ``resolve``).
    """
    start = time.monotonic()
    src = Path(compressed_dir)
    meta = json.loads((src / "tall.json").read_text())
    t = _task_index(meta, index_or_name)
    base_ref = base or meta["base"]
    with ExitStack() as stack:
        base_m = stack.enter_context(open_model(resolve(base_ref)))
        taus = stack.enter_context(open_model(src / "tau_mtl.safetensors"))
        masks = stack.enter_context(open_model(src / "masks.safetensors"))
        infos = base_m.infos()
        shards = output.plan_shards([(n, i.nbytes) for n, i in infos.items()], max_shard_bytes)
        specs = {n: output.TensorSpec(torch_dtype(i.dtype), i.shape) for n, i in infos.items()}
        tau_names = set(taus.names())
        with output.AtomicFolder(out_dir, overwrite=overwrite) as folder:
            with output.ShardWriter(folder.tmp, shards, specs) as writer:
                for name, info in infos.items():
                    theta0 = base_m.tensor(name)
                    if name in tau_names:
                        m = unpack_mask(masks.tensor(f"task{t}::{name}"), info.shape)
                        theta0 = theta0.float() + m * taus.tensor(name).float()
                    writer.add(name, theta0.to(specs[name].dtype))
                    base_m.release(name)
                files = writer.finish()
            output.write_config(folder.tmp, base_m.metadata.config, None)
            output.copy_side_files(base_m.layout.root, folder.tmp)
            _write_card(folder.tmp, meta, t, base_ref)
            folder.commit()
    return MergeResult(Path(out_dir), "tall_mask", (base_ref, meta["models"][t]), len(infos),
                       tuple(files), writer.total_bytes, time.monotonic() - start)


def _write_card(folder: Path, meta: dict, t: int, base_ref: str) -> None:
    about = (f"TALL-mask reconstruction of `{meta['models'][t]}` (lambda = {meta['lam'][t]}) "
             f"from a multi-task vector over {len(meta['models'])} models; Wang, Dimitriadis "
             "et al. 2024, https://arxiv.org/abs/2405.07813.")
    recipe = {"merge_method": "tall_mask", "base_model": base_ref,
              "models": [{"model": m} for m in meta["models"]],
              "parameters": {"task": t, "lam": meta["lam"][t], "merge": meta["merge"],
                             "density": meta["density"]}}
    text = output.card_text([base_ref, *meta["models"]], json.dumps(recipe, indent=2) + "\n",
                            f"{meta['models'][t]} (TALL-mask reconstruction)", about)
    (folder / "README.md").write_text(text, encoding="utf-8")

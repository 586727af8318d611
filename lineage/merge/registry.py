"""The one registry of merge methods: name -> function, paper, parameters.

A method is a pure per-tensor function ``fn(base, tensors, **params) -> tensor``; variants
(TIES vs DARE vs breadcrumbs...) are configurations of one function (``fixed``), not
copies. Parameter names and defaults follow mergekit wherever mergekit has the method, so
a mergekit recipe means the same thing here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from lineage.errors import SpecError, UnknownNameError
from lineage.merge import (
    averaging,
    model_stock,
    selective,
    slerp,
    spherical,
    tall_masks,
    task_arithmetic,
    ubgm,
)
from lineage.merge.seeding import tensor_seed
from lineage.merge.settings import parse_setting

REQUIRED: Any = object()


@dataclass(frozen=True)
class Param:
    """One recipe parameter.

    ``per_model`` parameters are given under each model (or globally, as a default for
    all models, as in mergekit) and reach the function as a list, one value per model.
    ``tensor_file`` parameters name a safetensors file whose tensor of the same name is
    passed instead (e.g. a Fisher). ``base_arg`` is the keyword that receives the value
    given under the base model's own entry (UBGM's H_0, s_0).
    """

    name: str
    type: type
    default: Any = REQUIRED
    per_model: bool = False
    doc: str = ""
    arg: str | None = None
    choices: tuple[str, ...] = ()
    tensor_file: bool = False
    base_arg: str | None = None

    @property
    def keyword(self) -> str:
        return self.arg or self.name


@dataclass(frozen=True)
class MergeMethod:
    """A registered merge method: a function plus the configuration that makes it a variant."""

    name: str
    fn: Callable[..., torch.Tensor]
    paper: str
    url: str
    params: tuple[Param, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    base: str = "required"  # "required" | "optional" (used when given) | "ignored"
    min_models: int = 1
    max_models: int | None = None
    randomized: bool = False
    in_mergekit: bool = True

    @property
    def needs_base(self) -> bool:
        return self.base == "required"

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise UnknownNameError.of(f"{self.name} parameter", name, [p.name for p in self.params])

    @property
    def global_names(self) -> list[str]:
        # mergekit lets per-model parameters be set globally as defaults for every model.
        return [p.name for p in self.params]

    @property
    def model_names(self) -> list[str]:
        return [p.name for p in self.params if p.per_model]


def _p(name, type_, default=REQUIRED, doc="", **kw) -> Param:
    return Param(name, type_, default, doc=doc, **kw)


WEIGHT = _p("weight", float, per_model=True, doc="scale of the model's task vector / weight")
WEIGHT1 = _p("weight", float, 1.0, per_model=True, doc="scale of the model's contribution")
DENSITY = _p("density", float, 1.0, per_model=True, doc="fraction of task-vector entries kept")
LAMBDA = _p("lambda", float, 1.0, arg="lambda_", doc="rescale of the final merged task vector")
INT8 = _p("int8_mask", bool, False, doc="mergekit memory option; no effect on values")
RESCALE_NORM = _p(
    "rescale_norm", str, "l1", choices=("l1", "l2", "linf", "inverse_density"),
    doc="norm matched by rescale (mergekit: l1); inverse_density = DARE paper's 1/p",
)
GAMMA = _p("gamma", float, 0.01, per_model=True, doc="fraction of largest entries dropped")
EPSILON = _p("epsilon", float, 0.15, per_model=True, doc="spread of DELLA keep probabilities")
LAM = _p("lam", float, 0.4, per_model=True, doc="TALL mask threshold lambda_t (0.2..0.6)")


def _gta(name, paper, url, *, sparsify, consensus, normalize, rescale) -> MergeMethod:
    params = [
        WEIGHT, DENSITY, LAMBDA, INT8, RESCALE_NORM,
        _p("normalize", bool, normalize, doc="divide by the sum of (sign-agreeing) weights"),
        _p("rescale", bool, rescale, doc="rescale kept entries to the original norm"),
    ]
    if sparsify == "magnitude_outliers":
        params.append(GAMMA)
    if sparsify == "della_magprune":
        params.append(EPSILON)
    return MergeMethod(
        name, task_arithmetic.generalized_task_arithmetic, paper, url, tuple(params),
        fixed={"sparsify": sparsify, "consensus": consensus},
        randomized=sparsify in ("random", "della_magprune"),
    )


_TA = "Ilharco et al. 2023, Editing Models with Task Arithmetic"
_TIES = "Yadav et al. 2023, TIES-Merging: Resolving Interference When Merging Models"
_DARE = "Yu et al. 2024, Language Models are Super Mario (DARE)"
_CRUMBS = "Davari & Belilovsky 2024, Model Breadcrumbs"
_DELLA = "Deep et al. 2024, DELLA-Merging: Reducing Interference with Magnitude-Based Sampling"
_TALL = "Wang, Dimitriadis et al. 2024, Localizing Task Information for Model Merging"

_METHODS = [
    MergeMethod(
        "linear", averaging.linear,
        "Wortsman et al. 2022, Model soups", "https://arxiv.org/abs/2203.05482",
        (WEIGHT, _p("normalize", bool, True, doc="divide by the sum of weights")),
        base="ignored",
    ),
    _gta("task_arithmetic", _TA, "https://arxiv.org/abs/2212.04089",
         sparsify=None, consensus=None, normalize=False, rescale=False),
    _gta("ties", _TIES, "https://arxiv.org/abs/2306.01708",
         sparsify="magnitude", consensus="sum", normalize=True, rescale=False),
    _gta("dare_ties", _DARE, "https://arxiv.org/abs/2311.03099",
         sparsify="random", consensus="sum", normalize=False, rescale=True),
    _gta("dare_linear", _DARE, "https://arxiv.org/abs/2311.03099",
         sparsify="random", consensus=None, normalize=False, rescale=True),
    _gta("breadcrumbs", _CRUMBS, "https://arxiv.org/abs/2312.06795",
         sparsify="magnitude_outliers", consensus=None, normalize=False, rescale=False),
    _gta("breadcrumbs_ties", _CRUMBS, "https://arxiv.org/abs/2312.06795",
         sparsify="magnitude_outliers", consensus="sum", normalize=False, rescale=False),
    _gta("della", _DELLA, "https://arxiv.org/abs/2406.11617",
         sparsify="della_magprune", consensus="sum", normalize=True, rescale=True),
    _gta("della_linear", _DELLA, "https://arxiv.org/abs/2406.11617",
         sparsify="della_magprune", consensus=None, normalize=False, rescale=True),
    MergeMethod(
        "slerp", slerp.slerp, "Shoemake 1985, Animating rotation with quaternion curves",
        "https://doi.org/10.1145/325165.325242",
        (_p("t", float, doc="interpolation: 0 = base_model, 1 = the other model"),),
        min_models=1, max_models=1,
    ),
    MergeMethod(
        "model_stock", model_stock.model_stock,
        "Jang et al. 2024, Model Stock: All we need is just a few fine-tuned models",
        "https://arxiv.org/abs/2403.19522",
        (_p("filter_wise", bool, False, doc="one interpolation ratio per output row"),),
        min_models=2,
    ),
    MergeMethod(
        "fisher", averaging.fisher_average,
        "Matena & Raffel 2022, Merging Models with Fisher-Weighted Averaging",
        "https://arxiv.org/abs/2111.09832",
        (WEIGHT1,
         _p("fisher", str, per_model=True, tensor_file=True, doc="diagonal Fisher safetensors"),
         _p("fisher_floor", float, 1e-6, doc="added to every Fisher entry")),
        base="ignored", in_mergekit=False,
    ),
    MergeMethod(
        "ubgm", ubgm.ubgm,
        "Daheim et al. 2024, Model Merging by Uncertainty-Based Gradient Matching",
        "https://arxiv.org/abs/2310.12808",
        (WEIGHT1,
         _p("lambda", float, 1.0, arg="lambda_",
            doc="a: scale of every task vector, also weighting the Fishers in the denominator"),
         _p("fisher", str, per_model=True, tensor_file=True, base_arg="base_fisher",
            doc="diagonal Fisher H_t (under base_model's entry: H_0)"),
         _p("size", float, 1.0, per_model=True, base_arg="base_size",
            doc="dataset size s_t scaling H_t (under base_model's entry: s_0)"),
         _p("delta0", float, 1e-8, doc="prior precision added to every Fisher sum")),
        in_mergekit=False,
    ),
    MergeMethod(
        "tall_mask", tall_masks.tall_mask, _TALL, "https://arxiv.org/abs/2405.07813",
        (_p("task", int, doc="which fine-tuned model to reconstruct (index or model name)"),
         LAM, WEIGHT1, DENSITY,
         _p("merge", str, "sum", choices=("sum", "ties"), doc="how tau_MTL is built"),
         _p("normalize", bool, True, doc="TIES disjoint mean when merge=ties")),
        in_mergekit=False,
    ),
    MergeMethod(
        "consensus_ta", tall_masks.consensus, _TALL, "https://arxiv.org/abs/2405.07813",
        (_p("k", int, 2, doc="keep weights active in at least k task masks"),
         LAM, WEIGHT1, LAMBDA),
        fixed={"merge": "sum", "density": None, "normalize": False},
        min_models=2, in_mergekit=False,
    ),
    MergeMethod(
        "consensus_ties", tall_masks.consensus, _TALL, "https://arxiv.org/abs/2405.07813",
        (_p("k", int, 2, doc="keep weights active in at least k task masks"),
         LAM, WEIGHT1, DENSITY, LAMBDA,
         _p("normalize", bool, True, doc="TIES disjoint mean")),
        fixed={"merge": "ties"}, min_models=2, in_mergekit=False,
    ),
]

_METHODS += [
    MergeMethod(
        "passthrough", averaging.passthrough,
        "mergekit (Goddard et al. 2024), passthrough: copy one model's tensors",
        "https://arxiv.org/abs/2403.13257",
        (_p("scale", float, 1.0, doc="multiply the tensor (e.g. 0 to zero a projection)"),),
        base="ignored", max_models=1,
    ),
    MergeMethod(
        "nuslerp", spherical.nuslerp,
        "Goddard 2025, NuSLERP (mergekit): row/column-wise SLERP, optionally of task vectors",
        "https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md",
        (_p("weight", float, per_model=True, doc="relative weight; t = w_1 / (w_0 + w_1)"),
         _p("nuslerp_row_wise", bool, False, doc="SLERP rows instead of columns"),
         _p("nuslerp_flatten", bool, True, doc="SLERP the whole tensor as one vector")),
        base="optional", min_models=2, max_models=2,
    ),
    MergeMethod(
        "multislerp", spherical.multislerp,
        "Goddard 2025, Multi-SLERP: barycentric interpolation on a hypersphere",
        "https://goddard.blog/posts/multislerp-wow-what-a-cool-idea",
        (_p("weight", float, per_model=True, doc="barycentric weight of the model"),
         _p("normalize_weights", bool, True, doc="divide the weights by their sum"),
         _p("eps", float, 1e-8, doc="numerical floor")),
        base="optional", min_models=1,
    ),
    MergeMethod(
        "karcher", spherical.karcher,
        "Karcher 1977, Riemannian center of mass (mergekit's karcher)",
        "https://en.wikipedia.org/wiki/Karcher_mean",
        (_p("max_iter", int, 10, doc="fixed-point iterations"),
         _p("tol", float, 1e-5, doc="stop when the step is below this")),
        base="ignored", min_models=1,
    ),
    MergeMethod(
        "sce", selective.sce,
        "Wan et al. 2024, FuseChat: Knowledge Fusion of Chat Models (SCE)",
        "https://arxiv.org/abs/2408.07990",
        (_p("select_topk", float, 1.0, doc="fraction of highest-variance entries kept"),
         INT8),
        min_models=1,
    ),
    MergeMethod(
        "arcee_fusion", selective.arcee_fusion,
        "Arcee AI 2025, Arcee Fusion: importance (|delta| x KL) above median + 1.5 IQR",
        "https://www.arcee.ai/blog/meet-mergekit-v0-1-arcee-fusion-expanded-model-support-multi-gpu-acceleration",
        (), min_models=1, max_models=1, randomized=True,
    ),
    MergeMethod(
        "nearswap", selective.nearswap,
        "alchemonaut 2024, NearSwap: interpolate by t / |theta_0 - theta_1|, capped at 1",
        "https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001",
        (_p("t", float, doc="sameness threshold (> 0)"),),
        min_models=1, max_models=1,
    ),
]

REGISTRY: dict[str, MergeMethod] = {m.name: m for m in _METHODS}

# mergekit methods lineage refuses by name, with the reason.
MERGEKIT_UNSUPPORTED = {
    "lrp": "needs activations (layer-wise relevance from calibration data), not weights only",
    "ram": "needs reinforcement-learning rollouts' masks, not weights only",
    "core_space": "projects task vectors into a learned low-rank core space; not implemented",
    "cabs": "conflict-aware balanced sparsification is not implemented",
    "zipit": "needs activations to match features across models",
    "task_arithmetic_anysize": "merges tensors of different shapes; lineage merges one "
                               "architecture",
}


def get_method(name: str) -> MergeMethod:
    """The registered method called ``name``; UnknownNameError lists the valid ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        pass
    if name in MERGEKIT_UNSUPPORTED:
        raise SpecError(f"merge method {name!r}",
                        f"is a mergekit method lineage does not support: "
                        f"{MERGEKIT_UNSUPPORTED[name]}",
                        f"Use one of {', '.join(REGISTRY)}")
    raise UnknownNameError.of("merge method", name, list(REGISTRY)) from None


def check_value(method: MergeMethod, p: Param, value: Any, where: str) -> Any:
    """Validate one parameter value (a scalar, a gradient list or a list of filters, see
    ``settings``); returns it converted (scalars) or parsed (Gradient / Filtered)."""
    if isinstance(value, list | dict):
        if p.tensor_file or p.name == "task":
            raise SpecError(
                f"{where}: {method.name} parameter {p.name!r} = {value!r:.80}",
                "names one file / one model, so it cannot vary by layer", "Give one value")
        return parse_setting(value, lambda v: check_scalar(method, p, v, where),
                             f"{where}: {method.name} parameter {p.name!r}")
    return check_scalar(method, p, value, where)


def check_scalar(method: MergeMethod, p: Param, value: Any, where: str) -> Any:
    """Validate one scalar parameter value's type (and choices); returns it converted."""
    if p.type is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if p.type is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if p.type is int and p.name == "task" and isinstance(value, str):
        return value  # a model name, turned into an index once the models are known
    if p.type is bool and isinstance(value, bool):
        return value
    if p.type is str and isinstance(value, str):
        if p.choices and value not in p.choices:
            raise UnknownNameError.of(f"{method.name} {p.name}", value, p.choices)
        return value
    raise SpecError(
        f"{where}: {method.name} parameter {p.name!r} = {value!r}",
        f"expected a {p.type.__name__}",
        f"{p.name}: {p.doc}",
    )


def merge_tensor(
    method: MergeMethod,
    name: str,
    base: torch.Tensor | None,
    tensors: list[torch.Tensor],
    kwargs: Mapping[str, Any],
    *,
    seed: int = 0,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Merge one tensor: upcast inputs to float32, call ``method.fn``, cast the result.

    ``kwargs`` are the function's keyword arguments (per-model ones as lists, Fisher
    tensors already loaded); ``seed`` is the recipe's global seed, turned into a stable
    per-tensor seed here so each tensor draws its own masks.
    """
    f32 = torch.float32
    b = base.to(f32) if base is not None else None
    xs = [x.to(f32) for x in tensors]
    extra = {"seed": tensor_seed(seed, name)} if method.randomized else {}
    out = method.fn(b, xs, **method.fixed, **kwargs, **extra)
    dtype = out_dtype or (base.dtype if base is not None else tensors[0].dtype)
    return out.to(dtype)


def describe(method: MergeMethod) -> str:
    """A few lines for ``lineage merge --list``: name, paper, parameters with defaults."""
    lines = [f"{method.name}: {method.paper} ({method.url})"]
    for p in method.params:
        default = "required" if p.default is REQUIRED else f"default {p.default!r}"
        scope = "per model" if p.per_model else "global"
        choices = f" one of {', '.join(p.choices)};" if p.choices else ""
        lines.append(f"  {p.name} ({p.type.__name__}, {scope}, {default}):{choices} {p.doc}")
    return "\n".join(lines)

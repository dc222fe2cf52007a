"""The standard vocabularies a task's contract declares: what a candidate may import and name (an allow-list).

Only pure functions are listed: tensors in, tensors out. Nothing that reads or writes files (``torch.load``,
``numpy.loadtxt``), compiles or loads code (``torch.jit``, ``torch.ops``), changes global state (``torch.manual_seed``,
``torch.set_default_dtype``), reaches autograd's graph (``grad_fn``, ``register_hook``) or hands back a module (no
listed attribute is a module, so no chain through re-exported modules exists). A task that needs more extends a
vocabulary (``Vocabulary.extended``); tests/test_hostile_allow_list.py checks every name exists and is no module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Everything a candidate's code may name: an allow-list the static check enforces (docs/security.md).

    A name or attribute not listed here is refused, so what a module re-exports (``torch.<module>...``) is out of
    reach unless listed. The standard vocabularies are in ``llm2.task_api.vocabulary``.
    """

    # importable module -> the attributes a candidate may reach on it; "linalg.norm" reaches a submodule's function
    modules: Mapping[str, frozenset[str]]
    # names bound before the code runs -> their module ("F": "torch.nn.functional"); each module is in ``modules``
    preloaded: Mapping[str, str]
    builtins: frozenset[str]  # builtins a candidate may name (pure ones: abs, len, range, ...)
    methods: frozenset[str]  # attributes of values (tensors, lists, strings, numbers) it may read or call

    def __post_init__(self) -> None:
        missing = sorted(set(self.preloaded.values()) - set(self.modules))
        if missing:
            raise ValueError(f"preloaded modules not in the vocabulary's modules: {', '.join(missing)}")

    def extended(self, modules: Mapping[str, frozenset[str]] | None = None, preloaded: Mapping[str, str] | None = None,
                 builtins: frozenset[str] = frozenset(), methods: frozenset[str] = frozenset()) -> "Vocabulary":
        """This vocabulary and more (a module's attributes are joined with those already listed)."""
        joined = dict(self.modules)
        for module, attributes in (modules or {}).items():
            joined[module] = joined.get(module, frozenset()) | frozenset(attributes)
        return Vocabulary(joined, {**self.preloaded, **(preloaded or {})}, self.builtins | builtins,
                          self.methods | methods)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


TORCH_FUNCTIONS = _names("""
    abs absolute acos arccos acosh arccosh add addcdiv addcmul all allclose amax amin aminmax any arange argmax argmin
    argsort asin arcsin asinh arcsinh atan arctan atan2 arctan2 atanh arctanh bernoulli bmm broadcast_to bucketize
    cat concat concatenate cdist ceil chunk clamp clamp_max clamp_min clip clone complex cos cosh cosine_similarity
    count_nonzero cummax cummin cumprod cumsum deg2rad diag diag_embed diagonal diff digamma dist div divide dot
    einsum eq erf erfc erfinv exp exp2 expm1 eye flatten flip fliplr floor floor_divide fmax fmin fmod frac full
    full_like gather ge greater greater_equal gt heaviside hstack hypot index_select inner isclose isfinite isin
    isinf isnan isneginf isposinf kron kthvalue le less less_equal lerp lgamma linspace log log10 log1p log2
    logaddexp logaddexp2 logcumsumexp logical_and logical_not logical_or logical_xor logit logspace logsumexp lt
    masked_fill masked_select matmul max maximum mean median min minimum mm msort mul multinomial multiply mv
    nan_to_num nanmean nanmedian nanquantile nansum narrow ne neg negative nonzero norm normal not_equal numel
    ones ones_like outer permute polygamma pow prod quantile rad2deg rand rand_like randint randint_like randn
    randn_like randperm ravel reciprocal relu remainder repeat_interleave reshape roll rot90 round rsqrt scatter
    scatter_add searchsorted select sgn sigmoid sign signbit sin sinc sinh slice_scatter softmax log_softmax sort
    split sqrt square squeeze stack std std_mean sub subtract sum swapaxes t take take_along_dim tan tanh tensor
    as_tensor tensordot tile topk trace transpose trapezoid tril triu true_divide trunc unbind unflatten unique
    unique_consecutive unsqueeze var var_mean vstack where xlogy zeros zeros_like
    no_grad finfo iinfo Tensor FloatTensor is_tensor is_floating_point
    float float16 float32 float64 bfloat16 double half int int8 int16 int32 int64 long uint8 bool
    pi e inf nan
    linalg.norm linalg.vector_norm linalg.matrix_norm linalg.svd linalg.svdvals linalg.qr linalg.eigh
    linalg.eigvalsh linalg.pinv linalg.lstsq linalg.solve linalg.det linalg.slogdet linalg.matrix_rank
    special.expit special.logit special.log_ndtr special.ndtr special.entr special.xlogy special.logsumexp
    special.erfcx special.log1p special.softmax special.log_softmax
""")

FUNCTIONAL = _names("""
    logsigmoid sigmoid softplus relu relu6 gelu silu elu selu celu leaky_relu hardtanh hardsigmoid hardswish mish
    tanh softsign tanhshrink softshrink hardshrink threshold softmax softmin log_softmax gumbel_softmax
    cross_entropy nll_loss mse_loss l1_loss smooth_l1_loss huber_loss binary_cross_entropy
    binary_cross_entropy_with_logits kl_div margin_ranking_loss soft_margin_loss hinge_embedding_loss
    poisson_nll_loss gaussian_nll_loss multi_margin_loss multilabel_soft_margin_loss cosine_embedding_loss
    one_hot normalize cosine_similarity pairwise_distance pad dropout linear
""")

MATH_FUNCTIONS = _names("""
    acos acosh asin asinh atan atan2 atanh ceil comb copysign cos cosh degrees dist e erf erfc exp exp2 expm1 fabs
    factorial floor fmod frexp fsum gamma gcd hypot inf isclose isfinite isinf isnan isqrt lcm ldexp lgamma log
    log10 log1p log2 modf nan nextafter perm pi pow prod radians remainder sin sinh sqrt tan tanh tau trunc ulp
""")

BUILTINS = _names("""
    abs all any bool bytearray dict divmod enumerate filter float frozenset int isinstance len list map max min pow
    print range reversed round set sorted str sum tuple zip
    ArithmeticError Exception FloatingPointError IndexError KeyError OverflowError RuntimeError TypeError ValueError
    ZeroDivisionError
""")

# Attributes of values: tensors (pure, out-of-place), their dtype / finfo, and plain lists, dicts and strings.
TENSOR_METHODS = _names("""
    abs absolute acos arccos acosh add addcdiv addcmul all amax amin aminmax any argmax argmin argsort asin arcsin
    atan arctan atan2 arctan2 bernoulli bmm bool broadcast_to ceil chunk clamp clamp_max clamp_min clip clone
    contiguous cos cosh count_nonzero cpu cummax cummin cumprod cumsum deg2rad detach diag diag_embed diagonal diff
    digamma dim div divide dot double eq erf erfc erfinv exp exp2 expand expand_as expm1 flatten flip float floor
    floor_divide fmod frac gather ge gt half index_select int isclose isfinite isinf isnan item kthvalue le lerp
    lgamma log log10 log1p log2 logaddexp logcumsumexp logical_and logical_not logical_or logical_xor logit
    logsumexp long lt masked_fill masked_select matmul max maximum mean median min minimum mm mul multiply
    nan_to_num nanmean nanmedian nanquantile nansum narrow ne neg negative new_full new_ones new_tensor new_zeros
    nonzero norm numel outer permute pow prod quantile reciprocal relu remainder repeat repeat_interleave reshape
    reshape_as roll round rsqrt scatter scatter_add select sgn sigmoid sign signbit sin sinc sinh size softmax
    log_softmax sort split sqrt square squeeze std sub subtract sum swapaxes t tan tanh tile to tolist topk trace
    transpose tril triu true_divide trunc type_as unbind unflatten unique unsqueeze var view view_as where xlogy
    requires_grad requires_grad_ is_floating_point
    shape dtype device ndim T mT values indices
    eps tiny resolution bits
    append extend insert pop index count copy items keys get
    startswith endswith split rsplit strip lstrip rstrip lower upper replace join find isdigit
""")

TENSOR_VOCABULARY = Vocabulary(
    modules={"torch": TORCH_FUNCTIONS, "torch.nn.functional": FUNCTIONAL, "math": MATH_FUNCTIONS},
    preloaded={"torch": "torch", "F": "torch.nn.functional", "math": "math"},
    builtins=BUILTINS, methods=TENSOR_METHODS,
)

# In-place tensor methods, for tasks whose candidate gets tensors of its own (the merging task hands copies).
IN_PLACE_METHODS = _names("abs_ add_ sub_ mul_ div_ clamp_ zero_ fill_ copy_ masked_fill_ neg_ exp_ sqrt_ pow_")

NUMPY_FUNCTIONS = _names("""
    abs absolute all allclose amax amin any arange argmax argmin argsort array asarray clip concatenate cos cosh
    cumprod cumsum diff dot exp expm1 floor ceil full full_like isclose isfinite isinf isnan linspace log log10 log1p
    log2 logaddexp matmul max maximum mean median min minimum nan_to_num nanmean nansum ones ones_like outer
    percentile prod quantile reshape round sign sin sinh sort sqrt square stack std sum tan tanh tile transpose var
    where zeros zeros_like float32 float64 int64 pi e inf nan minimum maximum
""")

# For a task whose candidates work on numpy arrays: they import numpy themselves (``import numpy as np``), math is
# preloaded; no file readers, no np.lib, no np.random. Join it with TENSOR_VOCABULARY (``extended``) for both.
NUMPY_VOCABULARY = Vocabulary(
    modules={"numpy": NUMPY_FUNCTIONS, "math": MATH_FUNCTIONS}, preloaded={"math": "math"},
    builtins=BUILTINS, methods=TENSOR_METHODS | _names("astype"),
)

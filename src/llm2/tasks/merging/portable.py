"""Plain helpers for using a merge function outside llm2; an exported merging module carries this file's code.

Only torch is needed; mergekit only for ``mergekit_method``. (No ``from __future__ import annotations`` here: mergekit
reads the kernel's annotations as objects.)
"""

import torch


def merge_state_dicts(fn, base, experts, seed=0):
    """Merge state dicts parameter by parameter: ``{name: fn(name, base[name], [e[name] for e in experts])}``.

    ``base`` and each of ``experts`` map parameter names to tensors of the same shapes (e.g. ``model.state_dict()``).
    Tensors are handed to ``fn`` as float32 and the result is cast back to the base's dtype; parameters that are not
    floating point (integer buffers) are copied from the base. torch's random generator is seeded with ``seed``
    first, so merges that draw random masks (DARE) are reproducible.
    """
    for index, expert in enumerate(experts):
        missing = [name for name in base if name not in expert]
        if missing:
            raise ValueError(f"expert {index} lacks {len(missing)} of the base's parameters, e.g. {missing[0]!r}")
    torch.manual_seed(seed)
    merged = {}
    with torch.no_grad():
        for name, tensor in base.items():
            if not tensor.is_floating_point():
                merged[name] = tensor.clone()
                continue
            result = fn(name, tensor.float(), [expert[name].float() for expert in experts])
            if not isinstance(result, torch.Tensor) or tuple(result.shape) != tuple(tensor.shape):
                raise ValueError(f"the merge function returned a wrong result for {name!r}: expected a tensor of "
                                 f"shape {tuple(tensor.shape)}")
            merged[name] = result.to(tensor.dtype)
    return merged


def mergekit_method(fn, name, register=True):
    """``fn`` as a mergekit merge method called ``name``, registered so that a merge configuration run in this
    process (mergekit.merge.run_merge) can say ``merge_method: <name>``; it needs a ``base_model``.

    Written for mergekit's merge_method API of version 0.1.5 (a kernel over a TensorGroup); older versions (a
    decorator registering ``tensors`` / ``base_tensor`` functions) are tried second.
    """
    try:
        from mergekit.merge_methods.base import BasePolicy, InputContract, TensorGroup
    except ImportError:
        return _legacy_mergekit_method(fn, name)
    from mergekit.merge_methods import registry
    from mergekit.merge_methods.easy_define import merge_method

    def kernel(group: TensorGroup) -> torch.Tensor:
        base = group.base.tensor
        experts = [entry.tensor.float() for entry in group.non_base]
        return fn(group.metadata.name or "", base.float(), experts).to(base.dtype)

    method = merge_method(kernel, name=name, pretty_name=name,
                          contract=InputContract(base=BasePolicy.REQUIRED, min_inputs=2))
    if register:
        registry.register(method)
    return method


def _legacy_mergekit_method(fn, name):
    from mergekit.architecture import WeightInfo
    from mergekit.merge_methods.easy_define import merge_method

    def kernel(tensors: list[torch.Tensor], base_tensor: torch.Tensor, output_weight: WeightInfo) -> torch.Tensor:
        experts = [t.float() for t in tensors]
        return fn(output_weight.name, base_tensor.float(), experts).to(base_tensor.dtype)

    return merge_method(name=name, pretty_name=name)(kernel)

"""Converter front end: BatchNorm folding and percentile activation normalisation.

Both take a torch ``nn.Sequential`` and return a new one (the input is never modified).

* :func:`fold_batchnorm` folds every BatchNorm into the Conv2d/Linear right before it and drops
  Dropout/Identity, so the result holds only modules the Quartz runner accepts.
* :func:`normalize` rescales layer by layer so that the ``percentile``-th percentile of every
  Conv2d/Linear pre-activation on ``sample_data`` is 1 (quartz.md, "Weight and activation
  normalisation", after Rueckauer et al. 2017): Quartz encodes values in (-2, 2] and a neuron whose
  value exceeds 1 fires early.  ReLU and pooling are positively homogeneous, so the normalised
  network's outputs are the original ones divided by ``Π λ``: the predicted class is unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["FoldReport", "fold_batchnorm", "normalize", "DROPPED_MODULES", "SCALED_MODULES"]

#: Inference no-ops removed by :func:`fold_batchnorm`.
DROPPED_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)
#: Layers whose weights and biases :func:`normalize` rescales.
SCALED_MODULES = (nn.Conv2d, nn.Linear)
#: Modules :func:`normalize` lets through unchanged (all positively homogeneous).
_HOMOGENEOUS = (nn.ReLU, nn.Flatten, nn.AvgPool2d, nn.MaxPool2d)
_BATCHNORMS = {nn.Conv2d: nn.BatchNorm2d, nn.Linear: nn.BatchNorm1d}


@dataclass(frozen=True)
class FoldReport:
    """What :func:`fold_batchnorm` did; positions refer to the flattened input Sequential."""

    folded: tuple[tuple[int, int], ...]   # (layer position, batchnorm position)
    dropped: tuple[tuple[int, str], ...]  # (position, module type name)

    def __str__(self) -> str:
        folds = ", ".join(f"BN[{b}]→[{l}]" for l, b in self.folded) or "none"
        drops = ", ".join(f"{name}[{p}]" for p, name in self.dropped) or "none"
        return f"folded: {folds}; dropped: {drops}"


def _flatten(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        return [leaf for child in model for leaf in _flatten(child)]
    return [model]


def _fold_into(layer: nn.Module, bn: nn.Module, where: str) -> nn.Module:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{where}: BatchNorm without running statistics cannot be folded")
    layer = copy.deepcopy(layer)
    with torch.no_grad():
        scale = torch.ones_like(bn.running_var) if bn.weight is None else bn.weight.clone()
        shift = torch.zeros_like(bn.running_mean) if bn.bias is None else bn.bias.clone()
        scale = scale / torch.sqrt(bn.running_var + bn.eps)
        bias = torch.zeros_like(bn.running_mean) if layer.bias is None else layer.bias
        new_bias = (bias - bn.running_mean) * scale + shift
        layer.weight.mul_(scale.reshape(-1, *([1] * (layer.weight.dim() - 1))))
        if layer.bias is None:
            layer.bias = nn.Parameter(new_bias)
        else:
            layer.bias.copy_(new_bias)
    return layer


def fold_batchnorm(model: nn.Module) -> tuple[nn.Sequential, FoldReport]:
    """Return (flat Sequential with BatchNorm folded and Dropout/Identity removed, report).

    Nested Sequentials are flattened.  Each BatchNorm must directly follow (Dropout/Identity
    aside) the Conv2d (BatchNorm2d) or Linear (BatchNorm1d) it is folded into.
    """
    kept: list[tuple[int, nn.Module]] = []
    folded, dropped = [], []
    for pos, module in enumerate(_flatten(model)):
        where = f"model[{pos}] ({type(module).__name__})"
        if isinstance(module, DROPPED_MODULES):
            dropped.append((pos, type(module).__name__))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            prev_pos, prev = kept[-1] if kept else (None, None)
            if prev is None or type(prev) not in _BATCHNORMS or not isinstance(module, _BATCHNORMS[type(prev)]):
                raise ValueError(f"{where}: BatchNorm must follow a Conv2d (BatchNorm2d) or Linear "
                                 f"(BatchNorm1d), found {type(prev).__name__ if prev is not None else 'nothing'}")
            if module.num_features != prev.weight.shape[0]:
                raise ValueError(f"{where}: {module.num_features} features but model[{prev_pos}] "
                                 f"has {prev.weight.shape[0]} outputs")
            kept[-1] = (prev_pos, _fold_into(prev, module, where))
            folded.append((prev_pos, pos))
        else:
            kept.append((pos, copy.deepcopy(module)))
    result = nn.Sequential(*(m for _, m in kept)).eval()
    return result, FoldReport(folded=tuple(folded), dropped=tuple(dropped))


def normalize(model: nn.Sequential, sample_data: torch.Tensor, percentile: float = 99.0
              ) -> tuple[nn.Sequential, list[float]]:
    """Return (normalised copy of ``model``, λ per Conv2d/Linear layer in order).

    For each scaled layer ``l`` in order, with earlier layers already normalised: divide its bias
    by ``Π_{k<l} λ_k``, measure ``λ_l`` = the ``percentile``-th percentile of its pre-activation
    output over all samples and neurons, then divide weight and bias by ``λ_l`` (so in total
    ``W_l /= λ_l``, ``b_l /= Π_{k<=l} λ_k``).  ``model`` must be BatchNorm-free (see
    :func:`fold_batchnorm`).
    """
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], not {percentile!r}")
    modules = list(copy.deepcopy(model))
    for pos, module in enumerate(modules):
        if not isinstance(module, SCALED_MODULES + _HOMOGENEOUS + DROPPED_MODULES):
            raise ValueError(f"model[{pos}] ({type(module).__name__}): normalize supports only "
                             "Conv2d, Linear, ReLU, Flatten, pooling, Dropout and Identity "
                             "(fold BatchNorm first)")
    result = nn.Sequential(*modules).eval()
    lambdas: list[float] = []
    scale_so_far = 1.0
    with torch.no_grad():
        activation = sample_data.to(torch.float32)
        for pos, module in enumerate(modules):
            if isinstance(module, SCALED_MODULES) and module.bias is not None:
                module.bias.div_(scale_so_far)
            activation = module(activation)
            if not isinstance(module, SCALED_MODULES):
                continue
            lam = float(np.percentile(activation.to(torch.float64).numpy(), percentile))
            if not np.isfinite(lam) or lam <= 0.0:
                raise ValueError(f"model[{pos}] ({type(module).__name__}): the {percentile}th "
                                 f"percentile of its output is {lam!r}; it must be > 0")
            module.weight.div_(lam)
            if module.bias is not None:
                module.bias.div_(lam)
            activation = activation / lam
            scale_so_far *= lam
            lambdas.append(lam)
    return result, lambdas

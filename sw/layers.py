"""Turn a BatchNorm-free torch ``nn.Sequential`` into flat stages for the Quartz mapping.

Each stage works on flattened neuron vectors in torch's (C, H, W) order:

- :class:`WeightStage`: ``y = W x + b`` (Conv2d or Linear, as a dense matrix), rectified when a
  ReLU follows; a Conv2d stage also keeps its kernel (:class:`ConvParams`), from which the
  dense matrix is written out exactly (the same numbers), so the compiler can store the
  kernel once (spec §3.5) or the matrix;
- :class:`MaxPoolStage`: each output is the max of a group of inputs (first spike wins).

``Flatten`` is the identity on flat vectors, ``Dropout``/``Identity`` are dropped, and an
``AvgPool2d`` is linear, so it is folded into the next weight stage (``W' = W · P``; a Conv2d
stage with an AvgPool2d folded in has no kernel: the fold breaks the sharing).  Any
other module raises :class:`UnsupportedLayerError` naming its path and type.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["WeightStage", "MaxPoolStage", "ConvParams", "UnsupportedLayerError", "stages_of",
           "SUPPORTED_LAYERS"]

#: Layer types the converter accepts, with what becomes of them (docs/quartz.md table).
SUPPORTED_LAYERS = {
    "Conv2d": "IF layer (stride, padding; groups=1, dilation=1)",
    "Linear": "IF layer",
    "ReLU": "makes the preceding Conv2d/Linear a rectified IF layer",
    "Flatten": "identity on flattened neurons (start_dim=1)",
    "MaxPool2d": "first-spike-wins relay compartments (+1 step)",
    "AvgPool2d": "folded into the next Conv2d/Linear",
    "BatchNorm1d/2d": "folded into the preceding Conv2d/Linear",
    "Dropout/Identity": "dropped",
}


class UnsupportedLayerError(TypeError):
    """A module the Quartz mapping cannot express; the message names its path and type."""


@dataclass(frozen=True)
class ConvParams:
    """A Conv2d's kernel and geometry: output ``(co, y, x)`` is ``Σ kernel[co, ci, ky, kx] ·
    in[ci, y·stride + ky − padding, x·stride + kx − padding]`` (zero outside the map).

    ``folded``: why the kernel cannot be shared although the module is a Conv2d (an
    AvgPool2d folded in), else ``""``.
    """

    kernel: np.ndarray      # (C_out, C_in, kH, kW) float64
    stride: tuple           # (sy, sx)
    padding: tuple          # (py, px)
    in_shape: tuple         # (C_in, H, W)
    out_shape: tuple        # (C_out, H', W')
    folded: str = ""


@dataclass(frozen=True)
class WeightStage:
    name: str
    weight: np.ndarray      # (n_out, n_in) float64
    bias: np.ndarray        # (n_out,) float64
    rectify: bool
    out_shape: tuple
    #: The Conv2d's kernel (None for Linear): ``weight`` is its dense matrix, entry for entry.
    conv: ConvParams | None = None


@dataclass(frozen=True)
class MaxPoolStage:
    name: str
    groups: np.ndarray      # (n_out, k) input indices of each pooling window
    out_shape: tuple
    in_shape: tuple = ()    # (C, H, W) of the input map
    kernel: tuple = ()      # (kH, kW)
    stride: tuple = ()      # (sy, sx)


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv_dense(kernel: np.ndarray, in_shape: tuple, out_shape: tuple, stride: tuple,
               padding: tuple) -> np.ndarray:
    """The dense (n_out, n_in) matrix of a convolution, each entry a kernel entry (exact)."""
    C_out, C_in, kh, kw = kernel.shape
    _, H, W = in_shape
    _, Ho, Wo = out_shape
    dense = np.zeros((C_out * Ho * Wo, C_in * H * W), dtype=np.float64)
    co, ci, ky, kx, y, x = np.indices((C_out, C_in, kh, kw, Ho, Wo)).reshape(6, -1)
    iy = y * stride[0] + ky - padding[0]
    ix = x * stride[1] + kx - padding[1]
    ok = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
    rows = ((co * Ho + y) * Wo + x)[ok]
    cols = ((ci * H + iy) * W + ix)[ok]
    dense[rows, cols] = kernel[co[ok], ci[ok], ky[ok], kx[ok]]
    return dense


def _dense_of(module: nn.Module, in_shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Return the dense (n_out, n_in) matrix and bias of a linear module on ``in_shape``."""
    n_in = int(np.prod(in_shape))
    with torch.no_grad():
        eye = torch.eye(n_in, dtype=torch.float64).reshape((n_in,) + in_shape)
        m = module.double()
        zero = m(torch.zeros((1,) + in_shape, dtype=torch.float64)).reshape(-1)
        cols = m(eye).reshape(n_in, -1) - zero
        module.float()
    return cols.T.numpy().copy(), zero.numpy().copy()


def _pool_groups(pool: nn.MaxPool2d, in_shape: tuple, where: str) -> np.ndarray:
    if pool.padding not in (0, (0, 0)) or pool.dilation not in (1, (1, 1)) or pool.ceil_mode:
        raise UnsupportedLayerError(f"{where}: MaxPool2d with padding, dilation or ceil_mode "
                                    "is not supported")
    idx = torch.arange(int(np.prod(in_shape)), dtype=torch.float64).reshape((1,) + in_shape)
    k = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 2
    s = pool.stride if isinstance(pool.stride, tuple) else (pool.stride,) * 2
    cols = torch.nn.functional.unfold(idx, k, stride=s)           # (1, C*k*k, L)
    C = in_shape[0]
    cols = cols.reshape(C, k[0] * k[1], -1).permute(0, 2, 1)      # (C, L, k*k)
    return cols.reshape(-1, k[0] * k[1]).numpy().astype(np.int64)


def stages_of(model: nn.Sequential, input_shape: tuple) -> list:
    """Return the stages of ``model`` for inputs of shape ``input_shape`` (no batch dim)."""
    modules = list(model)
    stages: list = []
    shape = tuple(input_shape)
    pending_avg = None           # (matrix, out_shape) of an AvgPool awaiting the next weight stage
    for pos, module in enumerate(modules):
        where = f"model[{pos}] ({type(module).__name__})"
        with torch.no_grad():
            out_shape = tuple(module(torch.zeros((1,) + shape)).shape[1:])
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if isinstance(module, nn.Conv2d) and (module.groups != 1
                                                  or module.dilation not in (1, (1, 1))):
                raise UnsupportedLayerError(f"{where}: grouped or dilated Conv2d is not supported")
            W, b = _dense_of(module, shape)
            conv = None
            if isinstance(module, nn.Conv2d):
                if module.padding_mode != "zeros":
                    raise UnsupportedLayerError(f"{where}: Conv2d padding_mode "
                                                f"{module.padding_mode!r} is not supported")
                if isinstance(module.padding, str):
                    raise UnsupportedLayerError(f"{where}: Conv2d padding={module.padding!r} "
                                                "is not supported; give it in pixels")
                kernel = module.weight.detach().double().cpu().numpy().copy()
                stride, padding = _pair(module.stride), _pair(module.padding)
                conv = ConvParams(kernel, stride, padding, shape, out_shape)
                W = conv_dense(kernel, shape, out_shape, stride, padding)
                b = (module.bias.detach().double().cpu().numpy().repeat(out_shape[1]
                                                                       * out_shape[2])
                     if module.bias is not None else np.zeros(W.shape[0]))
            if pending_avg is not None:
                W = W @ pending_avg
                pending_avg = None
                if conv is not None:
                    conv = dataclasses.replace(conv, folded="an AvgPool2d is folded into it")
            rectify = pos + 1 < len(modules) and isinstance(modules[pos + 1], nn.ReLU)
            stages.append(WeightStage(where, W, b, rectify, out_shape, conv))
        elif isinstance(module, nn.ReLU):
            if not stages or not isinstance(stages[-1], WeightStage) or \
                    not isinstance(modules[pos - 1], (nn.Conv2d, nn.Linear)):
                raise UnsupportedLayerError(f"{where}: ReLU must directly follow a Conv2d or Linear")
        elif isinstance(module, nn.MaxPool2d):
            if pending_avg is not None:
                raise UnsupportedLayerError(f"{where}: MaxPool2d after AvgPool2d is not supported")
            stages.append(MaxPoolStage(where, _pool_groups(module, shape, where), out_shape,
                                       tuple(shape), _pair(module.kernel_size),
                                       _pair(module.stride if module.stride is not None
                                             else module.kernel_size)))
        elif isinstance(module, nn.AvgPool2d):
            P, _ = _dense_of(module, shape)
            pending_avg = P if pending_avg is None else P @ pending_avg
        elif isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise UnsupportedLayerError(f"{where}: only Flatten(start_dim=1) is supported")
        elif isinstance(module, (nn.Dropout, nn.Identity)):
            pass
        else:
            raise UnsupportedLayerError(
                f"{where}: unsupported module type {type(module).__name__}; supported: "
                + ", ".join(SUPPORTED_LAYERS))
        shape = out_shape
    if pending_avg is not None:
        raise UnsupportedLayerError("AvgPool2d must be followed by a Conv2d or Linear layer")
    if not stages or not isinstance(stages[-1], WeightStage):
        raise UnsupportedLayerError("the model must end with a Conv2d or Linear layer")
    if stages[-1].rectify:
        raise UnsupportedLayerError("the output layer must not be followed by a ReLU "
                                    "(its spike times are the class scores)")
    return stages

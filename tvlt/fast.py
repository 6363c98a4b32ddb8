"""A faster CPU inference mode: every `nn.Linear` of a model in dynamic int8.

Linear layers hold ~70 % of TVLT's FLOPs at tvlt-base size; on an AVX2 CPU without AVX-512 or bf16 the
int8 GEMMs of PyTorch's x86 quantized engine (fbgemm + oneDNN) beat fp32 by about 1.3x end to end, at the
cost of a small output change that `benchmarks/bench_model.py` measures. Weights are quantized once, per
tensor; activations are quantized per call from their observed range (hence "dynamic"), so no calibration
data is needed. torch.ao's eager quantization is deprecated upstream in favour of torchao but present and
supported in the pinned torch 2.13.
"""

from __future__ import annotations

import copy
import warnings
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def quantize_for_cpu(model: M) -> M:
    """An inference-only copy of `model` with dynamic int8 Linear layers; `model` itself is left untouched.

    Works for every tvlt model class (and anything else made of nn.Linear); call signatures, outputs and
    attention capture are unchanged. Raises ValueError for a model that is not on the CPU.
    """
    devices = {p.device.type for p in model.parameters()}
    if devices - {"cpu"}:
        raise ValueError(f"quantize_for_cpu needs a model on the CPU, got parameters on {sorted(devices)}")
    if "x86" not in torch.backends.quantized.supported_engines:
        raise ValueError(
            f"this PyTorch build has no x86 quantized engine (has {torch.backends.quantized.supported_engines})"
        )
    copied = copy.deepcopy(model).eval()
    with warnings.catch_warnings():  # torch.ao's removal notices, nothing else
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(copied, {nn.Linear}, dtype=torch.qint8)

"""What the CPU can do fast, for choosing precision: bfloat16 pays only where the CPU multiplies it natively.

Without AVX512-BF16 or AMX (an AVX2-only EPYC, say), torch emulates bf16 matrix products and they
run about half as fast as float32 (bench/README.md), so "auto" picks float32 there.
"""

from __future__ import annotations

from pathlib import Path


def cpu_has_fast_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX).

    >>> cpu_has_fast_bf16(Path("/no/such/file"))
    False
    """
    try:
        flags = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, gpu: bool = False) -> str:
    """Resolve "auto": "bfloat16" on a GPU or a CPU with native bf16, else "float32"; other values pass through.

    >>> resolve_dtype("float32"), resolve_dtype("auto", gpu=True)
    ('float32', 'bfloat16')
    """
    if dtype != "auto":
        return dtype
    return "bfloat16" if gpu or cpu_has_fast_bf16() else "float32"

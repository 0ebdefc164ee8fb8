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


# The flags that decide how fast the models run here, in the order a benchmark prints them.
SPEED_FLAGS = ("amx_bf16", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2", "fma")


def cpu_summary(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, object]:
    """The CPU's model name and which speed-relevant flags it has, for every benchmark to print.

    >>> cpu_summary(Path("/no/such/file"))["model"]
    'unknown'
    """
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():  # "model name\t: AMD EPYC"; the first CPU's lines are enough
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    model = fields.get("model name") or "unknown"
    return {"model": model, **{flag: flag in flags for flag in SPEED_FLAGS}}


def describe_cpu(summary: dict[str, object]) -> str:
    """One line for a benchmark's header.

    >>> describe_cpu({"model": "AMD EPYC", "amx_bf16": False, "avx512_bf16": False, "avx2": True})
    'AMD EPYC: avx2 (no amx_bf16, avx512_bf16)'
    """
    has = [k for k, v in summary.items() if k != "model" and v]
    lacks = [k for k, v in summary.items() if k != "model" and not v]
    return f"{summary['model']}: {' '.join(has) or 'none of ' + ', '.join(SPEED_FLAGS)}" + (
        f" (no {', '.join(lacks)})" if lacks else ""
    )

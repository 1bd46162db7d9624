"""Print the machine a test run ran on, so a failure can be matched to its CPU kind and torch build.

Float results of the same code differ between kernel families (AVX2 vs AVX-512, MKL's code paths,
OpenBLAS's core type), so the first thing to know about a red test log is which of them it ran on.
Standard library first: the CPU part prints even where torch failed to install.
"""
from __future__ import annotations

import os
import platform


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        return "unknown"
    wide = sorted(f for f in flags if f in {"avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"})
    return " ".join(wide) or "no AVX"


def lines() -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = [f"machine: {_cpu_model()} ({platform.machine()}), {usable} usable cores of {os.cpu_count()}, "
           f"flags: {_cpu_flags()}",
           f"python {platform.python_version()} on {platform.platform()}"]
    try:
        import torch
    except ImportError as err:
        return out + [f"torch: not importable yet ({err})"]
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    out.append(f"torch {torch.__version__} ({cuda}, CUDA device: {'yes' if torch.cuda.is_available() else 'no'}), "
               f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
               f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '(unset)')}, "
               f"MKL {'yes' if torch.backends.mkl.is_available() else 'no'}, "
               f"oneDNN {'yes' if torch.backends.mkldnn.is_available() else 'no'}, "
               f"{torch.get_num_threads()} intra-op threads")
    try:
        import numpy
        from numpy._core._multiarray_umath import __cpu_features__ as features
        found = [name for name in ("AVX2", "AVX512F", "X86_V3", "X86_V4") if features.get(name)]
        out.append(f"numpy {numpy.__version__} (SIMD found: {' '.join(found) or 'baseline only'})")
    except ImportError:
        pass
    return out


if __name__ == "__main__":
    print("\n".join(lines()), flush=True)

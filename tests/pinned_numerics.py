"""Run a script with float kernels that give the same bits on every x86-64 machine this project uses.

The golden run compares losses, weights, sample pixels and metric values exactly. Left alone, the same torch build picks
its kernels per machine: ATen's vectorised loops and Sleef maths by the widest ISA the CPU reports
(AVX2 or AVX-512: another summation order), oneDNN and NNPACK convolutions by ISA and by the cache sizes
they tile for, MKL's GEMM by CPU model, numpy's ufuncs and OpenBLAS (FID's covariances and matrix root)
by ISA again. A few GAN steps amplify those last-bit differences to the third significant digit.

``PINNED_ENV`` puts every library that reads an environment variable on its baseline x86-64 code path,
the same instructions and the same reduction order on any x86-64 CPU, on one thread: ATen's unvectorised
loops, MKL's ``COMPATIBLE`` branch (Intel's documented setting for identical results on Intel and
non-Intel processors), numpy's SSE4.2 baseline, OpenBLAS's Nehalem kernels (fixed block sizes, where
the Zen 4 / Skylake-X kernels size their blocks by the cache). :func:`main` then switches off the two
convolution libraries that tile by cache size (oneDNN, NNPACK), so convolutions and LSTMs go through
ATen's loops and MKL's GEMM. This costs about 1.7x the CPU time of the tuned kernels on a one-thread run
of the demo's tiny models, and is for reproducibility tests only: users' runs keep the fast kernels.
PNG files are compared by their decoded pixels (Pillow's zlib-ng may compress differently elsewhere).

    python -m tests.pinned_numerics SCRIPT.py ARGS...     # with PINNED_ENV in the environment
"""
from __future__ import annotations

import runpy
import sys

PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "default",     # ATen loops and maths: no AVX2 / AVX-512 variants
    "MKL_CBWR": "COMPATIBLE,STRICT",      # MKL: the code path Intel keeps identical on every x86 CPU
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "ONEDNN_MAX_CPU_ISA": "SSE41",        # belt and braces: oneDNN is switched off in pin_torch() anyway
    "DNNL_MAX_CPU_ISA": "SSE41",
    "OPENBLAS_CORETYPE": "Nehalem",       # numpy's and scipy's OpenBLAS: fixed-size blocks, SSE kernels
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",  # numpy's ufuncs: the baseline
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "CUDA_VISIBLE_DEVICES": "",
}


def pin_torch() -> None:
    """Route convolutions and RNNs around the libraries that tile by cache size."""
    import torch
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    torch.set_num_threads(1)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.pinned_numerics SCRIPT.py ARGS...")
    pin_torch()
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()

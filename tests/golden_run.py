"""A fixed-seed run of every user path, reduced to numbers that a refactor must not change.

The run goes through the command lines a user types (``DAMSM.py``, ``main.py``, ``main_finetune.py``,
``main.py --sample``, ``IS.py``) in subprocesses with one CPU thread, so it is independent of the
library's internal API and measures only behaviour: DAMSM pretraining for one epoch, two GAN epochs in
main mode, one in fine-tune mode, sampling every test caption, and IS/FID/R-precision of the samples.
Its inputs are frozen too: the data set in ``tests/data/golden_birds`` (made once by tools.birds.make_birds,
which may change) and the two configs below (copies of the demo configs of the day it was recorded).

    python -m tests.golden_run --record     # rewrite tests/data/golden_run.json (only on purpose)
    python -m tests.golden_run --unpinned   # this CPU's own kernels: what the pins remove

Every subprocess runs under ``tests.pinned_numerics`` (one thread, AVX2 kernels, no cache-tuned
convolutions), so the recorded numbers are the same bits on every x86-64 machine with AVX2.

``tests/test_golden.py`` runs it and compares with the recorded file.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.pinned_numerics import PINNED_ENV

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden_run.json"
GAN_YML = """\
DATASET_NAME: birds
WORKERS: 0
TREE: {BASE_SIZE: 64}
TRAIN: {NF: 8, BATCH_SIZE: 8, WARMUP_EPOCHS: 0, GENERATOR_LR: 0.0004, DISCRIMINATOR_LR: 0.0016, DAMSM_WEIGHT: 0.0,
        DAMSM_INPUT_SIZE: 75}
TEXT: {EMBEDDING_DIM: 256, CAPTIONS_PER_IMAGE: 10}
"""
DAMSM_YML = """\
DATASET_NAME: birds
WORKERS: 0
TREE: {BASE_SIZE: 64}
TRAIN: {FLAG: true, BATCH_SIZE: 24, SNAPSHOT_INTERVAL: 5, ENCODER_LR: 0.005, RNN_GRAD_CLIP: 0.25,
        DAMSM_INPUT_SIZE: 75, DAMSM_IMAGENET: false, SMOOTH: {GAMMA1: 4.0, GAMMA2: 5.0, GAMMA3: 10.0}}
TEXT: {EMBEDDING_DIM: 256, CAPTIONS_PER_IMAGE: 10, WORDS_NUM: 18}
"""
# Frozen with the two configs above, so not tests.helpers.TINY: a change to the tests' tiny configuration
# must not move the recorded numbers.
TINY = ["TREE.BASE_SIZE", "64", "TRAIN.NF", "4", "TRAIN.BATCH_SIZE", "6", "WORKERS", "0",
        "TRAIN.DAMSM_INPUT_SIZE", "75"]


def _env(pinned: bool) -> dict:
    extra = PINNED_ENV if pinned else {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
                                       "CUDA_VISIBLE_DEVICES": ""}
    return {**os.environ, **extra, "PYTHONPATH": str(ROOT)}


def _python(*argv: str, cwd: Path, pinned: bool = True) -> None:
    launcher = ["-m", "tests.pinned_numerics"] if pinned else []
    proc = subprocess.run([sys.executable, *launcher, *argv], cwd=cwd, env=_env(pinned), capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def machine(pinned: bool = True) -> str:
    """What decides the bits: torch build and the kernel family the run's processes use.

    Asked of a child process with the run's environment, so it reports the capability left after the
    pins (AVX2 on every machine with AVX2 or AVX-512; narrower only on a CPU without AVX2).
    """
    launcher = "from tests.pinned_numerics import pin_torch; pin_torch(); " if pinned else ""
    code = (f"{launcher}import platform, torch; "
            "print(f'torch {torch.__version__} / {torch.backends.cpu.get_cpu_capability()} / {platform.machine()}')")
    out = subprocess.run([sys.executable, "-c", code], env=_env(pinned), cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    return f"{out} / pinned" if pinned else out


def _tensor_digest(state) -> dict:
    import torch
    h = hashlib.sha256()
    total = 0.0
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
            total += float(value.detach().double().abs().sum())
    return {"sha256": h.hexdigest(), "abs_sum": total}


def _weights(models: Path) -> dict:
    import torch
    return {p.name: _tensor_digest(torch.load(p, map_location="cpu", weights_only=True))
            for p in sorted(models.glob("*.pth")) if not p.name.startswith("latest")}


def _scalars(tb: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in sorted(acc.Tags()["scalars"])}


def _pixels(folder: Path, pattern: str) -> dict:
    """Digest of each PNG's decoded pixels, not its bytes: zlib-ng, which Pillow bundles, may compress the
    same pixels differently on another CPU, and what a refactor must not change is the pixels."""
    from PIL import Image
    digests = {}
    for p in sorted(folder.glob(pattern)):
        with Image.open(p) as im:
            h = hashlib.sha256(f"{im.mode} {im.size}".encode())
            h.update(im.tobytes())
        digests[str(p.relative_to(folder))] = h.hexdigest()
    return digests


def run(work: Path, pinned: bool = True) -> dict:
    """Run every path in ``work`` and return the numbers (see module doc)."""
    data = work / "birds"
    shutil.copytree(ROOT / "tests" / "data" / "golden_birds", data)  # 8 species, 2 of them test species
    (work / "gan.yml").write_text(GAN_YML)
    (work / "damsm.yml").write_text(DAMSM_YML)
    out = work / "output"
    common = ["DATA_DIR", str(data), "OUTPUT_DIR", str(out), *TINY]

    _python(str(ROOT / "DAMSM.py"), "--cfg", str(work / "damsm.yml"), "--gpu", "-1", "--opts",
            *common, "CONFIG_NAME", "damsm", "TRAIN.MAX_EPOCH", "1", "TRAIN.BATCH_SIZE", "6",
            "TRAIN.SNAPSHOT_INTERVAL", "1", cwd=work, pinned=pinned)
    damsm = out / "damsm" / "models" / "text_encoder0.pth"
    gan = [*common, "TEXT.DAMSM_NAME", str(damsm), "TRAIN.WARMUP_EPOCHS", "0", "TRAIN.GSAVE_INTERVAL", "1",
           "TRAIN.DSAVE_INTERVAL", "1", "TRAIN.DAMSM_WEIGHT", "-1.0"]
    _python(str(ROOT / "main.py"), "--cfg", str(work / "gan.yml"), "--gpu", "-1", "--opts", *gan,
            "CONFIG_NAME", "main", "TRAIN.MAX_EPOCH", "2", cwd=work, pinned=pinned)
    _python(str(ROOT / "main_finetune.py"), "--cfg", str(work / "gan.yml"), "--gpu", "-1", "--opts",
            *gan, "CONFIG_NAME", "finetune", "TRAIN.MAX_EPOCH", "1", cwd=work, pinned=pinned)
    netg = out / "main" / "models" / "netG_002.pth"
    samples = work / "samples"
    _python(str(ROOT / "main.py"), "--cfg", str(work / "gan.yml"), "--gpu", "-1", "--sample",
            "--out_dir", str(samples), "--opts", *gan, "CONFIG_NAME", "main", "TRAIN.NET_G", str(netg),
            cwd=work, pinned=pinned)
    _python(str(ROOT / "IS.py"), "--image_dir", str(samples), "--weights", "random", "--workers", "0",
            "--batch_size", "4", "--splits", "2", "--device", "cpu", "--fid_ref", str(data),
            "--no_cache", "--r_precision", "--text_encoder", str(damsm),
            "--captions_pickle", str(data / "captions.pickle"), cwd=work, pinned=pinned)
    metrics = json.loads((samples / "metrics.json").read_text())
    return {
        "machine": machine(pinned),
        "damsm": {"scalars": _scalars(out / "damsm" / "tb"), "weights": _weights(out / "damsm" / "models")},
        "main": {"scalars": _scalars(out / "main" / "tb"), "weights": _weights(out / "main" / "models")},
        "finetune": {"scalars": _scalars(out / "finetune" / "tb"),
                     "weights": _weights(out / "finetune" / "models")},
        "samples": {"png": _pixels(samples, "*/*.png"), "grid": _pixels(samples, "*.png")},
        "metrics": {"inception_score": metrics["inception_score"]["mean"], "fid": metrics["fid"]["value"]
                    if isinstance(metrics["fid"], dict) else metrics["fid"],
                    "r_precision": metrics["r_precision"]["mean"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help=f"write {GOLDEN.relative_to(ROOT)}")
    parser.add_argument("--unpinned", action="store_true",
                        help="each library's own kernels for this CPU (to measure what the pins remove)")
    parser.add_argument("--pin", nargs="*", default=[], metavar="KEY=VALUE",
                        help="change one pinned variable, e.g. ATEN_CPU_CAPABILITY=default (experiments)")
    args = parser.parse_args()
    if args.record and (args.unpinned or args.pin):
        parser.error("--record writes the pinned run only")
    PINNED_ENV.update(item.split("=", 1) for item in args.pin)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp), pinned=not args.unpinned)
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    if args.record:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
        print(f"recorded {GOLDEN}")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()

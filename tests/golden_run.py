"""A fixed-seed run of every user path, reduced to numbers that a refactor must not change.

The run goes through the command lines a user types (``DAMSM.py``, ``main.py``, ``main_finetune.py``,
``main.py --sample``, ``IS.py``) in subprocesses with one CPU thread, so it is independent of the
library's internal API and measures only behaviour: DAMSM pretraining for one epoch, two GAN epochs in
main mode, one in fine-tune mode, sampling every test caption, and IS/FID/R-precision of the samples.
Its inputs are frozen too: the data set in ``tests/data/golden_birds`` (made once by tools.birds.make_birds,
which may change) and the two configs below (copies of the demo configs of the day it was recorded).

    python -m tests.golden_run --record     # rewrite tests/data/golden_run.json (only on purpose)

``tests/test_golden.py`` runs it and compares with the recorded file.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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
TINY = ["TREE.BASE_SIZE", "64", "TRAIN.NF", "4", "TRAIN.BATCH_SIZE", "6", "WORKERS", "0",
        "TRAIN.DAMSM_INPUT_SIZE", "75"]


def _python(*argv: str, cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
           "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def machine() -> str:
    """Where float results may legitimately differ in the last bits: torch build and CPU kernels."""
    import torch
    return f"torch {torch.__version__} / {torch.backends.cpu.get_cpu_capability()} / {platform.machine()}"


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


def _files(folder: Path, pattern: str) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob(pattern))}


def run(work: Path) -> dict:
    """Run every path in ``work`` and return the numbers (see module doc)."""
    data = work / "birds"
    shutil.copytree(ROOT / "tests" / "data" / "golden_birds", data)  # 8 species, 2 of them test species
    (work / "gan.yml").write_text(GAN_YML)
    (work / "damsm.yml").write_text(DAMSM_YML)
    out = work / "output"
    common = ["DATA_DIR", str(data), "OUTPUT_DIR", str(out), *TINY]

    _python(str(ROOT / "DAMSM.py"), "--cfg", str(work / "damsm.yml"), "--gpu", "-1", "--opts",
            *common, "CONFIG_NAME", "damsm", "TRAIN.MAX_EPOCH", "1", "TRAIN.BATCH_SIZE", "6",
            "TRAIN.SNAPSHOT_INTERVAL", "1", cwd=work)
    damsm = out / "damsm" / "models" / "text_encoder0.pth"
    gan = [*common, "TEXT.DAMSM_NAME", str(damsm), "TRAIN.WARMUP_EPOCHS", "0", "TRAIN.GSAVE_INTERVAL", "1",
           "TRAIN.DSAVE_INTERVAL", "1", "TRAIN.DAMSM_WEIGHT", "-1.0"]
    _python(str(ROOT / "main.py"), "--cfg", str(work / "gan.yml"), "--gpu", "-1", "--opts", *gan,
            "CONFIG_NAME", "main", "TRAIN.MAX_EPOCH", "2", cwd=work)
    _python(str(ROOT / "main_finetune.py"), "--cfg", str(work / "gan.yml"), "--gpu", "-1", "--opts",
            *gan, "CONFIG_NAME", "finetune", "TRAIN.MAX_EPOCH", "1", cwd=work)
    netg = out / "main" / "models" / "netG_002.pth"
    samples = work / "samples"
    _python(str(ROOT / "main.py"), "--cfg", str(work / "gan.yml"), "--gpu", "-1", "--sample",
            "--out_dir", str(samples), "--opts", *gan, "CONFIG_NAME", "main", "TRAIN.NET_G", str(netg),
            cwd=work)
    _python(str(ROOT / "IS.py"), "--image_dir", str(samples), "--weights", "random", "--workers", "0",
            "--batch_size", "4", "--splits", "2", "--device", "cpu", "--fid_ref", str(data),
            "--no_cache", "--r_precision", "--text_encoder", str(damsm),
            "--captions_pickle", str(data / "captions.pickle"), cwd=work)
    metrics = json.loads((samples / "metrics.json").read_text())
    return {
        "machine": machine(),
        "damsm": {"scalars": _scalars(out / "damsm" / "tb"), "weights": _weights(out / "damsm" / "models")},
        "main": {"scalars": _scalars(out / "main" / "tb"), "weights": _weights(out / "main" / "models")},
        "finetune": {"scalars": _scalars(out / "finetune" / "tb"),
                     "weights": _weights(out / "finetune" / "models")},
        "samples": {"png": _files(samples, "*/*.png"), "grid": _files(samples, "*.png")},
        "metrics": {"inception_score": metrics["inception_score"]["mean"], "fid": metrics["fid"]["value"]
                    if isinstance(metrics["fid"], dict) else metrics["fid"],
                    "r_precision": metrics["r_precision"]["mean"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help=f"write {GOLDEN.relative_to(ROOT)}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp))
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    if args.record:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
        print(f"recorded {GOLDEN}")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()

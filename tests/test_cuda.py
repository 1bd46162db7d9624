"""The CUDA paths, run on a GPU with ``pytest -m cuda`` (bench/gpu_check.py does); skipped without CUDA.

A CUDA training step against the CPU step and against the fp32 CUDA step for the same weights, batch
and noise; AMP, channels_last, TRAIN.COMPILE, EMA, sampling, IS.py and a kill-and-resume on CUDA.

Comparisons run with TF32 off (fixture ``ieee_fp32``; PyTorch's default runs convolutions in TF32,
10 mantissa bits). Tolerances, and why they are these:
  * losses, relative ``LOSS_RTOL`` = 1e-3: the same fp32 computation summed in another order (cuDNN vs
    the CPU kernels) differs by ~1e-6 relative per layer; 1e-3 leaves room for the ~100 layers of
    the random Inception and MA-GP's 6th power, and is still far below what a real difference (another
    batch, noise, mode or weight) gives, O(1e-2) and more.
  * gradients, ``||a - b|| <= GRAD_RTOL ||b||`` with GRAD_RTOL = 1e-2 over each optimiser's parameters,
    read from Adam's ``exp_avg`` (betas (0, 0.9): after a step it is exactly the last gradient). Looser
    than the losses because Adam's first update moves each weight by ~lr * sign(gradient): weights whose
    gradient is ~0 may move in opposite directions on the two devices, and the MA-GP and G passes see
    those weights.
  * the generator's gradient is compared only in steps without the DAMSM term (TRAIN.DAMSM_WEIGHT 0):
    through the tests' random Inception the DAMSM gradient of an image is not smooth (scaling a fake
    image by 1 + 1e-6 changed it by 47 % on the CPU), so the same step in channels_last on the CPU
    already gave G gradients 8 % (main) to 24 % (finetune) apart, while its losses agreed to 2e-4.
    With the term, the losses (the DAMSM one included) and the D and encoder gradients are compared.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import IS
from DAMSM import RNN_ENCODER
from datasets import TextDataset, prepare_data
from miscc.run.checkpoint import save_released
from miscc.config import cfg_from_list, reset_cfg
from miscc.train.losses import ma_gp
from main import cli_main
from miscc.train.gan import GANTrainer
from DAMSM import encode_text
from miscc.run.seeding import seed_everything
from model import NetG
from tests.helpers import calibrate_batchnorm, configure, open_gates, tiny_opts, write_images

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA device: run `python bench/gpu_check.py OUT` on a GPU")]

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)
MODULES = ("netG", "netD", "text_encoder", "image_encoder")
LOSS_RTOL, GRAD_RTOL = 1e-3, 1e-2


@pytest.fixture(autouse=True)
def ieee_fp32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def make(tmp_path, birds, damsm, device: torch.device, mode: str = "main", like: GANTrainer | None = None,
         **extra) -> GANTrainer:
    """A tiny trainer on ``device``; with ``like``, holding a copy of its weights and BN statistics."""
    configure(tmp_path, birds, damsm, **{"CUDA": device.type == "cuda", "TRAIN.AMP": "none",
                                         "TRAIN.CHANNELS_LAST": False, "TRAIN.COMPILE": False,
                                         "TRAIN.DAMSM_WEIGHT": -1, "TRAIN.EMA_DECAY": 0.0, **extra})
    trainer = GANTrainer(mode, device)
    if like is not None:
        for name in MODULES:
            getattr(trainer, name).load_state_dict(getattr(like, name).state_dict())
    if mode == "finetune":
        trainer.text_encoder.drop.p = 0.0  # each device draws its own dropout masks
    return trainer


def step(trainer: GANTrainer, data) -> dict[str, float]:
    torch.manual_seed(0)  # the same noise: drawn on the CPU, then moved to the device
    stats = trainer.step(data.to(trainer.device))  # the loop moves each batch before its step
    assert all(v.dtype == torch.float32 and v.device == trainer.device for v in stats.values())
    return {k: float(v) for k, v in stats.items()}


def last_grads(trainer: GANTrainer) -> dict[str, torch.Tensor]:
    """Each optimiser's last gradients, flattened into one vector (Adam's exp_avg with beta1 = 0)."""
    out = {}
    for name in ("optG", "optD", "optE"):
        opt = getattr(trainer, name)
        if opt is not None:
            out[name] = torch.cat([opt.state[p]["exp_avg"].flatten().float().cpu()
                                   for group in opt.param_groups for p in group["params"] if p in opt.state])
    return out


def assert_same_step(ref: GANTrainer, other: GANTrainer, data) -> None:
    """One step of each from the same state: the same losses and gradients (module docstring)."""
    want, got = step(ref, data), step(other, data)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert math.isfinite(got[k]) and abs(got[k] - v) <= LOSS_RTOL * abs(v) + 1e-8, (k, got[k], v)
    want_grads, got_grads = last_grads(ref), last_grads(other)
    assert got_grads.keys() == want_grads.keys()
    if ref.damsm_weight > 0:
        del want_grads["optG"]
    for k, g in want_grads.items():
        err = (got_grads[k] - g).norm() / g.norm()
        assert err <= GRAD_RTOL, f"{k}: relative gradient difference {err:.2e}"


# TRAIN.DAMSM_WEIGHT: -1 = the entry point's released weight; 0 = no DAMSM term (G's gradients compared).
@pytest.mark.parametrize("mode,damsm", [("main", -1), ("finetune", -1), ("main", 0)])
def test_cuda_step_matches_the_cpu_step(mode, damsm, tmp_path, synthetic_birds, damsm_files):
    cpu = make(tmp_path, synthetic_birds, damsm_files, CPU, mode, **{"TRAIN.DAMSM_WEIGHT": damsm})
    gpu = make(tmp_path, synthetic_birds, damsm_files, CUDA, mode, like=cpu, **{"TRAIN.DAMSM_WEIGHT": damsm})
    assert all(p.is_cuda for name in MODULES for p in getattr(gpu, name).parameters())
    assert gpu.loader.pin_memory
    assert_same_step(cpu, gpu, next(iter(cpu.loader)))
    assert ("optE" in last_grads(gpu)) == (mode == "finetune")
    for k, v in cpu.netG.state_dict().items():  # train-mode BN statistics of the step
        if "running" in k:
            torch.testing.assert_close(gpu.netG.state_dict()[k].cpu(), v, rtol=LOSS_RTOL, atol=1e-6)


# (relative tolerance of the D hinge losses, which come before any update; of the MA-GP value on the
# same weights). bf16 keeps 8 mantissa bits in the networks; the MA-GP pass runs in bf16 under bf16
# and in fp32 under fp16 (DiscriminatorPasses.gp_logits), so under fp16 it must match fp32 closely. The same
# comparison on the CPU measured: hinge losses 5e-5 (bf16) and 8e-6 (fp16), MA-GP 3e-3 and 0.
AMP_RTOL = {"bf16": (0.01, 0.05), "fp16": (0.005, 1e-3)}


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_step_on_cuda_is_finite_and_near_fp32(amp, tmp_path, synthetic_birds, damsm_files):
    ref = make(tmp_path, synthetic_birds, damsm_files, CUDA)
    calibrate_batchnorm(ref.image_encoder)  # a random Inception's activations overflow fp16 otherwise
    mixed = make(tmp_path, synthetic_birds, damsm_files, CUDA, like=ref, **{"TRAIN.AMP": amp})
    assert mixed.scalers["G"].is_enabled() == (amp == "fp16")
    data = next(iter(ref.loader))

    imgs, captions, cap_lens, _, _ = prepare_data(data, CUDA)
    with torch.no_grad():
        _, sent = encode_text(ref.text_encoder, captions, cap_lens)
    gp_ref, gp_mixed = (float(ma_gp(t.d.gp_logits, imgs[0], sent).detach()) for t in (ref, mixed))
    hinge_rtol, gp_rtol = AMP_RTOL[amp]
    assert gp_ref > 0 and abs(gp_mixed - gp_ref) <= gp_rtol * gp_ref, (gp_mixed, gp_ref)

    r, m = step(ref, data), step(mixed, data)
    assert all(math.isfinite(v) for v in m.values()), m
    for k in ("errD/real", "errD/mismatch", "errD/fake"):
        assert abs(m[k] - r[k]) <= hinge_rtol * abs(r[k]), (k, m[k], r[k])
    assert all(p.dtype == torch.float32 for p in mixed.netG.parameters())


def test_ema_on_cuda_averages_the_generator(tmp_path, synthetic_birds, damsm_files):
    trainer = make(tmp_path, synthetic_birds, damsm_files, CUDA, **{"TRAIN.EMA_DECAY": 0.9})
    before = {k: v.clone() for k, v in trainer.netG_ema.named_parameters()}
    step(trainer, next(iter(trainer.loader)))
    params = dict(trainer.netG.named_parameters())
    for k, p in trainer.netG_ema.named_parameters():
        assert p.is_cuda
        torch.testing.assert_close(p, 0.9 * before[k] + 0.1 * params[k], rtol=1e-5, atol=1e-7)
    assert not torch.equal(trainer.netG_ema.fc.weight, trainer.netG.fc.weight)
    for a, b in zip(trainer.netG_ema.buffers(), trainer.netG.buffers()):
        assert torch.equal(a, b)


def test_sampling_on_cuda_writes_what_the_cpu_writes(tmp_path, synthetic_birds):
    n_words = TextDataset(synthetic_birds, "test").n_words
    torch.manual_seed(0)
    netG = open_gates(NetG(4, 100, imsize=64))  # text and noise both shape the images
    save_released(netG, tmp_path / "netG_010.pth", prefix="module.")
    save_released(RNN_ENCODER(n_words, nhidden=256), tmp_path / "text_encoder.pth")
    opts = tiny_opts(**{"TEXT.DAMSM_NAME": tmp_path / "text_encoder.pth", "TRAIN.NET_G": tmp_path / "netG_010.pth",
                        "TRAIN.BATCH_SIZE": 7, "WORKERS": 1, "OUTPUT_DIR": tmp_path / "output"})
    for gpu in ("-1", "0"):
        reset_cfg()
        torch.cuda.reset_peak_memory_stats(CUDA)
        held = torch.cuda.memory_allocated(CUDA)  # by earlier tests' leftovers, if any
        cli_main("main", ["--cfg", "cfg/bird.yml", "--gpu", gpu, "--data_dir", str(synthetic_birds), "--sample",
                          "--out_dir", str(tmp_path / gpu), "--opts", *opts])
        assert (torch.cuda.max_memory_allocated(CUDA) > held) == (gpu == "0")  # only "--gpu 0" ran on the GPU
    cpu, gpu = tmp_path / "-1", tmp_path / "0"
    assert (gpu / "samples.jsonl").read_bytes() == (cpu / "samples.jsonl").read_bytes()
    assert json.loads((gpu / "DONE.json").read_text())["count"] == 60
    for folder in ("img", "mask"):
        names = sorted(p.name for p in (cpu / folder).iterdir())
        assert len(names) == 60 and names == sorted(p.name for p in (gpu / folder).iterdir())
        for name in names:
            a, b = (np.asarray(Image.open(d / folder / name)).astype(np.int16) for d in (cpu, gpu))
            # fp32 on both: only values within rounding of a quantisation step may land one level apart
            diff = np.abs(a - b)
            assert diff.max() <= 1 and (diff > 0).mean() <= 0.01, (folder, name)


def test_is_py_on_cuda_gives_the_cpu_numbers(tmp_path):
    write_images(tmp_path / "generated", 8, seed=0)
    write_images(tmp_path / "real", 8, seed=1)
    results = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.json"
        assert IS.main(["--weights", "random", "--workers", "0", "--batch_size", "4", "--splits", "2",
                        "--image_dir", str(tmp_path / "generated"), "--fid_ref", str(tmp_path / "real"),
                        "--no_cache", "--device", device, "--out", str(out)]) == 0
        results[device] = json.loads(out.read_text())
    assert results["cuda"]["protocol"]["device"] == "cuda"
    is_cpu, is_gpu = (results[d]["inception_score"]["mean"] for d in ("cpu", "cuda"))
    assert abs(is_gpu - is_cpu) <= 1e-3 * is_cpu
    fid_cpu, fid_gpu = (results[d]["fid"] for d in ("cpu", "cuda"))
    assert abs(fid_gpu - fid_cpu) <= 1e-2 * fid_cpu + 1e-3


def test_kill_and_resume_on_cuda_continues_the_run(tmp_path, synthetic_birds, damsm_files):
    straight = make(tmp_path / "straight", synthetic_birds, damsm_files, CUDA, **{"TRAIN.MAX_EPOCH": 2})
    straight.train()
    killed = make(tmp_path / "killed", synthetic_birds, damsm_files, CUDA, **{"TRAIN.MAX_EPOCH": 1})
    killed.train()  # "killed" after epoch 1: its latest.pth is all that the next process sees
    cfg_from_list(["TRAIN.MAX_EPOCH", "2", "RESTORE", "True"])
    seed_everything(12345)  # a different process start: the saved RNG state must win
    resumed = GANTrainer("main", CUDA)
    resumed.train()
    assert resumed.start_epoch == 2 and resumed.step_count == straight.step_count == 6

    # cuDNN's convolutions and the upsampling backward are not bit-reproducible on CUDA, so the runs
    # differ by rounding, amplified where Adam moves weights with ~0 gradient by ~lr. A resume that
    # lost the optimiser state, the RNG state or the data order moves the weights differently by as
    # much as the second epoch moves them: the difference must stay far below that move.
    def distance(a, b):
        return torch.cat([(x - y).flatten() for x, y in zip(a.parameters(), b.parameters())]).norm()
    moved = distance(straight.netG, killed.netG)  # epoch 2's steps
    assert moved > 0 and distance(straight.netG, resumed.netG) < 0.05 * moved


# Last in the file: compilation takes longest (and would be what hangs). It covers G and the D trunk
# only, so its G gradients are what matters (DAMSM off); channels_last also converts the image
# encoder, so it runs with the DAMSM term as well.
@pytest.mark.parametrize("switch,damsm", [("TRAIN.CHANNELS_LAST", -1), ("TRAIN.CHANNELS_LAST", 0),
                                          ("TRAIN.COMPILE", 0)])
def test_channels_last_and_compiled_steps_match_the_plain_cuda_step(switch, damsm, tmp_path, synthetic_birds,
                                                                   damsm_files):
    ref = make(tmp_path, synthetic_birds, damsm_files, CUDA, **{"TRAIN.DAMSM_WEIGHT": damsm})
    fast = make(tmp_path, synthetic_birds, damsm_files, CUDA, like=ref,
                **{switch: True, "TRAIN.DAMSM_WEIGHT": damsm})
    if switch == "TRAIN.CHANNELS_LAST":
        weights = [p for m in (fast.netG, fast.netD) for p in m.parameters() if p.dim() == 4]
        assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    else:
        assert fast.g_train is not fast.netG and fast.d.trunk is not fast.netD
    data = next(iter(ref.loader))
    assert_same_step(ref, fast, data)
    assert all(math.isfinite(v) for v in step(fast, data).values())  # a second step, past compilation

"""Mixed precision (TRAIN.AMP): bf16 / fp16 training steps on CPU and the precision of the MA-GP pass."""
import pytest
import torch

from miscc.config import cfg
from miscc.train.losses import ma_gp
from miscc.train.gan import GANTrainer
from miscc.train.precision import DiscriminatorPasses
from model import NetD
from tests.helpers import calibrate_batchnorm, changed, configure, snapshot


# CPUs without bf16/fp16 units emulate them (~8x slower than fp32 here): batch 3, and the autocast
# image-encoder path (the same code for both dtypes) only under fp16, where its range matters.
@pytest.mark.slow
@pytest.mark.parametrize("amp,damsm_weight", [("bf16", 0), ("fp16", -1)])
def test_amp_training_step_has_finite_losses_and_trains_fp32_weights(amp, damsm_weight, tmp_path,
                                                                      synthetic_birds, damsm_files):
    configure(tmp_path, synthetic_birds, damsm_files,
              **{"TRAIN.AMP": amp, "TRAIN.BATCH_SIZE": 3, "TRAIN.DAMSM_WEIGHT": damsm_weight})
    trainer = GANTrainer("main")
    calibrate_batchnorm(trainer.image_encoder)  # the fixture's random Inception overflows fp16 otherwise
    assert trainer.scalers["G"].is_enabled() == (amp == "fp16")
    g0, d0 = snapshot(trainer.netG), snapshot(trainer.netD)
    stats = trainer.step(next(iter(trainer.loader)))
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in stats.values()), stats
    assert all(p.dtype == torch.float32 for p in trainer.netG.parameters())  # master weights stay fp32
    assert "fc.weight" in changed(g0, trainer.netG)
    assert "COND_DNET.joint_conv.0.weight" in changed(d0, trainer.netD)
    assert ("errG/DAMSM" in stats) == (damsm_weight != 0)
    if amp == "fp16":
        state = trainer.training_state(epoch=1)
        assert set(state["scalers"]) == {"D", "G", "E"} and state["scalers"]["D"]["scale"] > 0


def test_default_amp_is_plain_fp32(tmp_path, synthetic_birds, damsm_files):
    configure(tmp_path, synthetic_birds, damsm_files)
    trainer = GANTrainer("main")
    assert cfg.TRAIN.AMP == "none" and trainer.amp_dtype is None
    assert not any(s.is_enabled() for s in trainer.scalers.values())
    assert "scalers" not in trainer.training_state(epoch=1)


@pytest.mark.parametrize("amp,gp_dtype,d_dtype", [(None, torch.float32, torch.float32),
                                                   (torch.bfloat16, torch.bfloat16, torch.bfloat16),
                                                   (torch.float16, torch.float32, torch.float16)])
def test_gradient_penalty_pass_precision(amp, gp_dtype, d_dtype):
    # fp16 input gradients of unscaled logits underflow; a loss-scaled penalty turns inf on every
    # overflow step, so under fp16 the MA-GP pass stays fp32 (bf16 has fp32's range).
    torch.manual_seed(0)
    netD = NetD(4, imsize=64)
    passes = DiscriminatorPasses(netD, netD, "cpu", amp)
    seen = []
    netD.block0.conv_r[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    imgs, sent = torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(2, 256)
    gp = ma_gp(passes.gp_logits, imgs, sent)
    assert seen == [gp_dtype] and gp.dtype == torch.float32 and torch.isfinite(gp)
    seen.clear()
    assert passes.logits(imgs, sent).dtype == torch.float32 and seen == [d_dtype]


def test_fp16_input_gradients_underflow_without_a_loss_scale():
    # Why the MA-GP pass is not run in fp16: d logit / d input = 1e-8 is below fp16's smallest
    # subnormal (6e-8), so an unscaled half-precision backward returns exactly 0 (no penalty).
    def logits(x, s):
        with torch.autocast("cpu", dtype=torch.float16):
            h = (x.half() * 1e-4).flatten(1).sum(1) + (s.half() * 1e-4).sum(1)
            return (h * 1e-4).float()

    imgs, sent = torch.ones(2, 3, 4, 4), torch.ones(2, 8)
    assert ma_gp(logits, imgs, sent, p=2.0) == 0
    assert ma_gp(lambda x, s: ((x * 1e-8).flatten(1).sum(1) + (s * 1e-8).sum(1)), imgs, sent, p=2.0) > 0

"""Ablations and related systems as configurations (docs/VARIANTS.md): no SSACN, DF-GAN fusion,
conditioning augmentation, generator EMA; each builds, trains a step, saves, samples and reloads."""
from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence as torch_kl

from miscc.train import gan as trainer_module
from miscc.run.checkpoint import load_checkpoint, load_into, save_released
from miscc.config import cfg, cfg_from_file, cfg_from_list, reset_cfg
from miscc.errors import SSAGANError
from miscc.train.losses import kl_divergence
from miscc.sample.sampler import DONE_FILE, sample
from miscc.train.gan import GANTrainer
from miscc.config.factory import build_generator, build_image_encoder
from miscc.train.gan import update_ema
from model import ConditioningAugmentation, NetG, TextAffine
from tests.helpers import TINY, configure, open_gates, reference_state_dict, state_dict_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, NF = TINY["TREE.BASE_SIZE"], TINY["TRAIN.NF"]
NO_SSACN = {"GAN.SSACN": False, "TRAIN.DAMSM_WEIGHT": 0.0}
DFGAN = {"GAN.SSACN": False, "GAN.FUSION": "dfgan", "TRAIN.DAMSM_WEIGHT": 0.0}
CA = {"TEXT.CA": True}
EMA = {"TRAIN.EMA_DECAY": 0.9}


@pytest.fixture(scope="module")
def image_encoder(damsm_files):
    cfg_from_list(["TRAIN.DAMSM_INPUT_SIZE", str(TINY["TRAIN.DAMSM_INPUT_SIZE"])])  # as configure() sets it; the next test resets cfg
    return build_image_encoder(str(damsm_files).replace("text_encoder", "image_encoder"))


@pytest.fixture
def trainer_env(tmp_path, synthetic_birds, damsm_files, image_encoder, monkeypatch):
    """``configure(**variant)`` for GANTrainer runs. The DAMSM image encoder every trainer here would
    build (a random Inception: seconds to initialise) is built once and copied."""
    monkeypatch.setattr(trainer_module, "build_image_encoder", lambda: copy.deepcopy(image_encoder))

    def configured(**variant):
        configure(tmp_path, synthetic_birds, damsm_files, **variant)
        assert image_encoder.input_size == cfg.TRAIN.DAMSM_INPUT_SIZE

    return configured


def randomised(g: NetG, seed: int = 0) -> NetG:
    """Open the zero-initialised gates and text MLPs so that every part of the generator matters."""
    torch.manual_seed(seed)
    return open_gates(g).eval()


def test_config_files_select_the_variants():
    expected = {"cfg/ablation/bird_id0_no_ssacn.yml": (False, "ssacn", False, 0.0),
                "cfg/ablation/bird_id1_no_damsm.yml": (True, "ssacn", False, 0.0),
                "cfg/ablation/bird_id2_ssacn_damsm.yml": (True, "ssacn", False, 0.05),
                "cfg/ablation/bird_id3_finetune.yml": (True, "ssacn", False, 0.1),
                "cfg/dfgan_bird.yml": (False, "dfgan", False, 0.0),
                "cfg/csagan_bird.yml": (True, "ssacn", True, -1.0)}
    for path, variant in expected.items():
        reset_cfg()
        cfg_from_file(path)
        assert (cfg.GAN.SSACN, cfg.GAN.FUSION, cfg.TEXT.CA, cfg.TRAIN.DAMSM_WEIGHT) == variant, path
    reset_cfg()
    cfg_from_file("cfg/bird_ema.yml")
    assert cfg.TRAIN.EMA_DECAY > 0 and cfg.GAN.SSACN and not cfg.TEXT.CA


def test_default_config_builds_exactly_the_released_generator():
    cfg_from_list(["TRAIN.NF", "64", "TREE.BASE_SIZE", "256"])
    g = build_generator()
    assert state_dict_rows(g) == reference_state_dict("NetG_ngf64_nz100.json")
    assert g.ca_net is None and NetG.variant_of(g.state_dict()) == g.variant() == \
        {"SSACN": True, "FUSION": "ssacn", "CA": False}


def test_without_ssacn_there_is_no_mask_predictor_and_fusion_is_uniform():
    g = randomised(NetG(NF, 100, SIZE, ssacn=False))
    assert not [k for k in g.state_dict() if "conv_mask" in k]
    z, s = torch.randn(3, 100), torch.randn(3, 256)
    img, masks = g(z, s)
    assert [tuple(m.shape) for m in masks] == [(3, 1, r, r) for r in (4, 8, 16, 32, 64)]
    assert all(torch.equal(m, torch.ones_like(m)) for m in masks)  # documented: all ones
    # Same weights in the SSACN generator with every mask forced to exactly 1 give the same image:
    # "no SSACN" is SSACN with the mask fixed to 1, applied uniformly over the image.
    masked = NetG(NF, 100, SIZE).eval()
    missing, unexpected = masked.load_state_dict(g.state_dict(), strict=False)
    assert not unexpected and all("conv_mask" in k for k in missing)
    with torch.no_grad():
        for predictor in [masked.conv_mask] + [b.conv_mask for b in masked.blocks() if b.predict_mask]:
            predictor[3].weight.zero_()
            predictor[3].bias.fill_(1e4)  # sigmoid(1e4) == 1.0 in float32
    img_masked, masks_masked = masked(z, s)
    assert all(torch.equal(m, torch.ones_like(m)) for m in masks_masked)
    assert torch.allclose(img, img_masked, atol=1e-6)


def test_unmasked_affine_treats_every_position_alike():
    torch.manual_seed(0)
    layer = TextAffine(5).eval()
    for mlp in (layer.fc_gamma, layer.fc_beta):
        torch.nn.init.normal_(mlp.linear2.weight)
    x, s = torch.randn(2, 5, 6, 6), torch.randn(2, 256)
    perm = torch.randperm(36)

    def shuffled(t):
        return t.flatten(2)[..., perm].view_as(t)

    # Shuffling the positions shuffles the output the same way: no position gets other treatment.
    assert torch.allclose(layer(shuffled(x), s), shuffled(layer(x, s)), atol=1e-6)
    assert torch.allclose(layer(x, s), layer(x, s, torch.ones(2, 1, 6, 6)), atol=1e-6)
    mask = torch.rand(2, 1, 6, 6)
    assert not torch.allclose(layer(shuffled(x), s, mask), shuffled(layer(x, s, mask)), atol=1e-3)


def test_dfgan_fusion_is_two_affine_leaky_relu_per_point_without_norm():
    g = randomised(NetG(NF, 100, SIZE, ssacn=False, fusion="dfgan"))
    keys = list(g.state_dict())
    assert {f"block0.affine{i}.fc_gamma.linear2.weight" for i in range(4)} <= set(keys)
    assert not [k for k in keys if "batch_norm2d" in k or "running_mean" in k]  # no BN anywhere
    assert "conv_img.1.weight" in keys and g.variant() == {"SSACN": False, "FUSION": "dfgan", "CA": False}

    block, x, s = g.block2, torch.randn(2, 8 * NF, 16, 16), torch.randn(2, 256)

    def affine(layer, h):
        return (1 + layer.fc_gamma(s)[:, :, None, None]) * h + layer.fc_beta(s)[:, :, None, None]

    h = F.leaky_relu(affine(block.affine1, F.leaky_relu(affine(block.affine0, x), 0.2)), 0.2)
    h = block.c1(h)
    h = F.leaky_relu(affine(block.affine3, F.leaky_relu(affine(block.affine2, h), 0.2)), 0.2)
    expected = block.shortcut(x) + block.gamma * block.c2(h)
    out, next_logits = block(x, s, None)
    assert next_logits is None and torch.allclose(out, expected, atol=1e-5)
    # A fresh affine is the identity, as DF-GAN's (gamma bias 1, beta 0) is.
    fresh = NetG(NF, 100, SIZE, ssacn=False, fusion="dfgan").block2.affine0
    assert torch.equal(fresh(x, s), x)


def test_kl_term_matches_the_gaussian_kl_and_vanishes_at_the_prior():
    assert kl_divergence(torch.zeros(4, 256), torch.zeros(4, 256)).item() == 0.0
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 256), torch.randn(4, 256)
    reference = torch_kl(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1).mean()
    assert torch.allclose(kl_divergence(mu, logvar), reference, rtol=1e-5)


def test_conditioning_augmentation_samples_in_training_and_uses_mu_in_eval():
    torch.manual_seed(0)
    ca = ConditioningAugmentation()
    s = torch.randn(3, 256)
    mu, logvar = ca.encode(s)
    assert mu.shape == logvar.shape == (3, 256)
    assert torch.equal(ca.eval()(s), mu)
    ca.train()
    torch.manual_seed(1)
    c = ca(s)
    torch.manual_seed(1)
    assert torch.allclose(c, mu + (0.5 * logvar).exp() * torch.randn_like(mu))
    g = NetG(NF, 100, SIZE, ca=True)
    extra = set(g.state_dict()) - set(NetG(NF, 100, SIZE).state_dict())
    assert extra == {"ca_net.fc.weight", "ca_net.fc.bias"}


@pytest.mark.parametrize("options, saved", [({"ssacn": False}, "GAN.SSACN: False"),
                                            ({"ssacn": False, "fusion": "dfgan"}, "GAN.FUSION: dfgan"),
                                            ({"ca": True}, "TEXT.CA: True")], ids=["no_ssacn", "dfgan", "ca"])
def test_loading_a_variant_file_into_the_default_generator_names_both_variants(tmp_path, options, saved):
    file = tmp_path / "netG_010.pth"
    save_released(NetG(NF, 100, SIZE, **options), file, prefix="module.")
    cfg_from_list(["TRAIN.NF", str(NF), "TREE.BASE_SIZE", str(SIZE)])
    with pytest.raises(SSAGANError) as err:
        load_checkpoint(build_generator(), file)
    message = str(err.value)
    assert str(file) in message and saved in message
    assert "this run builds [GAN.SSACN: True, GAN.FUSION: ssacn, TEXT.CA: False]" in message


@pytest.mark.parametrize("variant", [NO_SSACN, DFGAN, CA, EMA], ids=["no_ssacn", "dfgan", "ca", "ema"])
def test_variant_trains_a_step_saves_samples_and_reloads(trainer_env, variant):
    trainer_env(**variant)
    trainer = GANTrainer("main")
    g0 = {k: v.clone() for k, v in trainer.netG.state_dict().items()}
    stats = trainer.step(next(iter(trainer.loader)))
    assert all(torch.isfinite(v) for v in stats.values())
    assert ("errG/DAMSM" in stats) == (cfg.TRAIN.DAMSM_WEIGHT != 0)
    assert ("errG/KL" in stats) == cfg.TEXT.CA
    if cfg.TEXT.CA:
        assert stats["errG/KL"] > 0 and "ca_net.fc.weight" in trainer.netG.state_dict()
    if cfg.TRAIN.EMA_DECAY:
        decay = cfg.TRAIN.EMA_DECAY
        raw, ema = trainer.netG.state_dict(), trainer.netG_ema.state_dict()
        moved = [k for k, p in trainer.netG.named_parameters() if not torch.equal(p, g0[k])]
        assert "fc.weight" in moved
        for k in moved:
            assert not torch.equal(ema[k], raw[k])
            assert torch.allclose(ema[k], decay * g0[k] + (1 - decay) * raw[k], atol=1e-7, rtol=1e-5), k
        for k, b in trainer.netG.named_buffers():
            assert torch.equal(ema[k], b), k

    trainer.save(1)
    models = trainer.layout.models
    state = torch.load(models / "latest.pth", weights_only=True)
    assert state["variant"] == {"SSACN": cfg.GAN.SSACN, "FUSION": cfg.GAN.FUSION, "CA": cfg.TEXT.CA,
                                "EMA": bool(cfg.TRAIN.EMA_DECAY)}
    assert ("netG_ema" in state) == bool(cfg.TRAIN.EMA_DECAY)
    trainer.load_training_state(models / "latest.pth")
    released = "netG_ema_001.pth" if cfg.TRAIN.EMA_DECAY else "netG_001.pth"
    assert (models / released).is_file() and (models / "netG_001.pth").is_file()
    reloaded = load_checkpoint(build_generator(), models / released)
    expected = trainer.netG_ema if cfg.TRAIN.EMA_DECAY else trainer.netG
    for (k, a), b in zip(reloaded.state_dict().items(), expected.state_dict().values()):
        assert torch.equal(a, b.cpu()), k

    out = sample(caption_mode="random", batch_size=6)  # TRAIN.NET_G '': the newest file of the run
    done = json.loads((out / DONE_FILE).read_text())
    assert done["netG"].endswith(released) and done["count"] == 6
    assert len(list((out / "img").iterdir())) == 6


def test_resuming_a_state_of_another_variant_names_both(trainer_env):
    trainer_env(**NO_SSACN)
    trainer = GANTrainer("main")
    trainer.save(1)
    cfg_from_list(["GAN.SSACN", "True", "TRAIN.EMA_DECAY", "0.5", "RESTORE", "True", "TRAIN.MAX_EPOCH", "2"])
    with pytest.raises(SSAGANError, match=r"GAN.SSACN: False.*EMA \(TRAIN.EMA_DECAY > 0\): False.*"
                                          r"GAN.SSACN: True.*EMA \(TRAIN.EMA_DECAY > 0\): True"):
        GANTrainer("main").restore()


def test_ema_update_follows_the_decay_formula():
    torch.manual_seed(0)
    model, ema = NetG(NF, 100, SIZE), NetG(NF, 100, SIZE)
    load_into(ema, model.state_dict())
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        for b in model.buffers():
            b.add_(1)
    update_ema(ema, model, 0.75)
    for (k, e), m in zip(ema.state_dict().items(), model.state_dict().values()):
        if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(e, m), k
        else:
            assert torch.allclose(e, 0.75 * before[k] + 0.25 * m, atol=1e-6), k

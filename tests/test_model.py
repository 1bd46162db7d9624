"""NetG / NetD: released state-dict layout, shapes, masks and the zero-initialised gates."""
import pytest
import torch
import torch.nn.functional as F

from model import NetD, NetG, SSCBN, generator_channels
from tests.helpers import checkpoint_facts, open_gates, reference_state_dict, state_dict_rows


def test_netg_state_dict_is_the_released_one():
    assert state_dict_rows(NetG(64, 100)) == reference_state_dict("NetG_ngf64_nz100.json")


def test_netd_state_dict_is_the_released_one():
    assert state_dict_rows(NetD(64)) == reference_state_dict("NetD_ndf64.json")


def test_released_parameter_counts():
    # Counts measured on the original classes (tests/data/reference/checkpoint_facts.json).
    facts = checkpoint_facts()
    netg, netd = NetG(64, 100), NetD(64)
    assert sum(p.numel() for p in netg.parameters()) == facts["NetG"]["params_total"] == 29_494_273
    assert sum(b.numel() for b in netg.buffers()) == facts["NetG"]["buffer_elements"]
    assert sum(p.numel() for p in netd.parameters()) == facts["NetD"]["params_total"] == 80_379_526
    unused = sum(p.numel() for k in ("block4", "block5") for p in getattr(netd, k).conv_s.parameters())
    assert unused == facts["NetD"]["params_unused_in_forward"]


@pytest.mark.parametrize("imsize,n_blocks", [(64, 5), (128, 6), (256, 7)])
def test_generator_output_and_mask_shapes(imsize, n_blocks):
    torch.manual_seed(0)
    g = NetG(ngf=4, nz=100, imsize=imsize)
    img, masks = g(torch.randn(2, 100), torch.randn(2, 256))
    assert img.shape == (2, 3, imsize, imsize)
    assert img.abs().max() <= 1.0
    assert [m.shape[-1] for m in masks] == [4 * 2 ** i for i in range(n_blocks)]
    for m in masks:
        assert m.shape[:2] == (2, 1) and m.min() >= 0 and m.max() <= 1
    # Channel taper at the end is the same at every size: ... 8 -> 4 -> 2 -> 1 (x ngf).
    assert [c for _, c in generator_channels(4, imsize)][-3:] == [16, 8, 4]
    # The last block predicts no mask (no conv_mask keys); the one before it does.
    assert not hasattr(g.blocks()[-1], "conv_mask") and not g.blocks()[-1].predict_mask
    assert hasattr(g.blocks()[-2], "conv_mask") and g.blocks()[-2].predict_mask


@pytest.mark.parametrize("imsize", [64, 128, 256])
def test_discriminator_feature_and_logit_shapes(imsize):
    d = NetD(ndf=4, imsize=imsize)
    feats = d(torch.randn(3, 3, imsize, imsize))
    assert feats.shape == (3, 64, 4, 4)
    assert d.COND_DNET(feats, torch.randn(3, 256)).shape == (3, 1, 1, 1)


def test_fresh_generator_is_a_pure_shortcut_chain():
    torch.manual_seed(0)
    g = NetG(ngf=4, imsize=64).eval()
    for block in g.blocks():
        assert block.gamma.item() == 0
        for affine in (block.affine0, block.affine2):
            for mlp in (affine.fc_gamma, affine.fc_beta):
                assert not mlp.linear2.weight.any() and not mlp.linear2.bias.any()
    x = torch.randn(2, 32, 8, 8)
    block = g.block1
    out, _ = block(x, torch.randn(2, 256), torch.rand(2, 1, 8, 8))
    assert torch.equal(out, block.shortcut(x))
    # ... so the image does not depend on the sentence until training moves the gates.
    z = torch.randn(2, 100)
    a, _ = g(z, torch.randn(2, 256))
    b, _ = g(z, torch.randn(2, 256))
    assert torch.equal(a, b)


def test_sscbn_applies_text_modulation_only_where_the_mask_is():
    torch.manual_seed(0)
    layer = SSCBN(3).eval()
    for mlp in (layer.fc_gamma, layer.fc_beta):
        torch.nn.init.normal_(mlp.linear2.weight)
    x = torch.randn(2, 3, 4, 4)
    s = torch.randn(2, 256)
    mask = torch.zeros(2, 1, 4, 4)
    mask[..., :2, :] = 1
    y = layer(x, s, mask)
    normed = layer.batch_norm2d(x)
    gamma = layer.fc_gamma(s)[:, :, None, None]
    beta = layer.fc_beta(s)[:, :, None, None]
    assert torch.allclose(y[..., 2:, :], normed[..., 2:, :])
    assert torch.allclose(y[..., :2, :], ((1 + gamma) * normed + beta)[..., :2, :])


def test_generator_forward_follows_the_released_order():
    """Nearest upsampling of features, bilinear (align_corners) upsampling of mask *logits*."""
    torch.manual_seed(0)
    g = open_gates(NetG(ngf=4, imsize=64).eval())  # so every part of the block matters
    z, s = torch.randn(2, 100), torch.randn(2, 256)
    img, masks = g(z, s)

    h = g.fc(z).view(2, 32, 4, 4)
    logits = g.conv_mask(h)
    expected_masks = []
    for i, block in enumerate(g.blocks()):
        if i:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            logits = F.interpolate(logits, size=h.shape[-2:], mode="bilinear", align_corners=True)
        m = torch.sigmoid(logits)
        expected_masks.append(m)
        res = block.c2(F.relu(block.affine2(block.c1(F.relu(block.affine0(h, s, m))), s, m)))
        h = block.shortcut(h) + block.gamma * res
        logits = block.conv_mask(h) if block.predict_mask else None
    assert torch.allclose(img, g.conv_img(h), atol=1e-6)
    for a, b in zip(masks, expected_masks):
        assert torch.allclose(a, b, atol=1e-6)


def test_discriminator_unused_shortcut_convs_stay_out_of_the_graph():
    d = NetD(ndf=2, imsize=256)
    for p in d.parameters():
        if p.dim() == 1 and p.numel() == 1:
            p.data.fill_(0.5)
    feats = d(torch.randn(1, 3, 256, 256))
    d.COND_DNET(feats, torch.randn(1, 256)).sum().backward()
    assert d.block4.conv_s.weight.grad is None and d.block5.conv_s.weight.grad is None
    assert d.block3.conv_s.weight.grad is not None


def test_unsupported_size_is_rejected():
    with pytest.raises(ValueError, match="imsize"):
        NetG(ngf=4, imsize=96)

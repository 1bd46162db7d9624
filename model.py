"""SSA-GAN generator and discriminator, state-dict compatible with the released checkpoints.

Attribute names and registration order are part of the checkpoint format (they are the state-dict
keys and fix the order of random draws when a seeded model is built), so they follow the released
code even where a clearer name exists; classes carry the clearer names. Where the paper and the
released code differ, this follows the code (see the README's "paper vs code" section):
  * features are upsampled nearest-neighbour between blocks; mask *logits* are upsampled bilinearly
    (align_corners=True) and only then squashed with a sigmoid;
  * every residual branch is scaled by a learned scalar gate that starts at 0, and the SSCBN text MLPs
    end in zero-initialised layers, so a fresh generator is a pure shortcut chain.

NetG's keyword options build the ablations and related systems of docs/VARIANTS.md (no masks,
DF-GAN's deep fusion, conditioning augmentation); their defaults are the released generator.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from sync_batchnorm import SynchronizedBatchNorm2d

SENT_DIM = 256  # hard-coded text size of the released model (TEXT.EMBEDDING_DIM)
NOISE_DIM = 100  # noise size; the released NetG is built with nz = 100
MASK_HIDDEN = 100  # channels of the mask predictor's hidden layer
SUPPORTED_G_SIZES = (64, 128, 256)


def _num_stages(imsize: int) -> int:
    if imsize not in SUPPORTED_G_SIZES:
        raise ValueError(f"imsize must be one of {SUPPORTED_G_SIZES}, got {imsize}")
    return imsize.bit_length() - 2  # one block at 4x4 plus one per doubling up to imsize


class MaskPredictor(nn.Sequential):
    """conv3x3 -> BN -> ReLU -> conv1x1 to one channel of mask logits (sigmoid applied by NetG)."""

    def __init__(self, in_ch: int):
        super().__init__(
            nn.Conv2d(in_ch, MASK_HIDDEN, 3, 1, 1),
            SynchronizedBatchNorm2d(MASK_HIDDEN),
            nn.ReLU(),
            nn.Conv2d(MASK_HIDDEN, 1, 1, 1, 0),
        )


def _text_mlp(out_features: int) -> nn.Sequential:
    mlp = nn.Sequential(OrderedDict([
        ("linear1", nn.Linear(SENT_DIM, SENT_DIM)),
        ("relu1", nn.ReLU(inplace=True)),
        ("linear2", nn.Linear(SENT_DIM, out_features)),
    ]))
    # Zero output layer: the conditional scale/shift start at exactly 0 (identity modulation).
    nn.init.zeros_(mlp.linear2.weight)
    nn.init.zeros_(mlp.linear2.bias)
    return mlp


class TextAffine(nn.Module):
    """Text-conditioned per-channel scale and shift: y = (1 + m*gamma(s)) * h + m*beta(s).

    h = BN(x) with a parameter-free BN (``normalize=True``, SSA-GAN's SSCBN) or x itself (DF-GAN's
    ``affine``). The mask m (B x 1 x H x W, in [0, 1]) decides *where* the text acts; ``mask=None`` is
    m = 1 everywhere, computed without full-size mask products. DF-GAN writes the scale as gamma(s)
    with the last bias initialised to 1: 1 + gamma(s) with a zero bias is the same function, and as
    the offset is a constant, Adam follows the same trajectory.
    """

    def __init__(self, num_features: int, normalize: bool = True):
        super().__init__()
        self.batch_norm2d = SynchronizedBatchNorm2d(num_features, affine=False) if normalize else None
        self.fc_gamma = _text_mlp(num_features)
        self.fc_beta = _text_mlp(num_features)

    def forward(self, x: torch.Tensor, sent: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = x if self.batch_norm2d is None else self.batch_norm2d(x)
        gamma = self.fc_gamma(sent)[:, :, None, None]
        beta = self.fc_beta(sent)[:, :, None, None]
        if mask is None:
            return (gamma + 1) * h + beta
        return (gamma * mask + 1) * h + beta * mask


class SSCBN(TextAffine):
    """Semantic-spatial conditional batch norm (released ``affine``): (1 + m*gamma(s)) * BN(x) + m*beta(s).

    BN has no affine parameters of its own; the text decides scale and shift, and the predicted mask
    decides where they apply.
    """

    def __init__(self, num_features: int):
        super().__init__(num_features, normalize=True)


# Affine layers at a block's two fusion points (before c1, before c2), named as the released
# SSA-GAN / DF-GAN code names them, so the state-dict keys are theirs.
FUSION_LAYERS = {
    "ssacn": (("affine0",), ("affine2",)),  # one SSCBN + ReLU per point
    "dfgan": (("affine0", "affine1"), ("affine2", "affine3")),  # two (affine + LeakyReLU 0.2) per point
}


class SSACNBlock(nn.Module):
    """One generator stage (released name ``G_Block``): shortcut(x) + gate * c2(fuse(c1(fuse(x)))).

    ``fusion`` picks how the sentence enters at each fusion point (``FUSION_LAYERS``): ``ssacn`` is
    the released block, ``dfgan`` DF-GAN's deep fusion (no normalisation, LeakyReLU(0.2)).
    Returns the block output and, if it has a predictor, the mask logits for the next stage,
    computed on the output at this block's resolution (upsampled by NetG afterwards).
    """

    def __init__(self, in_ch: int, out_ch: int, predict_mask: bool = True, fusion: str = "ssacn"):
        super().__init__()
        if fusion not in FUSION_LAYERS:
            raise ValueError(f"fusion must be one of {list(FUSION_LAYERS)}, got {fusion!r}")
        self.learnable_sc = in_ch != out_ch
        self.predict_mask = predict_mask
        self.fusion_points = FUSION_LAYERS[fusion]
        self.c1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.c2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        for names, channels in zip(self.fusion_points, (in_ch, out_ch)):
            for name in names:
                self.add_module(name, SSCBN(channels) if fusion == "ssacn"
                                else TextAffine(channels, normalize=False))
        self.act = nn.ReLU() if fusion == "ssacn" else nn.LeakyReLU(0.2)
        if self.learnable_sc:
            self.c_sc = nn.Conv2d(in_ch, out_ch, 1, 1, 0)
        if predict_mask:
            self.conv_mask = MaskPredictor(out_ch)
        # Listed first in the state dict anyway: a module's own parameters precede its submodules.
        self.gamma = nn.Parameter(torch.zeros(1))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_sc(x) if self.learnable_sc else x

    def fuse(self, h: torch.Tensor, sent: torch.Tensor, mask: Optional[torch.Tensor],
             point: int) -> torch.Tensor:
        for name in self.fusion_points[point]:
            h = self.act(getattr(self, name)(h, sent, mask))
        return h

    def residual(self, x: torch.Tensor, sent: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.c1(self.fuse(x, sent, mask, 0))
        return self.c2(self.fuse(h, sent, mask, 1))

    def forward(self, x: torch.Tensor, sent: torch.Tensor, mask: Optional[torch.Tensor]):
        out = self.shortcut(x) + self.gamma * self.residual(x, sent, mask)
        next_logits = self.conv_mask(out) if self.predict_mask else None
        return out, next_logits


def generator_channels(ngf: int, imsize: int) -> list[tuple[int, int]]:
    """(in, out) channels per block: 8*ngf until the last three blocks taper 8->4->2->1."""
    n = _num_stages(imsize)
    outs = [8] * (n - 3) + [4, 2, 1]
    ins = [8] + outs[:-1]
    return [(ngf * i, ngf * o) for i, o in zip(ins, outs)]


class ConditioningAugmentation(nn.Module):
    """Conditioning augmentation (StackGAN; CSA-GAN's "conditional semantic augmentation").

    Linear(256 -> 4*256) + GLU gives (mu, logvar), each 256-d, as StackGAN++/AttnGAN's ``CA_NET``
    (StackGAN-v1 used Linear(256 -> 2*256) + ReLU, which forces mu >= 0 and sigma >= 1). Training
    returns c = mu + sigma * eps, eps ~ N(0, I); eval returns mu, so sampling depends only on the noise.
    """

    def __init__(self, dim: int = SENT_DIM):
        super().__init__()
        self.fc = nn.Linear(dim, 4 * dim)

    def encode(self, sent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of the sentence's Gaussian, each B x dim."""
        mu, logvar = F.glu(self.fc(sent), dim=1).chunk(2, dim=1)
        return mu, logvar

    def forward(self, sent: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.encode(sent)
        if not self.training:
            return mu
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class NetG(nn.Module):
    """Text-to-image generator. ``forward(noise, sent_emb) -> (image in [-1,1], masks)``.

    ``masks`` lists the post-sigmoid mask consumed by each block (4x4 ... imsize), B x 1 x r x r.
    At imsize 256 (the default) this is exactly the released module; 64 and 128 drop leading
    constant-width blocks for cheap experiments.

    Variants (docs/VARIANTS.md), all off by default:
      * ``ssacn=False``: no mask predictor at all; every fusion is spatially uniform (m = 1) and the
        returned masks are all ones, so mask consumers work unchanged;
      * ``fusion="dfgan"``: DF-GAN's blocks (``FUSION_LAYERS``) and DF-GAN's output head (no BN);
      * ``ca=True``: the sentence passes through ``ca_net`` (ConditioningAugmentation) first.
    """

    def __init__(self, ngf: int = 64, nz: int = 100, imsize: int = 256, ssacn: bool = True,
                 fusion: str = "ssacn", ca: bool = False):
        super().__init__()
        self.ngf, self.nz, self.imsize = ngf, nz, imsize
        self.ssacn, self.fusion = ssacn, fusion
        channels = generator_channels(ngf, imsize)
        # Registration order (conv_mask, fc, blocks, conv_img) is the released key order.
        if ssacn:
            self.conv_mask = MaskPredictor(ngf * 8)
        self.fc = nn.Linear(nz, ngf * 8 * 4 * 4)
        for i, (cin, cout) in enumerate(channels):
            self.add_module(f"block{i}", SSACNBlock(cin, cout, predict_mask=ssacn and i < len(channels) - 1,
                                                    fusion=fusion))
        self.num_blocks = len(channels)
        norm = [SynchronizedBatchNorm2d(ngf)] if fusion == "ssacn" else []
        self.conv_img = nn.Sequential(
            *norm,
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, 3, 3, 1, 1),
            nn.Tanh(),
        )
        # Registered last: every other layer draws the same initial weights as without CA.
        self.ca_net = ConditioningAugmentation() if ca else None

    def blocks(self) -> list[SSACNBlock]:
        return [getattr(self, f"block{i}") for i in range(self.num_blocks)]

    def variant(self) -> dict:
        """The structural variant, in the form ``variant_of`` reads back from a state dict."""
        return {"SSACN": self.ssacn, "FUSION": self.fusion, "CA": self.ca_net is not None}

    @staticmethod
    def variant_of(keys: Iterable[str]) -> Optional[dict]:
        """The variant a state dict (keys without ``module.``) was saved from; None if not a NetG's."""
        keys = set(keys)
        if "fc.weight" not in keys:
            return None
        return {"SSACN": "conv_mask.0.weight" in keys,
                "FUSION": "dfgan" if "block0.affine1.fc_gamma.linear1.weight" in keys else "ssacn",
                "CA": "ca_net.fc.weight" in keys}

    def forward(self, noise: torch.Tensor, sent_emb: torch.Tensor):
        if self.ca_net is not None:
            sent_emb = self.ca_net(sent_emb)
        h = self.fc(noise).view(noise.size(0), 8 * self.ngf, 4, 4)
        logits = self.conv_mask(h) if self.ssacn else None
        masks = []
        for i, block in enumerate(self.blocks()):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            if self.ssacn:
                if i > 0:
                    logits = F.interpolate(logits, size=h.shape[-2:], mode="bilinear", align_corners=True)
                mask = torch.sigmoid(logits)
                masks.append(mask)
            else:
                mask = None
                masks.append(h.new_ones(h.size(0), 1, *h.shape[-2:]))
            h, logits = block(h, sent_emb, mask)
        return self.conv_img(h), masks


class DownBlock(nn.Module):
    """Discriminator stage (released name ``resD``): gated residual, halves the resolution.

    ``conv_s`` exists in every block because the released state dict has it, but it is only
    applied when the channel count changes (so it is dead weight in the last two 256px blocks).
    """

    def __init__(self, fin: int, fout: int):
        super().__init__()
        self.learned_shortcut = fin != fout
        self.gamma = nn.Parameter(torch.zeros(1))
        self.conv_r = nn.Sequential(
            nn.Conv2d(fin, fout, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(fout, fout, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.conv_s = nn.Conv2d(fin, fout, 1, 1, 0)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.learned_shortcut:
            x = self.conv_s(x)
        return F.avg_pool2d(x, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.gamma * self.conv_r(x)


def residual_gates(net: nn.Module) -> list[nn.Parameter]:
    """The zero-initialised scalar gates (``gamma``) of every generator and discriminator block.

    Each block adds ``gamma * residual`` to its shortcut, so at initialisation the networks are their
    shortcut paths alone (nearest-upsampled 4x4 features in G, average-pooled pixels in D); with Adam a
    gate moves at most about one learning rate per step, which is why short runs may give the gates a
    learning rate of their own (``TRAIN.GENERATOR_GATE_LR`` / ``TRAIN.DISCRIMINATOR_GATE_LR``).
    """
    return [m.gamma for m in net.modules() if isinstance(m, (SSACNBlock, DownBlock))]


class CondLogits(nn.Module):
    """One-way conditional head (released name ``D_GET_LOGITS``, attribute ``COND_DNET``).

    The sentence is tiled over the 4x4 feature map and concatenated after the image features.
    """

    def __init__(self, ndf: int):
        super().__init__()
        self.df_dim = ndf
        self.joint_conv = nn.Sequential(
            nn.Conv2d(ndf * 16 + SENT_DIM, ndf * 2, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
        )

    def forward(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        tiled = sent_emb.view(-1, SENT_DIM, 1, 1).expand(-1, -1, features.size(2), features.size(3))
        return self.joint_conv(torch.cat((features, tiled), 1))


def discriminator_channels(ndf: int, imsize: int) -> list[tuple[int, int]]:
    """(in, out) per down block: widths 1,2,4,8,16,16,16 x ndf, one block per halving to 4x4."""
    n = _num_stages(imsize) - 1
    widths = [1, 2, 4, 8, 16, 16, 16][: n + 1]
    return [(ndf * a, ndf * b) for a, b in zip(widths[:-1], widths[1:])]


class NetD(nn.Module):
    """Discriminator trunk; ``forward(img)`` returns 16*ndf x 4 x 4 features, ``COND_DNET`` the logits."""

    def __init__(self, ndf: int = 64, imsize: int = 256):
        super().__init__()
        self.conv_img = nn.Conv2d(3, ndf, 3, 1, 1)
        channels = discriminator_channels(ndf, imsize)
        for i, (fin, fout) in enumerate(channels):
            self.add_module(f"block{i}", DownBlock(fin, fout))
        self.num_blocks = len(channels)
        self.COND_DNET = CondLogits(ndf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_img(x)
        for i in range(self.num_blocks):
            h = getattr(self, f"block{i}")(h)
        return h


# Released class names, for users of the original code.
G_Block = SSACNBlock
resD = DownBlock
D_GET_LOGITS = CondLogits
affine = SSCBN

"""SSA-GAN generator and discriminator, state-dict compatible with the released checkpoints.

Attribute names and registration order are part of the checkpoint format (they are the state-dict
keys and fix the order of random draws when a seeded model is built), so they follow the released
code even where a clearer name exists; classes carry the clearer names. Where the paper and the
released code differ, this follows the code (see the README's "paper vs code" section):
  * features are upsampled nearest-neighbour between blocks; mask *logits* are upsampled bilinearly
    (align_corners=True) and only then squashed with a sigmoid;
  * every residual branch is scaled by a learned scalar gate that starts at 0, and the SSCBN text MLPs
    end in zero-initialised layers, so a fresh generator is a pure shortcut chain.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from sync_batchnorm import SynchronizedBatchNorm2d

SENT_DIM = 256  # hard-coded text size of the released model (TEXT.EMBEDDING_DIM)
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


class SSCBN(nn.Module):
    """Semantic-spatial conditional batch norm: y = (1 + m*gamma(s)) * BN(x) + m*beta(s).

    BN has no affine parameters of its own; the text decides scale and shift, and the predicted mask
    m (B x 1 x H x W, in [0, 1]) decides *where* they apply.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.batch_norm2d = SynchronizedBatchNorm2d(num_features, affine=False)
        self.fc_gamma = _text_mlp(num_features)
        self.fc_beta = _text_mlp(num_features)

    def forward(self, x: torch.Tensor, sent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        normed = self.batch_norm2d(x)
        gamma = self.fc_gamma(sent)[:, :, None, None]
        beta = self.fc_beta(sent)[:, :, None, None]
        return (gamma * mask + 1) * normed + beta * mask


class SSACNBlock(nn.Module):
    """One generator stage (released name ``G_Block``): gated residual of two SSCBN+ReLU+conv.

    Returns the block output and, if it has a predictor, the mask logits for the next stage,
    computed on the output at this block's resolution (upsampled by NetG afterwards).
    """

    def __init__(self, in_ch: int, out_ch: int, predict_mask: bool = True):
        super().__init__()
        self.learnable_sc = in_ch != out_ch
        self.predict_mask = predict_mask
        self.c1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.c2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.affine0 = SSCBN(in_ch)
        self.affine2 = SSCBN(out_ch)
        if self.learnable_sc:
            self.c_sc = nn.Conv2d(in_ch, out_ch, 1, 1, 0)
        if predict_mask:
            self.conv_mask = MaskPredictor(out_ch)
        # Listed first in the state dict anyway: a module's own parameters precede its submodules.
        self.gamma = nn.Parameter(torch.zeros(1))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_sc(x) if self.learnable_sc else x

    def residual(self, x: torch.Tensor, sent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.affine0(x, sent, mask))
        h = self.c1(h)
        h = F.relu(self.affine2(h, sent, mask))
        return self.c2(h)

    def forward(self, x: torch.Tensor, sent: torch.Tensor, mask: torch.Tensor):
        out = self.shortcut(x) + self.gamma * self.residual(x, sent, mask)
        next_logits = self.conv_mask(out) if self.predict_mask else None
        return out, next_logits


def generator_channels(ngf: int, imsize: int) -> list[tuple[int, int]]:
    """(in, out) channels per block: 8*ngf until the last three blocks taper 8->4->2->1."""
    n = _num_stages(imsize)
    outs = [8] * (n - 3) + [4, 2, 1]
    ins = [8] + outs[:-1]
    return [(ngf * i, ngf * o) for i, o in zip(ins, outs)]


class NetG(nn.Module):
    """Text-to-image generator. ``forward(noise, sent_emb) -> (image in [-1,1], masks)``.

    ``masks`` lists the post-sigmoid mask consumed by each block (4x4 ... imsize), B x 1 x r x r.
    At imsize 256 (the default) this is exactly the released module; 64 and 128 drop leading
    constant-width blocks for cheap experiments.
    """

    def __init__(self, ngf: int = 64, nz: int = 100, imsize: int = 256):
        super().__init__()
        self.ngf, self.nz, self.imsize = ngf, nz, imsize
        channels = generator_channels(ngf, imsize)
        # Registration order (conv_mask, fc, blocks, conv_img) is the released key order.
        self.conv_mask = MaskPredictor(ngf * 8)
        self.fc = nn.Linear(nz, ngf * 8 * 4 * 4)
        for i, (cin, cout) in enumerate(channels):
            self.add_module(f"block{i}", SSACNBlock(cin, cout, predict_mask=i < len(channels) - 1))
        self.num_blocks = len(channels)
        self.conv_img = nn.Sequential(
            SynchronizedBatchNorm2d(ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, 3, 3, 1, 1),
            nn.Tanh(),
        )

    def blocks(self) -> list[SSACNBlock]:
        return [getattr(self, f"block{i}") for i in range(self.num_blocks)]

    def forward(self, noise: torch.Tensor, sent_emb: torch.Tensor):
        h = self.fc(noise).view(noise.size(0), 8 * self.ngf, 4, 4)
        logits = self.conv_mask(h)
        masks = []
        for i, block in enumerate(self.blocks()):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
                logits = F.interpolate(logits, size=h.shape[-2:], mode="bilinear", align_corners=True)
            mask = torch.sigmoid(logits)
            masks.append(mask)
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

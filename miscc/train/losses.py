"""Losses: DAMSM word/sentence matching (AttnGAN), the hinge GAN terms and MA-GP.

Functions of tensors and numbers, no optimiser steps and no configuration: the DAMSM smoothing
constants are arguments (``DAMSMSmoothing``; defaults are the released GAN-time values, the entry points
pass ``TRAIN.SMOOTH``). ``damsm_terms`` is the one DAMSM term of GAN training, fine-tuning and pretraining;
it gathers the global batch under torchrun.
``words_loss`` is vectorised over the batch; ``tests/test_losses.py`` pins it to a per-sample loop
written the way the original computes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from miscc.run import distributed

ClassIds = Optional[Union[np.ndarray, torch.Tensor, Sequence[int]]]


def cosine_similarity(x1: torch.Tensor, x2: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """sum(x1*x2) / max(|x1||x2|, eps) along ``dim`` (the original's definition).

    The original also squeezed the result; its callers reshaped it right after, and a squeeze would
    drop a batch or word axis of size 1, so it is left out.
    """
    w12 = torch.sum(x1 * x2, dim)
    w1 = torch.norm(x1, 2, dim)
    w2 = torch.norm(x2, 2, dim)
    return w12 / (w1 * w2).clamp(min=eps)


def func_attention(query: torch.Tensor, context: torch.Tensor, gamma1: float):
    """Word-to-region attention. query B x D x T, context B x D x H x W.

    Returns the attended context (B x D x T) and the attention (B x T x H x W). The softmax runs
    first over words for each region, then (sharpened by gamma1) over regions for each word.
    """
    batch, _, ih, iw = context.shape
    context = context.reshape(batch, -1, ih * iw)
    attn = torch.bmm(context.transpose(1, 2), query)  # B x N x T
    attn = F.softmax(attn, dim=2)
    attn = F.softmax(attn.transpose(1, 2) * gamma1, dim=2)  # B x T x N
    weighted = torch.bmm(context, attn.transpose(1, 2))  # B x D x T
    return weighted, attn.reshape(batch, -1, ih, iw)


def _same_class_mask(class_ids: ClassIds, device: torch.device) -> Optional[torch.Tensor]:
    """mask[i, j] = class_i == class_j and i != j: other captions of the same class are not negatives."""
    if class_ids is None:
        return None
    ids = torch.as_tensor(np.asarray(class_ids), dtype=torch.int64, device=device)
    mask = ids[:, None] == ids[None, :]
    return mask & ~torch.eye(len(ids), dtype=torch.bool, device=device)


@dataclass(frozen=True)
class DAMSMSmoothing:
    """TRAIN.SMOOTH: attention sharpness over regions (gamma1; 4 when pretraining DAMSM, 5 at GAN time),
    word aggregation (gamma2), similarity scale (gamma3) and the weight of the DAMSM terms (lambda_)."""
    gamma1: float = 5.0
    gamma2: float = 5.0
    gamma3: float = 10.0
    lambda_: float = 1.0


def words_loss(img_features: torch.Tensor, words_emb: torch.Tensor, labels: Optional[torch.Tensor],
               cap_lens: torch.Tensor, class_ids: ClassIds, batch_size: int,
               gamma1: float = 5.0, gamma2: float = 5.0, gamma3: float = 10.0):
    """Word-level DAMSM loss between B images (B x D x H x W) and B captions (B x D x T).

    S[j, i] = ln sum_t exp(gamma2 * cos(word_it, c_ijt)) where c_ijt is image j's regions attended by
    word t of caption i (no 1/gamma2 power: the released code, not the paper). Returns
    (CE over images, CE over captions, att_maps) with att_maps[i] of shape 1 x L_i x H x W; the losses
    are None when ``labels`` is None.
    """
    g1, g2, g3 = float(gamma1), float(gamma2), float(gamma3)
    b, d, ih, iw = img_features.shape
    t, n = words_emb.size(2), ih * iw
    lens = torch.as_tensor(cap_lens, device=words_emb.device).long()
    context = img_features.reshape(b, d, n)  # [j, d, n]
    valid = torch.arange(t, device=words_emb.device)[None, :] < lens[:, None]  # [i, t]

    # All (image j, caption i) pairs at once in the layout [j, n, (i t)]: the scores are one GEMM of
    # every region against every word and feed the attended-context bmm without a permuted copy.
    words = words_emb.transpose(0, 1).reshape(d, b * t)  # [d, (i t)]
    scores = (context.transpose(1, 2).reshape(b * n, d) @ words).view(b, n, b, t)
    pad = torch.zeros(b, t, dtype=scores.dtype, device=scores.device).masked_fill_(~valid, float("-inf"))
    attn = F.softmax(scores + pad, dim=3)  # over caption i's own words
    attn = F.softmax(attn * g1, dim=1)  # over regions: [j, n, i, t]
    weighted = torch.bmm(context, attn.view(b, n, b * t)).view(b, d, b, t)  # [j, d, i, t]

    row_sim = cosine_similarity(words_emb.transpose(0, 1)[None], weighted, dim=1)  # [j, i, t]
    row_sim = torch.exp(row_sim * g2) * valid[None]
    similarities = torch.log(row_sim.sum(dim=2)) * g3  # [image j, caption i]

    mask = _same_class_mask(class_ids, similarities.device)
    if mask is not None:
        similarities = similarities.masked_fill(mask, float("-inf"))

    diag = torch.arange(b, device=attn.device)
    own = attn[diag, :, diag]  # [i, n, t]: caption i over its own image i
    att_maps = [own[i, :, : int(lens[i])].t().reshape(1, -1, ih, iw) for i in range(b)]
    if labels is None:
        return None, None, att_maps
    return F.cross_entropy(similarities, labels), F.cross_entropy(similarities.t(), labels), att_maps


def sent_loss(cnn_code: torch.Tensor, rnn_code: torch.Tensor, labels: Optional[torch.Tensor],
              class_ids: ClassIds, batch_size: int, eps: float = 1e-8,
              gamma3: float = 10.0):
    """Sentence-level DAMSM loss: CE over gamma3 * cosine(image code i, sentence code j)."""
    g3 = float(gamma3)
    scores = cnn_code @ rnn_code.t()
    norms = cnn_code.norm(2, dim=1, keepdim=True) @ rnn_code.norm(2, dim=1, keepdim=True).t()
    scores = scores / norms.clamp(min=eps) * g3
    mask = _same_class_mask(class_ids, scores.device)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    if labels is None:
        return None, None
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.t(), labels)


class DAMSMTerms(NamedTuple):
    """The DAMSM matching losses of a batch: ``word`` = w0 + w1, ``sent`` = s0 + s1 (each the cross-entropy
    over images plus the one over captions)."""
    word: torch.Tensor
    sent: torch.Tensor

    def weighted(self, lambda_: float) -> torch.Tensor:
        """LAMBDA * word + LAMBDA * sentence: the value of the original's ``DAMSM_loss`` (the GAN's term);
        pretraining sums the two unweighted."""
        lam = float(lambda_)
        return self.word * lam + self.sent * lam


def damsm_terms(region_features: torch.Tensor, cnn_code: torch.Tensor, words_emb: torch.Tensor,
                sent_emb: torch.Tensor, cap_lens: torch.Tensor, class_ids: ClassIds,
                smoothing: DAMSMSmoothing = DAMSMSmoothing()) -> DAMSMTerms:
    """The DAMSM losses of this process's images (encoded) against its captions, over the global batch.

    Under torchrun every rank's images and captions are gathered first (``miscc/run/distributed.py``), so
    each caption competes with the images of all ranks as in one process with the whole batch; in one
    process the gathering is the identity. Caption i belongs to image i; other captions of an image's
    class are not counted as negatives.
    """
    region_features, cnn_code = map(distributed.all_gather_batch, (region_features, cnn_code))
    words_emb, sent_emb, cap_lens, class_ids = distributed.all_gather_captions(words_emb, sent_emb, cap_lens,
                                                                               class_ids)
    batch_size = words_emb.size(0)
    labels = torch.arange(batch_size, device=words_emb.device)
    w0, w1, _ = words_loss(region_features, words_emb, labels, cap_lens, class_ids, batch_size,
                           smoothing.gamma1, smoothing.gamma2, smoothing.gamma3)
    s0, s1 = sent_loss(cnn_code, sent_emb, labels, class_ids, batch_size, gamma3=smoothing.gamma3)
    return DAMSMTerms(w0 + w1, s0 + s1)


# --- hinge GAN terms (one-way discriminator) ---------------------------------------------------

def d_hinge_real(logits: torch.Tensor) -> torch.Tensor:
    """Matched real pairs should score >= 1."""
    return F.relu(1.0 - logits).mean()


def d_hinge_fake(logits: torch.Tensor) -> torch.Tensor:
    """Fake images and mismatched (real image, wrong sentence) pairs should score <= -1."""
    return F.relu(1.0 + logits).mean()


def g_hinge(logits: torch.Tensor) -> torch.Tensor:
    return -logits.mean()


def ma_gp(logits_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], real_imgs: torch.Tensor,
          sent_emb: torch.Tensor, k: float = 2.0, p: float = 6.0) -> torch.Tensor:
    """Matching-aware zero-centred gradient penalty on real matched pairs.

    k * mean_i ||(d logit / d image_i, d logit / d sent_i)||_2 ** p, with ``logits_fn(img, sent)`` the
    full conditional discriminator. The graph is kept (create_graph) so the penalty trains D.
    """
    imgs = real_imgs.detach().requires_grad_(True)
    sent = sent_emb.detach().requires_grad_(True)
    out = logits_fn(imgs, sent)
    g_img, g_sent = torch.autograd.grad(out, (imgs, sent), grad_outputs=torch.ones_like(out),
                                        retain_graph=True, create_graph=True)
    grad = torch.cat((g_img.reshape(g_img.size(0), -1), g_sent.reshape(g_sent.size(0), -1)), dim=1)
    norm = torch.sqrt(torch.sum(grad ** 2, dim=1))
    return k * torch.mean(norm ** p)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) of conditioning augmentation: batch mean of the per-sample sum.

    0.5 * sum_d(mu^2 + sigma^2 - 1 - log sigma^2). StackGAN/AttnGAN's ``KL_loss`` also averages over
    the d dimensions (= this / d), so their coefficient c corresponds to TRAIN.KL_WEIGHT = c / d.
    """
    return 0.5 * torch.sum(mu.pow(2) + logvar.exp() - 1.0 - logvar, dim=1).mean()

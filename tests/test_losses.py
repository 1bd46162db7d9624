"""DAMSM, hinge and MA-GP losses pinned against straightforward re-statements of the original."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from miscc.train.losses import (DAMSMSmoothing, cosine_similarity, d_hinge_fake, d_hinge_real, damsm_terms,
                          func_attention, g_hinge, ma_gp, sent_loss, words_loss)

G1, G2, G3 = 5.0, 5.0, 10.0


def loop_words_loss(img_features, words_emb, labels, cap_lens, class_ids, batch_size):
    """The original algorithm: one caption at a time against every image."""
    masks, att_maps, sims = [], [], []
    for i in range(batch_size):
        if class_ids is not None:
            mask = (class_ids == class_ids[i]).astype(np.uint8)
            mask[i] = 0
            masks.append(mask.reshape((1, -1)))
        n = int(cap_lens[i])
        word = words_emb[i, :, :n].unsqueeze(0).repeat(batch_size, 1, 1)
        wei, attn = func_attention(word, img_features, G1)
        att_maps.append(attn[i].unsqueeze(0))
        word = word.transpose(1, 2).reshape(batch_size * n, -1)
        wei = wei.transpose(1, 2).reshape(batch_size * n, -1)
        # Written out, not ``cosine_similarity``: the reference must not share it with words_loss.
        row = ((word * wei).sum(1) / (word.norm(2, dim=1) * wei.norm(2, dim=1)).clamp(min=1e-8)).view(batch_size, n)
        sims.append(torch.log(torch.exp(row * G2).sum(dim=1, keepdim=True)))
    sims = torch.cat(sims, 1) * G3
    if class_ids is not None:
        sims = sims.masked_fill(torch.from_numpy(np.concatenate(masks, 0)).bool(), float("-inf"))
    return F.cross_entropy(sims, labels), F.cross_entropy(sims.t(), labels), att_maps


def damsm_batch(b=6, d=16, t=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, d, 5, 5, generator=g)
    lens = torch.sort(torch.randint(1, t + 1, (b,), generator=g), descending=True)[0]
    lens[0] = t
    words = torch.randn(b, d, t, generator=g)
    for i, n in enumerate(lens):
        words[i, :, n:] = 0  # the RNN pads with zeros
    return feats, words, lens, torch.arange(b)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
@pytest.mark.parametrize("class_ids", [None, np.array([3, 1, 3, 2, 1, 5])])
def test_vectorised_words_loss_equals_the_per_sample_loop(class_ids, dtype, tol):
    # float64 isolates the algorithm (1e-6 asked); float32 differs only by summation order (~1 ulp
    # of a loss around 4, amplified by gamma3 = 10).
    feats, words, lens, labels = damsm_batch()
    feats, words = feats.to(dtype).requires_grad_(True), words.to(dtype).requires_grad_(True)
    w0, w1, maps = words_loss(feats, words, labels, lens, class_ids, 6)
    r0, r1, ref_maps = loop_words_loss(feats, words, labels, lens, class_ids, 6)
    assert abs(w0.item() - r0.item()) < tol and abs(w1.item() - r1.item()) < tol
    for a, b, n in zip(maps, ref_maps, lens):
        assert a.shape == (1, int(n), 5, 5) and torch.allclose(a, b, atol=tol)
    grads = torch.autograd.grad(w0 + w1, (feats, words))
    grads_ref = torch.autograd.grad(r0 + r1, (feats, words))
    for g, g_ref in zip(grads, grads_ref):
        assert torch.isfinite(g).all() and torch.allclose(g, g_ref, atol=tol)


@pytest.mark.parametrize("b,t", [(1, 4), (3, 1), (1, 1)])
def test_words_loss_keeps_its_shapes_for_one_caption_or_one_word(b, t):
    feats, words, lens, labels = damsm_batch(b=b, t=t)
    w0, w1, maps = words_loss(feats, words, labels, lens, None, b)
    r0, r1, _ = loop_words_loss(feats, words, labels, lens, None, b)
    assert torch.allclose(w0, r0, atol=1e-5) and torch.allclose(w1, r1, atol=1e-5)
    assert [m.shape for m in maps] == [(1, int(n), 5, 5) for n in lens]


def test_words_loss_gradient_reaches_only_real_words():
    feats, words, lens, labels = damsm_batch()
    words.requires_grad_(True)
    w0, w1, _ = words_loss(feats, words, labels, lens, None, 6)
    g, = torch.autograd.grad(w0 + w1, words)
    assert torch.isfinite(g).all()
    assert not g[-1, :, int(lens[-1]):].any()


def test_same_class_captions_are_not_negatives():
    feats, words, lens, labels = damsm_batch()
    # Items 0 and 2 share a class: changing item 2 must not move the loss terms of item 0's
    # image and caption rows, because that pair is masked out of each other's softmax.
    class_ids = np.array([7, 1, 7, 2, 3, 4])
    code_img, code_txt = torch.randn(6, 8), torch.randn(6, 8)
    s0, s1 = sent_loss(code_img, code_txt, labels, class_ids, 6)
    scores = F.normalize(code_img, dim=1) @ F.normalize(code_txt, dim=1).t() * G3
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[0, 2] = mask[2, 0] = True
    scores = scores.masked_fill(mask, float("-inf"))
    assert torch.allclose(s0, F.cross_entropy(scores, labels), atol=1e-6)
    assert torch.allclose(s1, F.cross_entropy(scores.t(), labels), atol=1e-6)
    unmasked, _ = sent_loss(code_img, code_txt, labels, None, 6)
    assert not torch.allclose(unmasked, s0)


def test_sent_loss_is_symmetric_cross_entropy_of_scaled_cosines():
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    labels = torch.arange(4)
    s0, s1 = sent_loss(a, b, labels, None, 4)
    cos = torch.tensor([[F.cosine_similarity(a[i], b[j], dim=0).item() for j in range(4)] for i in range(4)])
    assert torch.allclose(s0, F.cross_entropy(cos * G3, labels), atol=1e-5)
    assert torch.allclose(s1, F.cross_entropy(cos.t() * G3, labels), atol=1e-5)


def test_damsm_loss_sums_word_and_sentence_terms():
    feats, words, lens, labels = damsm_batch()
    sent = torch.randn(6, 16)
    code = torch.randn(6, 16)
    class_ids = np.array([1, 2, 1, 3, 4, 5])
    smoothing = DAMSMSmoothing(gamma1=4.0, gamma2=3.0, gamma3=7.0, lambda_=0.5)
    total = damsm_terms(feats, code, words, sent, lens, class_ids, smoothing).weighted(smoothing.lambda_)
    w0, w1, _ = words_loss(feats, words, labels, lens, class_ids, 6, gamma1=4.0, gamma2=3.0, gamma3=7.0)
    s0, s1 = sent_loss(code, sent, labels, class_ids, 6, gamma3=7.0)
    assert torch.allclose(total, 0.5 * (w0 + w1 + s0 + s1))
    default = damsm_terms(feats, code, words, sent, lens, class_ids).weighted(DAMSMSmoothing().lambda_)
    assert not torch.allclose(default, total)  # the smoothing constants reach both terms


def test_hinge_terms():
    logits = torch.tensor([[2.0], [0.5], [-3.0]])
    assert d_hinge_real(logits).item() == pytest.approx((0 + 0.5 + 4.0) / 3)
    assert d_hinge_fake(logits).item() == pytest.approx((3.0 + 1.5 + 0) / 3)
    assert g_hinge(logits).item() == pytest.approx(0.5 / 3)


def test_ma_gp_matches_a_hand_computed_value():
    # logit(x, s) = sum(x^2) + w.s  ->  d/dx = 2x, d/ds = w; penalty 2 * mean(||(2x, w)||^6).
    x = torch.tensor([[[[1.0, 2.0]]], [[[0.0, -1.0]]]])  # B=2, 1x1x2 "images"
    w = torch.tensor([0.5, -0.5, 1.0])
    s = torch.randn(2, 3)
    fn = lambda img, sent: (img ** 2).flatten(1).sum(1) + sent @ w  # noqa: E731
    norms = [math.sqrt(4 * 1 + 4 * 4 + 1.5), math.sqrt(0 + 4 * 1 + 1.5)]
    expected = 2.0 * (norms[0] ** 6 + norms[1] ** 6) / 2
    assert ma_gp(fn, x, s).item() == pytest.approx(expected, rel=1e-6)


def test_ma_gp_trains_the_discriminator():
    lin = torch.nn.Linear(6, 1)
    fn = lambda img, sent: lin(torch.cat((img.flatten(1), sent), 1))  # noqa: E731
    ma_gp(fn, torch.randn(3, 1, 2, 2), torch.randn(3, 2)).backward()
    expected = 2.0 * 6 * lin.weight.norm() ** 4 * lin.weight  # d/dw of 2 * ||w||^6
    assert torch.allclose(lin.weight.grad, expected, rtol=1e-5)


def test_cosine_similarity_is_torch_cosine_and_keeps_size_one_axes():
    a, b = torch.randn(5, 8, 1, dtype=torch.float64), torch.randn(5, 8, 1, dtype=torch.float64)
    ours = cosine_similarity(a, b, dim=1)
    assert ours.shape == (5, 1)
    assert torch.allclose(ours, F.cosine_similarity(a, b, dim=1), atol=1e-12)

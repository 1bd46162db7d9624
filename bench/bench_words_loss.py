"""DAMSM word loss, forward + backward: the vectorised ``miscc.train.losses.words_loss`` vs the per-caption loop.

    python bench/bench_words_loss.py [--batch 24] [--words 18] [--regions 17] [--repeats 20] [--threads N]
                                     [--gpu -1] [--json PATH]

Inputs are what the GAN step feeds it: B x 256 x 17 x 17 region features (299-px DAMSM input), B x 256 x T
word features with T = the longest caption and zero padding after each caption's length (lengths
sorted, longest first), CUB-like class ids (some shared, masked as non-negatives). Both versions get
the same tensors; the two run interleaved ``--repeats`` times after 3 warm-up runs each, and the table
reports the fastest and the median run and the largest difference of their losses and input gradients.

Both do the same matrix products: the loop multiplies each caption's L_i words with every image, the
vectorised version all B x T (padded) words at once. The GFLOP column counts those products (forward
and backward for both inputs) so that the speed-up can be read against the arithmetic: on a CPU the
products bound both versions and the vectorised one wins by dropping the per-caption overhead, on a
GPU the loop is also bound by its ~B times more kernel launches. A third row times those products
alone on the unpadded words (no softmax, no cosine): no implementation of the loss can beat it, so
loop time / its time is the largest speed-up this machine allows.
"""
from __future__ import annotations

import argparse
import statistics

import torch

import common
from miscc.train.losses import words_loss


def inputs(batch: int, words: int, regions: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(batch, 256, regions, regions, generator=g)
    lens = torch.sort(torch.randint(5, words + 1, (batch,), generator=g), descending=True)[0]
    lens[0] = words
    emb = torch.randn(batch, 256, words, generator=g).tanh()  # LSTM outputs are in (-1, 1)
    for i, n in enumerate(lens):
        emb[i, :, n:] = 0
    class_ids = torch.randint(1, batch // 2 + 1, (batch,), generator=g).numpy()
    return feats.to(device), emb.to(device), lens.to(device), class_ids


def run(fn, feats, emb, lens, class_ids, device):
    f, e = feats.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    labels = torch.arange(f.size(0), device=device)

    def once():
        w0, w1, _ = fn(f, e, labels, lens, class_ids, f.size(0))
        loss = w0 + w1
        gf, ge = torch.autograd.grad(loss, (f, e))
        return loss.detach(), gf, ge
    return once


def products_only(feats: torch.Tensor, emb: torch.Tensor, lens: torch.Tensor):
    """The six matrix products of the unpadded computation and nothing else: a lower bound.

    Forward: scores (all regions x all real words) and the attended context; backward: the two input
    gradients of each. Any implementation of the loss does at least this arithmetic, so the loop's
    time over this one's is the most a rewrite can gain at this machine's matrix-product speed.
    """
    b, d = feats.shape[:2]
    regions = feats.reshape(b, d, -1)
    n = regions.size(2)
    words = torch.cat([emb[i, :, :int(k)] for i, k in enumerate(lens)], dim=1)  # D x sum(L)
    flat = regions.transpose(1, 2).reshape(b * n, d)
    attn = torch.rand(b, n, words.size(1), device=feats.device)
    grad_attended = torch.rand(b, d, words.size(1), device=feats.device)

    def once():
        scores = flat @ words  # forward: B*N x sum(L)
        attended = torch.bmm(regions, attn)  # forward: B x D x sum(L)
        return (scores @ words.t(), flat.t() @ scores,  # backward of the scores: regions, words
                torch.bmm(grad_attended, attn.transpose(1, 2)),  # backward of attended: regions
                torch.bmm(regions.transpose(1, 2), grad_attended), attended)  # ... and attention
    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--words", type=int, default=18, help="T, the longest caption")
    parser.add_argument("--regions", type=int, default=17, help="H = W of the region features")
    parser.add_argument("--repeats", type=int, default=20)
    common.add_device_args(parser)
    common.add_json_arg(parser)
    args = parser.parse_args()
    device = common.apply_device_args(args)
    data = inputs(args.batch, args.words, args.regions, device)

    lens = data[2]
    b, d, n = args.batch, 256, args.regions ** 2
    # 2 products (scores, attended context) x 2 flops x 3 (forward + two backward products)
    gflop = {"loop": 12 * b * n * d * int(lens.sum()) / 1e9, "vec": 12 * b * n * d * b * args.words / 1e9,
             "bound": 12 * b * n * d * int(lens.sum()) / 1e9}
    impls = {"per-caption loop (original algorithm)": run(common.loop_words_loss, *data, device),
             "vectorised (miscc.train.losses.words_loss)": run(words_loss, *data, device),
             "(bound) the 6 matrix products alone, unpadded": products_only(*data[:3])}
    for once in impls.values():
        for _ in range(3):
            common.timed(once, device)
    # Interleaved, and the minimum reported: on a shared machine other processes only ever add time.
    times: dict = {name: [] for name in impls}
    outs = {}
    for _ in range(args.repeats):
        for name, once in impls.items():
            t, outs[name] = common.timed(once, device)
            times[name].append(t)
    results = {name: (min(times[name]), statistics.median(times[name]), outs[name]) for name in impls}

    print(f"machine: {common.machine()}; device {device}")
    print(f"words_loss forward+backward, B={args.batch}, T={args.words}, {args.regions}x{args.regions} regions, "
          f"D=256, {args.repeats} interleaved runs each\n")
    print("| implementation | best ms | median ms | speed-up (best) | matmul GFLOP | GFLOP/s (best) |")
    print("|---|---:|---:|---:|---:|---:|")
    (loop_t, _, ref), (vec_t, _, out), (bound_t, _, _) = results.values()
    for (name, (t, med, _)), flop in zip(results.items(), gflop.values()):
        print(f"| {name} | {t * 1000:.1f} | {med * 1000:.1f} | {loop_t / t:.1f}x | {flop:.2f} | {flop / t:.1f} |")
    diffs = [(a - b).abs().max().item() for a, b in zip(out, ref)]
    print(f"\nmax |difference| vectorised vs loop: loss {diffs[0]:.2e} (loss {ref[0].item():.4f}), "
          f"d/d(regions) {diffs[1]:.2e}, d/d(words) {diffs[2]:.2e}")
    print(f"\nsummary: vectorised words_loss is {loop_t / vec_t:.1f}x faster than the per-caption loop "
          f"({vec_t * 1000:.1f} vs {loop_t * 1000:.1f} ms, B={args.batch}, {device.type}, "
          f"{torch.get_num_threads()} thread(s)); same loss "
          f"to {diffs[0]:.1e}; the matrix products alone bound any implementation at "
          f"{loop_t / bound_t:.1f}x.")
    common.write_json(args.json, {
        "batch": args.batch, "words": args.words, "regions": args.regions, "device": str(device),
        "loop_ms": loop_t * 1000, "vectorised_ms": vec_t * 1000, "bound_ms": bound_t * 1000,
        "speedup": loop_t / vec_t, "max_loss_difference": diffs[0], "max_grad_difference": max(diffs[1:])})
    if diffs[0] > 1e-4 * abs(ref[0].item()) or max(diffs[1:]) > 1e-4:
        raise SystemExit(f"the vectorised words_loss disagrees with the loop (loss {diffs[0]:.1e}, gradients "
                         f"{max(diffs[1:]):.1e}): the timings above compare different computations.")


if __name__ == "__main__":
    main()

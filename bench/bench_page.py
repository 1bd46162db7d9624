"""Response time of the interactive page: one POST /api/generate, N images + the masks of every stage.

    python bench/bench_page.py [--sizes 64:8 256:64] [--images 8] [--rounds 5] [--threads N] [--gpu -1]

For each generator size (``image size:NF``; 64:8 is cfg/demo.yml, 256:64 the released model) a
random generator (gates opened, as in bench_sampling.py, so images have texture) and a random text
encoder are loaded into ``miscc.page.model.PageModel`` behind a real ``PageServer`` on 127.0.0.1, and one
caption of 12 words is posted ``--rounds`` times after the model is loaded (PageModel warms up on one
image). Reported: the HTTP round trip (what the page waits for: generation, PNG + base64 encoding of
images and masks, JSON, transfer) and the generator part alone; fastest and median round.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request

import torch

import common
from DAMSM import RNN_ENCODER
from miscc.page.model import PageModel
from miscc.page.server import PageServer

N_WORDS = 60


def page_model(size: int, nf: int, device: torch.device) -> PageModel:
    netG = common.text_following_generator(nf, size)
    wordtoix = {f"w{i}": i for i in range(N_WORDS)}
    return PageModel(netG.to(device), RNN_ENCODER(N_WORDS, nhidden=256).to(device), device, wordtoix,
                     18, [], 100, {"netG": f"random NetG {size} px NF {nf}"})


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url + "api/generate", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["64:8", "256:64"], help="image size:NF pairs")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=0,
                        help="images per generator call (0: the page's choice, 8, or 1 for a slow model)")
    common.add_device_args(parser)
    args = parser.parse_args()
    device = common.apply_device_args(args)
    print(common.machine())
    print("| generator | images | batch | HTTP round trip best / median (s) | generator part best / median (s) "
          "| answer size |")
    print("|---|---|---|---|---|---|")
    caption = " ".join(f"w{i}" for i in range(3, 15))
    for spec in args.sizes:
        size, nf = (int(x) for x in spec.split(":"))
        start = time.perf_counter()
        model = page_model(size, nf, device)
        model.batch = args.batch or model.batch
        server = PageServer(model, port=0, quiet=True)
        load = time.perf_counter() - start
        server.start_background()
        trips, gens = [], []
        try:
            for r in range(args.rounds):
                start = time.perf_counter()
                answer = post(server.url, {"captions": [caption], "n": args.images, "seed": r})
                trips.append(time.perf_counter() - start)
                gens.append(answer["generate_seconds"])
        finally:
            server.shutdown()
            server.server_close()
        kib = len(json.dumps(answer)) / 1024
        print(f"| {size} px, NF {nf} (built + warm-up {load:.2f} s) | {args.images} + {len(answer['stage_sizes'])} "
              f"masks each | {model.batch} | {min(trips):.3f} / {statistics.median(trips):.3f} | {min(gens):.3f} / "
              f"{statistics.median(gens):.3f} | {kib:.0f} KiB |")


if __name__ == "__main__":
    main()

"""Multi-process runs on CPU (gloo): SyncBN, gradient averaging, global DAMSM losses, real torchrun runs.

  * ``test_two_ranks_compute_what_one_process_computes_on_the_whole_batch``: 2 processes
    (torch.multiprocessing) each take half of a batch; SyncBatchNorm outputs/statistics/gradients,
    a DDP-wrapped NetG's averaged gradients and NetD's explicitly all-reduced hinge + MA-GP gradients
    must equal a single process on the concatenated batch.
  * ``test_two_rank_damsm_step_equals_one_process_on_the_whole_batch``: the same for a DAMSM
    pretraining step (gathered features, global losses, summed gradients, SyncBN Inception), in float64.
  * ``test_torchrun_two_processes``: ``python -m torch.distributed.run --nproc_per_node=2
    main_finetune.py`` (through a launcher that only records who writes what and dumps each rank's
    final state) on the synthetic birds; ``test_torchrun_damsm_pretraining`` and
    ``test_torchrun_sampling_writes_what_one_process_writes`` run DAMSM.py and ``main.py --sample``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from DAMSM import CNN_ENCODER, RNN_ENCODER
from datasets import TextDataset, prepare_data
from miscc.run import distributed
from miscc.run.checkpoint import load_checkpoint, save_released
from miscc.train.damsm import damsm_batch_losses
from miscc.train.losses import d_hinge_real, ma_gp
from model import NetD, NetG
from sync_batchnorm import SyncBatchNorm, SynchronizedBatchNorm2d, convert_sync_batchnorm
from tests.helpers import bird_set, open_gates, tiny_opts

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # several processes (gloo, torchrun) per test
WORLD = 2
HALF = 3  # samples per rank


def _bn_pair() -> nn.Sequential:
    torch.manual_seed(0)
    bn = nn.Sequential(nn.BatchNorm2d(5), SynchronizedBatchNorm2d(5, affine=False))
    with torch.no_grad():
        bn[0].weight.uniform_(0.5, 1.5)
        bn[0].bias.normal_()
    return bn


def _bn_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(WORLD * HALF, 5, 4, 4, generator=g) * 3 + 2  # |mean| comparable to std
    return x, torch.randn(x.shape, generator=g)


def _netg() -> NetG:
    torch.manual_seed(2)
    return open_gates(NetG(4, 100, imsize=64))  # so every BN is on the gradient path


def _netd() -> NetD:
    torch.manual_seed(3)
    return open_gates(NetD(4, imsize=64))


def _gan_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    n = WORLD * HALF
    return torch.randn(n, 100, generator=g), torch.randn(n, 256, generator=g), \
        torch.rand(n, 3, 64, 64, generator=g) * 2 - 1


def _d_loss(d: NetD, imgs: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
    def logits(x, s):
        return d.COND_DNET(d(x), s)
    return d_hinge_real(logits(imgs, sent)) + ma_gp(logits, imgs, sent)


def _grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        part = slice(rank * HALF, (rank + 1) * HALF)
        res: dict = {}

        bn = convert_sync_batchnorm(_bn_pair())
        assert all(isinstance(m, SyncBatchNorm) for m in bn)
        x, w = _bn_data()
        xs = x[part].clone().requires_grad_(True)
        y = bn(xs)
        (y * w[part]).sum().backward()
        res["bn"] = {"y": y.detach(), "x_grad": xs.grad, "w_grad": bn[0].weight.grad,
                     "b_grad": bn[0].bias.grad, "state": bn.state_dict()}

        netg = convert_sync_batchnorm(_netg())
        ddp = distributed.DistributedDataParallel(netg)
        noise, sent, real = _gan_data()
        fake, _ = ddp(noise[part], sent[part])
        fake.square().mean().backward()
        res["g"] = {"grads": _grads(netg), "state": netg.state_dict()}

        netd = _netd()
        _d_loss(netd, real[part], sent[part]).backward()
        distributed.all_reduce_grads(netd.parameters())
        res["d"] = {"grads": _grads(netd)}
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _close(a: torch.Tensor, b: torch.Tensor, what: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    assert torch.allclose(a, b, rtol=rtol, atol=atol), f"{what}: max diff {(a - b).abs().max().item():.3g}"


def test_two_ranks_compute_what_one_process_computes_on_the_whole_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    # SyncBatchNorm == BatchNorm over the concatenated batch: outputs, input and affine gradients,
    # running statistics (identical on both ranks).
    bn = _bn_pair()
    x, w = _bn_data()
    x.requires_grad_(True)
    y = bn(x)
    (y * w).sum().backward()
    for r, res in enumerate(ranks):
        part = slice(r * HALF, (r + 1) * HALF)
        _close(res["bn"]["y"], y.detach()[part], "SyncBN output")
        _close(res["bn"]["x_grad"], x.grad[part], "SyncBN input gradient")
        for k, v in bn.state_dict().items():
            _close(res["bn"]["state"][k].float(), v.float(), f"SyncBN {k}")
            assert torch.equal(res["bn"]["state"][k], ranks[0]["bn"]["state"][k]), k
    _close(sum(res["bn"]["w_grad"] for res in ranks), bn[0].weight.grad, "SyncBN weight gradient")
    _close(sum(res["bn"]["b_grad"] for res in ranks), bn[0].bias.grad, "SyncBN bias gradient")

    # DDP + SyncBN generator: averaged gradients == full-batch gradients; BN running stats global.
    netg = _netg()
    noise, sent, real = _gan_data()
    fake, _ = netg(noise, sent)
    fake.square().mean().backward()
    ref = _grads(netg)
    assert set(ref) == set(ranks[0]["g"]["grads"])
    for res in ranks:
        for k, g in ref.items():
            _close(res["g"]["grads"][k], g, f"G grad {k}", atol=1e-6)
        for k, v in netg.state_dict().items():
            _close(res["g"]["state"][k].float(), v.float(), f"G state {k}")
    running = [k for k in netg.state_dict() if k.endswith("running_var")]
    assert running and all(torch.equal(ranks[0]["g"]["state"][k], ranks[1]["g"]["state"][k]) for k in running)

    # D: hinge + MA-GP (double backward) with one flattened all-reduce == full-batch gradients.
    netd = _netd()
    _d_loss(netd, real, sent).backward()
    ref = _grads(netd)
    for res in ranks:
        assert set(res["d"]["grads"]) == set(ref)
        for k, g in ref.items():
            _close(res["d"]["grads"][k], g, f"D grad {k}", atol=1e-6)


LAUNCHER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {repo!r})
    import torch
    import miscc.run.checkpoint
    import miscc.train.loop
    import miscc.train.gan
    from miscc.run import distributed

    out = {out!r}
    save = miscc.run.checkpoint.atomic_save

    def recording_save(obj, path):
        with open(os.path.join(out, "writes.txt"), "a") as f:
            f.write(f"{{distributed.rank()}} {{os.path.basename(str(path))}}\\n")
        save(obj, path)

    miscc.run.checkpoint.atomic_save = miscc.train.loop.atomic_save = recording_save
    train = miscc.train.gan.GANTrainer.train

    def train_and_dump(self):
        result = train(self)
        torch.save({{"netG": self.netG.state_dict(), "netD": self.netD.state_dict(),
                    "text_encoder": self.text_encoder.state_dict(),
                    "image_encoder": self.image_encoder.state_dict(), "steps": self.step_count,
                    "world": distributed.world_size()}},
                   os.path.join(out, f"rank{{distributed.rank()}}.pt"))
        return result

    miscc.train.gan.GANTrainer.train = train_and_dump
    import main
    main.cli_main(sys.argv[1], sys.argv[2:])
""")


def test_torchrun_two_processes(tmp_path, synthetic_birds, damsm_files):
    released = tmp_path / "start" / "netG_000.pth"  # a single-process (released-format) starting point
    released.parent.mkdir()
    torch.manual_seed(5)
    save_released(NetG(4, 100, imsize=64), released, prefix="module.")
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER.format(repo=str(REPO), out=str(tmp_path)))
    opts = tiny_opts(**{"OUTPUT_DIR": tmp_path / "output", "CONFIG_NAME": "ddp", "TEXT.DAMSM_NAME": damsm_files,
                        "TRAIN.BATCH_SIZE": HALF, "TRAIN.NET_G": released})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           str(launcher), "finetune", "--cfg", "cfg/bird.yml", "--gpu", "-1", "--data_dir", str(synthetic_birds),
           "--opts", *opts]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # Only rank 0 writes: checkpoints (recorded), TensorBoard (one event file), one "run folder" line.
    writes = (tmp_path / "writes.txt").read_text().split("\n")
    writers = {line.split()[0] for line in writes if line}
    written = {line.split()[1] for line in writes if line}
    assert writers == {"0"}
    assert {"netG_001.pth", "netD_001.pth", "text_encoder_001.pth", "image_encoder_001.pth",
            "latest.pth"} <= written
    run = tmp_path / "output" / "ddp"
    assert len(list((run / "tb").iterdir())) == 1
    assert proc.stdout.count("run folder:") == 1

    dumps = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    # 18 train images, 2 ranks x 3 per batch: each rank reads its own 9 (DistributedSampler) -> 3 steps.
    assert [d["steps"] for d in dumps] == [3, 3] and [d["world"] for d in dumps] == [WORLD, WORLD]
    for name in ("netG", "netD", "text_encoder", "image_encoder"):
        a, b = dumps[0][name], dumps[1][name]
        for k in a:  # same updates on both ranks, including the synchronized BN statistics
            assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), f"{name}.{k} differs between ranks"
    g_state = dumps[0]["netG"]
    var = g_state["conv_mask.1.running_var"]
    assert not torch.equal(var, torch.ones_like(var))  # the BN statistics did move

    # The files are single-process files: no DDP prefix inside, released `module.` prefix for netG/netD.
    netg = load_checkpoint(NetG(4, 100, imsize=64), run / "models" / "netG_001.pth")
    for k, v in netg.state_dict().items():
        assert torch.equal(v, g_state[k]), k
    saved = torch.load(run / "models" / "netG_001.pth", weights_only=True)
    assert all(k.startswith("module.") and not k.startswith("module.module.") for k in saved)
    latest = torch.load(run / "models" / "latest.pth", weights_only=True)
    assert not any(k.startswith("module.") for k in latest["netG"])


def _run_entry(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_torchrun_sampling_writes_what_one_process_writes(tmp_path, synthetic_birds):
    n_words = TextDataset(synthetic_birds, "test").n_words
    torch.manual_seed(3)
    netg = _netg()
    save_released(netg, tmp_path / "netG_004.pth", prefix="module.")
    save_released(RNN_ENCODER(n_words, nhidden=256), tmp_path / "text_encoder.pth")
    opts = tiny_opts(**{"TEXT.DAMSM_NAME": tmp_path / "text_encoder.pth", "TRAIN.NET_G": tmp_path / "netG_004.pth",
                        "TRAIN.BATCH_SIZE": 7, "WORKERS": 1, "OUTPUT_DIR": tmp_path / "output"})
    args = ["--cfg", "cfg/bird.yml", "--gpu", "-1", "--data_dir", str(synthetic_birds), "--sample"]
    single, multi = tmp_path / "single", tmp_path / "multi"
    _run_entry([sys.executable, "main.py", *args, "--out_dir", str(single), "--opts", *opts], tmp_path)
    proc = _run_entry([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
                       "main.py", *args, "--out_dir", str(multi), "--opts", *opts], tmp_path)

    assert proc.stdout.count("samples written to") == 1  # rank 0 reports; the other rank is silent
    # 60 test captions in batches of 7: rank 0 generates batches 0, 2, .., 8, rank 1 batches 1, 3, .., 7;
    # each batch holds the jobs it holds in one process, so every file is byte for byte the same.
    assert sorted(p.name for p in multi.iterdir()) == sorted(p.name for p in single.iterdir())
    assert (multi / "samples.jsonl").read_bytes() == (single / "samples.jsonl").read_bytes()
    for folder in ("img", "mask"):
        names = sorted(p.name for p in (single / folder).iterdir())
        assert len(names) == 60 and names == sorted(p.name for p in (multi / folder).iterdir())
        for name in names:
            assert (multi / folder / name).read_bytes() == (single / folder / name).read_bytes(), name
    done = json.loads((multi / "DONE.json").read_text())
    assert done["count"] == 60 and done == json.loads((single / "DONE.json").read_text())


DAMSM_WORDS = 12


def _damsm_encoders() -> tuple[RNN_ENCODER, CNN_ENCODER]:
    torch.manual_seed(6)
    return RNN_ENCODER(DAMSM_WORDS, nhidden=32), CNN_ENCODER(32, pretrained=False, input_size=75)


def _damsm_batch(part: slice) -> list:
    """Collated-batch layout (images, captions, lengths, class ids, keys) of samples ``part``."""
    g = torch.Generator().manual_seed(7)
    n = WORLD * HALF
    imgs = torch.rand(n, 3, 64, 64, generator=g) * 2 - 1
    lens = torch.tensor([5, 3, 6, 2, 4, 6])  # rank 1's longest caption is longer than rank 0's
    caps = torch.zeros(n, 6, dtype=torch.int64)
    for i, k in enumerate(lens):
        caps[i, :k] = torch.randint(1, DAMSM_WORDS, (int(k),), generator=g)
    class_ids = [1, 2, 3, 1, 4, 2]  # same-class pairs across the two ranks' halves
    return [[imgs[part]], caps[part], lens[part], class_ids[part], [f"k{i}" for i in range(n)][part]]


def _damsm_step(text_encoder: RNN_ENCODER, image_encoder: CNN_ENCODER, batch: list) -> dict:
    """One pretraining step's losses, gradients and the image encoder's BN statistics."""
    text_encoder.eval()  # no dropout: both sides must draw nothing random
    image_encoder.train()  # BNs in train mode, as in pretraining
    params = [p for m in (text_encoder, image_encoder) for p in m.parameters() if p.requires_grad]
    w, s = damsm_batch_losses(text_encoder, image_encoder, prepare_data(batch))
    ((w + s) * distributed.world_size()).backward()
    distributed.all_reduce_grads(params)
    grads = {f"{i}": p.grad.clone() for i, p in enumerate(params)}
    stats = {k: v for k, v in image_encoder.state_dict().items() if "running" in k}
    return {"w": w.detach(), "s": s.detach(), "grads": grads, "stats": stats}


def _damsm_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        text_encoder, image_encoder = _damsm_encoders()
        convert_sync_batchnorm(image_encoder)
        res = _damsm_step(text_encoder, image_encoder, _damsm_batch(slice(rank * HALF, (rank + 1) * HALF)))
        torch.save(res, os.path.join(out_dir, f"damsm{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_rank_damsm_step_equals_one_process_on_the_whole_batch(tmp_path):
    # Each rank encodes its half; the losses are computed on the gathered global batch (every caption
    # against all 6 images, same-class pairs of different ranks masked), and the gradients summed
    # over ranks are the whole-batch gradients; the Inception BN statistics are the global ones.
    mp.spawn(_damsm_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"damsm{r}.pt", weights_only=True) for r in range(WORLD)]
    # float64 on both sides: through ~90 BNs of a random Inception, float32 rounding alone (SyncBN
    # sums x and x^2 where BatchNorm uses Welford) reaches 1e-4 and would hide a real mistake.
    torch.set_num_threads(1)
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref = _damsm_step(*_damsm_encoders(), _damsm_batch(slice(None)))
    finally:
        torch.set_default_dtype(dtype)
    for res in ranks:
        _close(res["w"], ref["w"], "word loss", rtol=1e-9, atol=1e-9)
        _close(res["s"], ref["s"], "sentence loss", rtol=1e-9, atol=1e-9)
        assert set(res["grads"]) == set(ref["grads"])
        for k, g in ref["grads"].items():
            _close(res["grads"][k], g, f"gradient {k}", rtol=1e-7, atol=1e-9)
        for k, v in ref["stats"].items():
            _close(res["stats"][k], v, f"BN {k}", rtol=1e-7, atol=1e-9)


def test_torchrun_damsm_pretraining(tmp_path):
    birds = tmp_path / "birds"
    bird_set(birds)
    out = tmp_path / "output"
    opts = tiny_opts(**{"OUTPUT_DIR": out, "CONFIG_NAME": "ddp", "TREE.BASE_SIZE": 32, "TRAIN.BATCH_SIZE": 3,
                        "TRAIN.MAX_EPOCH": 2, "TRAIN.SNAPSHOT_INTERVAL": 1})
    proc = _run_entry([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
                       "DAMSM.py", "--cfg", "cfg/DAMSM/demo.yml", "--gpu", "-1", "--data_dir", str(birds),
                       "--opts", *opts], tmp_path)
    # 18 train images: each rank reads 9 per epoch, 3 batches of 3 (a global batch of 6).
    assert proc.stdout.count("epoch    0 |") == 1 and proc.stdout.count("epoch    1 |") == 1  # rank 0 only
    models = out / "ddp" / "models"
    assert sorted(p.name for p in models.iterdir()) == [
        "image_encoder0.pth", "image_encoder1.pth", "latest_damsm.pth", "text_encoder0.pth", "text_encoder1.pth"]
    assert len(list((out / "ddp" / "tb").iterdir())) == 1
    # Released-format files (no DDP or SyncBN leftovers) that load into the plain encoders strictly.
    n_words = TextDataset(birds, "train").n_words
    load_checkpoint(RNN_ENCODER(n_words, nhidden=256), models / "text_encoder1.pth")
    load_checkpoint(CNN_ENCODER(256, pretrained=False, input_size=75), models / "image_encoder1.pth")

"""The bad inputs of ``bench/fault_probe.py``: each a real command line a user could type.

A case builds its inputs in a fresh folder and returns the command, the paths that must not change
and the words the error must contain (naming the key, file or value). ``quick`` cases form the
default table (one or more per class of mistake); ``--cases all`` adds the rest.
"""
from __future__ import annotations

import pickle
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Fixture:
    """What every case may start from: shared read-only inputs and its own empty folder ``dir``."""
    birds: Path          # tiny synthetic CUB set with its captions.pickle
    text_encoder: Path   # random DAMSM pair in the released format, sized for ``birds``
    run: Path            # a finished run folder (OUTPUT_DIR/run) trained on them
    epochs: int          # the run's TRAIN.MAX_EPOCH
    dir: Path = Path()

    @property
    def out(self) -> Path:
        return self.dir / "out"

    def gan(self, *opts: str, flags: tuple = (), script: str = "main.py", data: Path | None = None,
            epochs: int = 1, name: str = "run", encoder: Path | None = None) -> list[str]:
        """A tiny GAN command line (the probe's run settings) with ``opts`` appended to --opts."""
        return [sys.executable, str(ROOT / script), "--cfg", str(ROOT / "cfg" / "bird.yml"), "--gpu", "-1",
                "--data_dir", str(data or self.birds), *flags, "--opts", "OUTPUT_DIR", str(self.out),
                "CONFIG_NAME", name, "TEXT.DAMSM_NAME", str(encoder or self.text_encoder), "TREE.BASE_SIZE", "64",
                "TRAIN.NF", "4", "TRAIN.BATCH_SIZE", "6", "TRAIN.MAX_EPOCH", str(epochs),
                "TRAIN.WARMUP_EPOCHS", "0", "TRAIN.GSAVE_INTERVAL", "1", "TRAIN.DSAVE_INTERVAL", "1",
                "WORKERS", "0", "TRAIN.DAMSM_INPUT_SIZE", "75", "PROGRESS", "off", *opts]

    def resume(self, *opts: str, **kw) -> list[str]:
        """Continue the copied run one epoch further, with ``opts`` changed."""
        return self.gan(*opts, flags=("--resume", *kw.pop("flags", ())), epochs=self.epochs + 1, **kw)

    def copy_run(self) -> Path:
        """The finished run, copied to ``out/run`` (so a case may damage its copy)."""
        dest = self.out / "run"
        shutil.copytree(self.run, dest)
        return dest

    def copy_birds(self) -> Path:
        dest = self.dir / "birds"
        shutil.copytree(self.birds, dest)
        return dest

    def netg(self) -> Path:
        return self.run / "models" / f"netG_{self.epochs:03d}.pth"

    def netd(self) -> Path:
        return self.run / "models" / f"netD_{self.epochs:03d}.pth"

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    def is_py(self, *args: str) -> list[str]:
        return [sys.executable, str(ROOT / "IS.py"), "--weights", "random", "--workers", "0", "--device", "cpu",
                *args]


@dataclass
class Plan:
    argv: list[str]
    watch: list[Path]   # must be byte-identical (or still absent) afterwards
    needle: str         # the error must contain this (the key / file / value named)
    env: dict = field(default_factory=dict)


@dataclass
class Case:
    name: str
    group: str
    build: Callable[[Fixture], Plan]
    quick: bool = False


CASES: list[Case] = []


def case(group: str, quick: bool = False):
    def register(fn: Callable[[Fixture], Plan]) -> Callable[[Fixture], Plan]:
        CASES.append(Case(fn.__doc__.strip(), group, fn, quick))
        return fn
    return register


def bad_opt(key: str, value: str, needle: str, quick: bool = False, group: str = "config value") -> None:
    """A case: one --opts value that must be refused before anything is written."""
    def build(f: Fixture) -> Plan:
        return Plan(f.gan(key, value), [f.out], needle)
    CASES.append(Case(f"{key} {value}", group, build, quick))


# --- keys, types and values -------------------------------------------------------------------------

bad_opt("TRAIN.FOO", "1", "TRAIN.FOO is not a valid config key", quick=True, group="config key")
bad_opt("TRAIN.BATCHSIZE", "8", "TRAIN.BATCHSIZE", group="config key")
bad_opt("TRAIN.BATCH_SIZE", "six", "TRAIN.BATCH_SIZE must be int", quick=True, group="config type")
bad_opt("TRAIN.GENERATOR_LR", "fast", "TRAIN.GENERATOR_LR must be float", group="config type")
bad_opt("CUDA", "maybe", "CUDA must be bool", group="config type")
bad_opt("TRAIN.AMP", "fp8", "TRAIN.AMP = 'fp8' is not one of", group="config type")
bad_opt("TRAIN.BATCH_SIZE", "0", "TRAIN.BATCH_SIZE = 0", quick=True)
bad_opt("TRAIN.BATCH_SIZE", "-3", "TRAIN.BATCH_SIZE = -3")
bad_opt("TRAIN.NF", "0", "TRAIN.NF = 0", quick=True)
bad_opt("TRAIN.GSAVE_INTERVAL", "0", "TRAIN.GSAVE_INTERVAL = 0", quick=True)
bad_opt("TRAIN.DSAVE_INTERVAL", "0", "TRAIN.DSAVE_INTERVAL = 0")
bad_opt("TEXT.WORDS_NUM", "0", "TEXT.WORDS_NUM = 0")
bad_opt("TREE.BASE_SIZE", "100", "TREE.BASE_SIZE = 100", quick=True)
bad_opt("TRAIN.DAMSM_INPUT_SIZE", "50", "TRAIN.DAMSM_INPUT_SIZE = 50")
bad_opt("TRAIN.MAX_EPOCH", "0", "TRAIN.MAX_EPOCH = 0", quick=True)
bad_opt("TRAIN.MAX_EPOCH", "-2", "TRAIN.MAX_EPOCH = -2")
bad_opt("TRAIN.EMA_DECAY", "1.5", "TRAIN.EMA_DECAY = 1.5")
bad_opt("TRAIN.EVAL_INTERVAL", "1", "TRAIN.EVAL_INTERVAL", quick=True)
bad_opt("EVAL.FID_REF", "stats.npz", "EVAL.FID_REF")
bad_opt("WORKERS", "-1", "WORKERS = -1")
bad_opt("TRAIN.BATCH_SIZE", "50", "TRAIN.BATCH_SIZE 50", group="config vs data")


@case("command line")
def _odd_opts(f: Fixture) -> Plan:
    """--opts with an odd number of items"""
    return Plan(f.gan("TRAIN.NF"), [f.out], "odd number")


@case("command line", quick=True)
def _resume_after_opts(f: Fixture) -> Plan:
    """--resume placed after --opts"""
    return Plan(f.gan("--resume"), [f.out], "before --opts")


@case("command line", quick=True)
def _seed_range(f: Fixture) -> Plan:
    """--manualSeed -1"""
    return Plan(f.gan(flags=("--manualSeed", "-1")), [f.out], "SEED = -1")


@case("command line")
def _seed_big(f: Fixture) -> Plan:
    """--manualSeed 2**33"""
    return Plan(f.gan(flags=("--manualSeed", str(2 ** 33))), [f.out], "SEED = 8589934592")


@case("command line")
def _progress_choice(f: Fixture) -> Plan:
    """--progress fancy"""
    return Plan(f.gan(flags=("--progress", "fancy")), [f.out], "--progress")


@case("command line")
def _seed_text(f: Fixture) -> Plan:
    """--manualSeed abc"""
    return Plan(f.gan(flags=("--manualSeed", "abc")), [f.out], "--manualSeed")


@case("command line", quick=True)
def _gpu_absent(f: Fixture) -> Plan:
    """--gpu 99 (no such CUDA device)"""
    argv = f.gan()
    argv[argv.index("--gpu") + 1] = "99"
    return Plan(argv, [f.out], "--gpu 99")


@case("config file", quick=True)
def _yaml_unknown_key(f: Fixture) -> Plan:
    """--cfg file with an unknown key"""
    bad = f.write("bad.yml", "TRAIN:\n  BATCHSIZE: 3\n")
    argv = f.gan()
    argv[argv.index("--cfg") + 1] = str(bad)
    return Plan(argv, [f.out], "TRAIN.BATCHSIZE is not a valid config key")


@case("config file")
def _yaml_string_float(f: Fixture) -> Plan:
    """--cfg file with GENERATOR_LR: 2e-4 (YAML reads text)"""
    bad = f.write("bad.yml", "TRAIN:\n  GENERATOR_LR: 2e-4\n")
    argv = f.gan()
    argv[argv.index("--cfg") + 1] = str(bad)
    return Plan(argv, [f.out], "0.0002")


@case("config file")
def _yaml_broken(f: Fixture) -> Plan:
    """--cfg file that is not YAML"""
    bad = f.write("bad.yml", "TRAIN: [unclosed\n")
    argv = f.gan()
    argv[argv.index("--cfg") + 1] = str(bad)
    return Plan(argv, [f.out], "not valid YAML")


@case("config file")
def _yaml_missing(f: Fixture) -> Plan:
    """--cfg file that does not exist"""
    argv = f.gan()
    argv[argv.index("--cfg") + 1] = str(f.dir / "nope.yml")
    return Plan(argv, [f.out], "nope.yml")


# --- data ------------------------------------------------------------------------------------------

@case("data", quick=True)
def _data_missing(f: Fixture) -> Plan:
    """--data_dir that does not exist"""
    return Plan(f.gan(data=f.dir / "no_birds"), [f.out, f.dir / "no_birds"], "no_birds")


@case("data")
def _data_empty(f: Fixture) -> Plan:
    """--data_dir an empty folder"""
    (f.dir / "empty_birds").mkdir()
    return Plan(f.gan(data=f.dir / "empty_birds"), [f.out, f.dir / "empty_birds"], "empty_birds")


@case("data")
def _data_file(f: Fixture) -> Plan:
    """--data_dir a file"""
    path = f.write("birds.txt", "not a folder")
    return Plan(f.gan(data=path), [f.out, path], "birds.txt")


@case("data", quick=True)
def _empty_caption_file(f: Fixture) -> Plan:
    """an empty caption file (captions.pickle to be rebuilt)"""
    data = f.copy_birds()
    (data / "captions.pickle").unlink()
    victim = sorted((data / "text").rglob("*.txt"))[0]
    victim.write_text("")
    return Plan(f.gan(data=data), [f.out, data], victim.name)


@case("data", quick=True)
def _wordless_captions(f: Fixture) -> Plan:
    """a caption file whose lines have no ASCII word"""
    data = f.copy_birds()
    (data / "captions.pickle").unlink()
    victim = sorted((data / "text").rglob("*.txt"))[0]
    victim.write_text("¡¿ ¡¿ ¡¿\n\u00e9\u00e8\u00ea \u00fc\u00f6\n" * 5)
    return Plan(f.gan(data=data), [f.out, data], victim.name)


@case("data")
def _corrupt_captions_pickle(f: Fixture) -> Plan:
    """captions.pickle that is garbage"""
    data = f.copy_birds()
    (data / "captions.pickle").write_bytes(b"\x00garbage")
    return Plan(f.gan(data=data), [f.out, data], "captions.pickle")


@case("data")
def _foreign_captions_pickle(f: Fixture) -> Plan:
    """captions.pickle of another data set (fewer captions)"""
    data = f.copy_birds()
    train, test, ixtoword, wordtoix = pickle.loads((data / "captions.pickle").read_bytes())
    (data / "captions.pickle").write_bytes(pickle.dumps([train[:-10], test, ixtoword, wordtoix], protocol=2))
    return Plan(f.gan(data=data), [f.out, data], "does not belong to this data set")


def _broken_images(f: Fixture, workers: str) -> Plan:
    data = f.copy_birds()
    for jpg in (data / "CUB_200_2011" / "images").rglob("*.jpg"):
        jpg.write_bytes(b"not a jpeg")
    return Plan(f.gan("WORKERS", workers, data=data), [data], "cannot be read")


@case("data")
def _broken_images_no_workers(f: Fixture) -> Plan:
    """images that are not JPEGs, WORKERS 0"""
    return _broken_images(f, "0")


@case("data", quick=True)
def _broken_images_worker(f: Fixture) -> Plan:
    """images that are not JPEGs, WORKERS 1 (error inside a DataLoader worker)"""
    return _broken_images(f, "1")


# --- checkpoints and encoders ------------------------------------------------------------------------

@case("checkpoint", quick=True)
def _netd_as_netg(f: Fixture) -> Plan:
    """a netD file as TRAIN.NET_G"""
    path = f.dir / "weights" / f"netG_{f.epochs:03d}.pth"
    path.parent.mkdir()
    shutil.copy(f.netd(), path)
    return Plan(f.gan("TRAIN.NET_G", str(path), epochs=f.epochs + 1), [f.out, path.parent],
                "looks like a discriminator")


@case("checkpoint", quick=True)
def _text_as_netg(f: Fixture) -> Plan:
    """a text file as TRAIN.NET_G"""
    path = f.write("weights/netG_005.pth", "these are not weights\n")
    return Plan(f.gan("TRAIN.NET_G", str(path), epochs=9), [f.out, path.parent], "netG_005.pth")


@case("checkpoint")
def _netg_missing(f: Fixture) -> Plan:
    """TRAIN.NET_G that does not exist"""
    path = f.dir / "weights" / "netG_005.pth"
    return Plan(f.gan("TRAIN.NET_G", str(path), epochs=9), [f.out], "netG_005.pth")


@case("checkpoint")
def _netg_no_epoch(f: Fixture) -> Plan:
    """TRAIN.NET_G without an epoch in its name"""
    path = f.dir / "weights" / "generator.pth"
    path.parent.mkdir()
    shutil.copy(f.netg(), path)
    return Plan(f.gan("TRAIN.NET_G", str(path), epochs=9), [f.out, path.parent], "generator.pth")


@case("checkpoint")
def _netg_folder(f: Fixture) -> Plan:
    """TRAIN.NET_G a folder"""
    path = f.dir / "netG_003.pth"
    path.mkdir()
    return Plan(f.gan("TRAIN.NET_G", str(path), epochs=9), [f.out, path], "netG_003.pth")


@case("checkpoint")
def _training_state_as_netg(f: Fixture) -> Plan:
    """a training state (latest.pth) as TRAIN.NET_G"""
    return Plan(f.gan("TRAIN.NET_G", str(f.run / "models" / "latest.pth"), epochs=9), [f.out, f.run], "latest.pth")


@case("encoder")
def _training_state_as_text_encoder(f: Fixture) -> Plan:
    """a training state (latest.pth) as TEXT.DAMSM_NAME"""
    return Plan(f.gan(encoder=f.run / "models" / "latest.pth"), [f.out, f.run], "latest.pth")


@case("checkpoint", quick=True)
def _netg_other_width(f: Fixture) -> Plan:
    """TRAIN.NET_G saved with NF 4, the config says NF 8"""
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), "TRAIN.NF", "8", epochs=9), [f.out, f.run],
                "saved with TRAIN.NF 4, the config says 8")


@case("encoder")
def _image_encoder_as_text(f: Fixture) -> Plan:
    """TEXT.DAMSM_NAME an image encoder file"""
    image = f.text_encoder.with_name(f.text_encoder.name.replace("text_encoder", "image_encoder"))
    return Plan(f.gan(encoder=image), [f.out], "not a DAMSM text-encoder")


@case("encoder")
def _text_encoder_missing(f: Fixture) -> Plan:
    """TEXT.DAMSM_NAME that does not exist"""
    return Plan(f.gan(encoder=f.dir / "text_encoder200.pth"), [f.out], "text_encoder200.pth")


@case("encoder")
def _image_encoder_missing(f: Fixture) -> Plan:
    """the image encoder beside TEXT.DAMSM_NAME is missing"""
    lonely = f.dir / "enc" / "text_encoder200.pth"
    lonely.parent.mkdir()
    shutil.copy(f.text_encoder, lonely)
    return Plan(f.gan(encoder=lonely), [f.out, lonely.parent], "image_encoder200.pth")


@case("encoder", quick=True)
def _encoder_other_vocabulary(f: Fixture) -> Plan:
    """a text encoder trained on another vocabulary size"""
    import torch
    from DAMSM import RNN_ENCODER
    from miscc.checkpoint import save_released, text_encoder_rows
    folder = f.dir / "enc"
    folder.mkdir()
    save_released(RNN_ENCODER(text_encoder_rows(f.text_encoder) + 7, nhidden=256), folder / "text_encoder200.pth")
    torch.save({}, folder / "image_encoder200.pth")
    return Plan(f.gan(encoder=folder / "text_encoder200.pth"), [f.out, folder], "vocabulary mismatch")


@case("encoder")
def _finetune_half_pair(f: Fixture) -> Plan:
    """main_finetune.py: NET_G with a text_encoder beside it but no image_encoder"""
    folder = f.dir / "weights"
    folder.mkdir()
    shutil.copy(f.netg(), folder / f.netg().name)
    shutil.copy(f.text_encoder, folder / f"text_encoder_{f.epochs:03d}.pth")
    return Plan(f.gan("TRAIN.NET_G", str(folder / f.netg().name), script="main_finetune.py", epochs=f.epochs + 1),
                [f.out, folder], "come as a pair")


# --- the run folder and resuming -----------------------------------------------------------------------

@case("run folder", quick=True)
def _new_run_over_old(f: Fixture) -> Plan:
    """a new run (no --resume) in a folder that holds a run"""
    f.copy_run()
    return Plan(f.gan(epochs=1), [f.out], "already holds")


@case("run folder", quick=True)
def _start_over_bad_netg(f: Fixture) -> Plan:
    """--start_over with a netD file as TRAIN.NET_G (the old run must stay where it is)"""
    f.copy_run()
    return Plan(f.gan("TRAIN.NET_G", str(f.netd()), flags=("--start_over",), epochs=f.epochs + 1), [f.out],
                "looks like a discriminator")


@case("run folder", quick=True)
def _resume_nothing(f: Fixture) -> Plan:
    """--resume with nothing to resume"""
    return Plan(f.gan(flags=("--resume",)), [f.out], "nothing to resume")


@case("run folder", quick=True)
def _snapshots_only_resume(f: Fixture) -> Plan:
    """--resume in a folder with snapshots but no latest.pth (killed in its first save)"""
    run = f.copy_run()
    (run / "models" / "latest.pth").unlink()
    return Plan(f.resume(), [f.out], "--start_over")


@case("run folder")
def _snapshots_only_new(f: Fixture) -> Plan:
    """a new run in a folder with snapshots but no latest.pth"""
    run = f.copy_run()
    (run / "models" / "latest.pth").unlink()
    return Plan(f.gan(), [f.out], "TRAIN.NET_G")


@case("run folder", quick=True)
def _output_dir_file(f: Fixture) -> Plan:
    """OUTPUT_DIR a file"""
    path = f.write("out", "a file where the outputs should go\n")
    return Plan(f.gan(), [path], "out")


@case("run folder")
def _run_folder_file(f: Fixture) -> Plan:
    """OUTPUT_DIR/CONFIG_NAME a file"""
    path = f.write("out/run", "a file where the run folder should go\n")
    return Plan(f.gan(), [f.out], "is a file")


@case("resume", quick=True)
def _resume_other_nf(f: Fixture) -> Plan:
    """--resume with TRAIN.NF changed"""
    f.copy_run()
    return Plan(f.resume("TRAIN.NF", "8"), [f.out], "TRAIN.NF: saved 4, now 8")


@case("resume")
def _resume_other_size(f: Fixture) -> Plan:
    """--resume with TREE.BASE_SIZE changed"""
    f.copy_run()
    return Plan(f.resume("TREE.BASE_SIZE", "128"), [f.out], "TREE.BASE_SIZE: saved 64, now 128")


@case("resume")
def _resume_other_variant(f: Fixture) -> Plan:
    """--resume with GAN.SSACN changed"""
    f.copy_run()
    return Plan(f.resume("GAN.SSACN", "False"), [f.out], "GAN.SSACN")


@case("resume")
def _resume_other_encoder(f: Fixture) -> Plan:
    """--resume with another TEXT.DAMSM_NAME (same vocabulary)"""
    f.copy_run()
    folder = f.dir / "enc"
    folder.mkdir()
    for p in f.text_encoder.parent.glob("*_encoder200.pth"):
        (folder / p.name).symlink_to(p)
    return Plan(f.resume(encoder=folder / f.text_encoder.name), [f.out], "TEXT.DAMSM_NAME")


@case("resume", quick=True)
def _resume_renumbered_vocabulary(f: Fixture) -> Plan:
    """--resume after captions.pickle was rebuilt with other word ids"""
    f.copy_run()
    data = f.copy_birds()
    train, test, ixtoword, wordtoix = pickle.loads((data / "captions.pickle").read_bytes())
    ids = sorted(i for i in ixtoword if i)
    swap = dict(zip(ids, ids[1:] + ids[:1]))
    remap = lambda caps: [[swap.get(t, t) for t in c] for c in caps]  # noqa: E731
    ixtoword = {swap.get(i, i): w for i, w in ixtoword.items()}
    wordtoix = {w: i for i, w in ixtoword.items()}
    (data / "captions.pickle").write_bytes(pickle.dumps([remap(train), remap(test), ixtoword, wordtoix], protocol=2))
    return Plan(f.resume(data=data), [f.out, data], "vocabulary mismatch")


@case("resume", quick=True)
def _resume_truncated_latest(f: Fixture) -> Plan:
    """--resume with a truncated latest.pth"""
    run = f.copy_run()
    latest = run / "models" / "latest.pth"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    return Plan(f.resume(), [f.out], "latest.pth")


@case("resume")
def _resume_netg_as_latest(f: Fixture) -> Plan:
    """--resume where latest.pth is a netG file"""
    run = f.copy_run()
    shutil.copy(run / "models" / f.netg().name, run / "models" / "latest.pth")
    return Plan(f.resume(), [f.out], "not a GAN training state")


@case("resume")
def _resume_with_other_entry(f: Fixture) -> Plan:
    """main_finetune.py --resume of a main.py run"""
    f.copy_run()
    return Plan(f.resume(script="main_finetune.py"), [f.out], "'main' run")


# --- sampling ----------------------------------------------------------------------------------------

@case("sampling", quick=True)
def _out_dir_file(f: Fixture) -> Plan:
    """--sample --out_dir a file"""
    target = f.write("samples", "mine\n")
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), flags=("--sample", "--out_dir", str(target))), [target, f.out],
                "is a file")


@case("sampling")
def _out_dir_foreign(f: Fixture) -> Plan:
    """--sample --out_dir a folder holding someone else's files"""
    target = f.dir / "holiday_photos"
    f.write("holiday_photos/beach.png", b"\x89PNG not really")
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), flags=("--sample", "--out_dir", str(target))), [target, f.out],
                "holiday_photos")


@case("sampling")
def _sample_without_netg(f: Fixture) -> Plan:
    """--sample with no TRAIN.NET_G and no run"""
    return Plan(f.gan(flags=("--sample",)), [f.out], "TRAIN.NET_G")


@case("sampling")
def _captions_missing(f: Fixture) -> Plan:
    """--captions file that does not exist"""
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), flags=("--captions", str(f.dir / "caps.txt"))), [f.out],
                "caps.txt")


@case("sampling")
def _captions_empty(f: Fixture) -> Plan:
    """--captions an empty file"""
    caps = f.write("caps.txt", "")
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), flags=("--captions", str(caps))), [f.out], "caps.txt")


@case("sampling")
def _captions_unknown_words(f: Fixture) -> Plan:
    """--captions of unknown words with --unknown error"""
    caps = f.write("caps.txt", "a zyxxy qwertz bird\n")
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), flags=("--captions", str(caps), "--unknown", "error")),
                [f.out], "zyxxy")


@case("sampling")
def _repeat_zero(f: Fixture) -> Plan:
    """--sample --repeat 0"""
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), flags=("--sample", "--repeat", "0")), [f.out], "repeat")


# --- evaluation (IS.py) ----------------------------------------------------------------------------------

def _sample_folder(f: Fixture, done: bool) -> Path:
    """A sampler-style folder of 3 images; without DONE.json it is an interrupted run (10 planned)."""
    import json

    from PIL import Image
    from miscc.sample_protocol import DONE_FILE, PLAN_FILE, SAMPLES_FILE
    folder = f.dir / "samples"
    (folder / "img").mkdir(parents=True)
    rows = []
    for i in range(3):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(folder / "img" / f"{i:06d}.png")
        rows.append(json.dumps({"file": f"img/{i:06d}.png", "key": f"k{i}", "caption_idx": 0, "tokens": [1]}))
    (folder / SAMPLES_FILE).write_text("\n".join(rows) + "\n")
    (folder / PLAN_FILE).write_text(json.dumps({"count": 10}))
    if done:
        (folder / DONE_FILE).write_text(json.dumps({"count": 3}))
    return folder


@case("evaluation", quick=True)
def _is_batch_zero(f: Fixture) -> Plan:
    """IS.py --batch_size 0"""
    folder = _sample_folder(f, done=True)
    return Plan(f.is_py("--image_dir", str(folder), "--batch_size", "0", "--splits", "1"), [folder],
                "--batch_size 0")


@case("evaluation", quick=True)
def _is_fake_npz(f: Fixture) -> Plan:
    """IS.py --fid_ref a fake .npz"""
    folder = _sample_folder(f, done=True)
    fake = f.write("stats.npz", "not numbers")
    return Plan(f.is_py("--image_dir", str(folder), "--fid_ref", str(fake), "--splits", "1"), [folder, fake],
                "stats.npz")


@case("evaluation", quick=True)
def _is_interrupted(f: Fixture) -> Plan:
    """IS.py on an interrupted sample folder (no DONE.json)"""
    folder = _sample_folder(f, done=False)
    return Plan(f.is_py("--image_dir", str(folder), "--splits", "1"), [folder], "3 images of 10 planned")


@case("evaluation")
def _is_missing_dir(f: Fixture) -> Plan:
    """IS.py --image_dir that does not exist"""
    return Plan(f.is_py("--image_dir", str(f.dir / "nowhere"), "--splits", "1"), [f.dir / "nowhere"], "nowhere")


@case("evaluation")
def _is_empty_dir(f: Fixture) -> Plan:
    """IS.py --image_dir an empty folder"""
    (f.dir / "empty").mkdir()
    return Plan(f.is_py("--image_dir", str(f.dir / "empty"), "--splits", "1"), [f.dir / "empty"], "empty")


@case("evaluation")
def _is_too_many_splits(f: Fixture) -> Plan:
    """IS.py --splits larger than the image count"""
    folder = _sample_folder(f, done=True)
    return Plan(f.is_py("--image_dir", str(folder), "--splits", "10"), [folder], "--splits 10")


@case("evaluation")
def _is_stats_name(f: Fixture) -> Plan:
    """IS.py --save_stats without .npz"""
    folder = _sample_folder(f, done=True)
    return Plan(f.is_py("--image_dir", str(folder), "--save_stats", str(f.dir / "s.txt"), "--splits", "1"),
                [folder, f.dir / "s.txt"], "s.txt")


# --- DAMSM pretraining -------------------------------------------------------------------------------------

def _damsm(f: Fixture, *opts: str) -> list[str]:
    return [sys.executable, str(ROOT / "DAMSM.py"), "--cfg", str(ROOT / "cfg" / "DAMSM" / "demo.yml"), "--gpu", "-1",
            "--data_dir", str(f.birds), "--opts", "OUTPUT_DIR", str(f.out), "CONFIG_NAME", "damsm",
            "TRAIN.MAX_EPOCH", "1", "TRAIN.BATCH_SIZE", "6", "TREE.BASE_SIZE", "64", "PROGRESS", "off", *opts]


@case("DAMSM pretraining", quick=True)
def _damsm_netg_as_net_e(f: Fixture) -> Plan:
    """DAMSM.py with a netG file as TRAIN.NET_E"""
    path = f.dir / "weights" / "text_encoder5.pth"
    path.parent.mkdir()
    shutil.copy(f.netg(), path)
    return Plan(_damsm(f, "TRAIN.NET_E", str(path)), [f.out, path.parent], "text_encoder5.pth")


@case("DAMSM pretraining")
def _damsm_unknown_key(f: Fixture) -> Plan:
    """DAMSM.py with an unknown key"""
    return Plan(_damsm(f, "TRAIN.ENCODER_LR_TYPO", "1"), [f.out], "TRAIN.ENCODER_LR_TYPO")


@case("DAMSM pretraining")
def _damsm_batch_too_big(f: Fixture) -> Plan:
    """DAMSM.py with TRAIN.BATCH_SIZE larger than the data set"""
    return Plan(_damsm(f, "TRAIN.BATCH_SIZE", "50"), [f.out], "TRAIN.BATCH_SIZE")

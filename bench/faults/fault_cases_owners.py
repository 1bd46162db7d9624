"""Bad inputs, part 3 (issue 23): folder owners, captions files, evaluation inputs, resume identity, cut
sample folders (``bench/faults/fault_fixture.py``). Cases marked ``accept`` must be *accepted*."""
from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Optional

from bench.faults.fault_fixture import ROOT, Fixture, Plan, case
from tests.helpers import write_sample_folder

# Locks taken by the probe for the "folder in use" cases; held until the probe exits.
_HELD: list = []


def _hold(folder: Path, what: str) -> None:
    from miscc.run.lock import FolderLock
    _HELD.append(FolderLock(folder, what).acquire())


# --- one owner per folder -------------------------------------------------------------------------------

@case("folder in use", quick=True)
def _train_in_held_folder(f: Fixture) -> Plan:
    """a training start in a run folder another run holds (lock)"""
    f.out.mkdir(parents=True)
    _hold(f.out / "run", "GAN training")
    return Plan(f.gan(), [f.out], "is in use")


@case("folder in use")
def _resume_in_held_folder(f: Fixture) -> Plan:
    """--resume of a run that is still training (lock)"""
    f.copy_run()
    _hold(f.out / "run", "GAN training")
    return Plan(f.resume(), [f.out], "is in use")


@case("folder in use", quick=True)
def _sample_into_held_folder(f: Fixture) -> Plan:
    """--sample --out_dir a folder another sampler is writing (lock)"""
    target = f.dir / "samples"
    _hold(target, "sampling")
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), flags=("--sample", "--out_dir", str(target))), [f.dir],
                "is in use")


@case("folder in use")
def _damsm_in_held_folder(f: Fixture) -> Plan:
    """DAMSM.py in a run folder another pretraining holds (lock)"""
    f.out.mkdir(parents=True)
    _hold(f.out / "damsm", "DAMSM pretraining")
    argv = [sys.executable, str(ROOT / "DAMSM.py"), "--cfg", str(ROOT / "cfg" / "DAMSM" / "demo.yml"), "--gpu", "-1",
            "--data_dir", str(f.birds), "--opts", "OUTPUT_DIR", str(f.out), "CONFIG_NAME", "damsm",
            "TRAIN.MAX_EPOCH", "1", "TRAIN.BATCH_SIZE", "6", "TREE.BASE_SIZE", "64", "PROGRESS", "off"]
    return Plan(argv, [f.out], "is in use")


# --- captions files ---------------------------------------------------------------------------------------

def _known_words(f: Fixture, count: int) -> list[str]:
    _, _, ixtoword, _ = pickle.loads((f.birds / "captions.pickle").read_bytes())
    words = [w for i, w in sorted(ixtoword.items()) if i and len(w) >= 3]
    return (words * (count // len(words) + 1))[:count]


def _records(folder: Path) -> list[dict]:
    path = folder / "samples.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _expect_lines(folder: Path, lines: int, per_caption: int, cut_lines: int) -> Optional[str]:
    recs = _records(folder)
    if not (folder / "DONE.json").is_file():
        return "no DONE.json"
    keys = {r["key"] for r in recs}
    cut = {r["key"] for r in recs if r.get("cut")}
    if len(keys) != lines or len(recs) != lines * per_caption or len(cut) != cut_lines:
        return f"{len(keys)} lines generated ({len(cut)} cut), expected {lines} ({cut_lines} cut)"
    return None


@case("captions file", quick=True)
def _captions_long_line_drop(f: Fixture) -> Plan:
    """--captions with one line over TEXT.WORDS_NUM and unknown words, --unknown drop (must generate every line)"""
    words = _known_words(f, 30)
    lines = [f"{words[i]} {words[i + 1]} zqxwv bird" for i in range(5)] + [" ".join(words[:22])]
    caps = f.write("caps.txt", "\n".join(lines) + "\n")
    out = f.dir / "samples"
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), flags=("--captions", str(caps), "--unknown", "drop",
                                                            "--per_caption", "1", "--out_dir", str(out))),
                [], "cut 4 word(s) beyond TEXT.WORDS_NUM 18", accept=True,
                check=lambda: _expect_lines(out, 6, 1, 1))


@case("captions file")
def _captions_long_line_error(f: Fixture) -> Plan:
    """--captions with one line over TEXT.WORDS_NUM, --unknown error (stays strict)"""
    words = _known_words(f, 30)
    caps = f.write("caps.txt", f"{words[0]} {words[1]}\n" + " ".join(words[:22]) + "\n")
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), flags=("--captions", str(caps), "--unknown", "error")),
                [f.out], "line 2: the caption has 22 words")


@case("captions file")
def _captions_nothing_usable(f: Fixture) -> Plan:
    """--captions where no line has a known word, --unknown drop"""
    caps = f.write("caps.txt", "zqxwv florble\n...\n\n")
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), flags=("--captions", str(caps))), [f.out], "holds no caption")


# --- inputs of the in-training evaluation, checked before the first step -----------------------------------

def _eval_opts(key: str, value: str) -> tuple[str, ...]:
    return ("TRAIN.EVAL_INTERVAL", "1", "EVAL.INCEPTION_WEIGHTS", "random", "EVAL.METRICS", "fid,r_precision",
            key, value)


@case("evaluation inputs", quick=True)
def _fid_ref_garbage(f: Fixture) -> Plan:
    """EVAL.FID_REF an existing but unreadable statistics file (checked before epoch 1)"""
    stats = f.write("ref.npz", b"PK\x03\x04 not a zip archive")
    return Plan(f.gan(*_eval_opts("EVAL.FID_REF", str(stats))), [f.out, stats], "EVAL.FID_REF")


@case("evaluation inputs")
def _fid_ref_folder_broken(f: Fixture) -> Plan:
    """EVAL.FID_REF a folder whose image is not an image"""
    f.write("refs/a.png", b"not a png")
    return Plan(f.gan(*_eval_opts("EVAL.FID_REF", str(f.dir / "refs"))), [f.out, f.dir / "refs"], "EVAL.FID_REF")


@case("evaluation inputs")
def _fid_ref_missing(f: Fixture) -> Plan:
    """EVAL.FID_REF that does not exist"""
    return Plan(f.gan(*_eval_opts("EVAL.FID_REF", str(f.dir / "stats.npz"))), [f.out], "EVAL.FID_REF")


@case("evaluation inputs")
def _inception_garbage(f: Fixture) -> Plan:
    """EVAL.INCEPTION_WEIGHTS a file that is not weights"""
    weights = f.write("inception.pth", b"garbage")
    opts = ("TRAIN.EVAL_INTERVAL", "1", "EVAL.INCEPTION_WEIGHTS", str(weights), "EVAL.METRICS", "fid,r_precision",
            "EVAL.BEST_METRIC", "r_precision")
    return Plan(f.gan(*opts), [f.out, weights], "EVAL.INCEPTION_WEIGHTS")


@case("evaluation inputs", quick=True)
def _resume_with_broken_fid_ref(f: Fixture) -> Plan:
    """--resume with EVAL.FID_REF an unreadable file (refused before the resumed epoch)"""
    f.copy_run()
    stats = f.write("ref.npz", b"PK\x03\x04 not a zip archive")
    return Plan(f.resume(*_eval_opts("EVAL.FID_REF", str(stats))), [f.out, stats], "EVAL.FID_REF")


# --- contradictory flags, the data set of a resume --------------------------------------------------------

@case("resume", quick=True)
def _resume_and_start_over(f: Fixture) -> Plan:
    """--resume --start_over together"""
    f.copy_run()
    return Plan(f.resume(flags=("--start_over",)), [f.out], "--start_over contradict")


@case("resume", quick=True)
def _resume_other_file_list(f: Fixture) -> Plan:
    """--resume on a data folder of other images, same DATASET_NAME and vocabulary"""
    f.copy_run()
    data = f.copy_birds()
    names = pickle.loads((data / "train" / "filenames.pickle").read_bytes())
    train, test, ixtoword, wordtoix = pickle.loads((data / "captions.pickle").read_bytes())
    drop = 6  # the last 6 train images, with their captions (10 each) and class ids: a consistent set
    (data / "train" / "filenames.pickle").write_bytes(pickle.dumps(names[:-drop], protocol=2))
    (data / "captions.pickle").write_bytes(pickle.dumps([train[:-drop * 10], test, ixtoword, wordtoix], protocol=2))
    info = data / "train" / "class_info.pickle"
    if info.is_file():
        info.write_bytes(pickle.dumps(list(pickle.loads(info.read_bytes()))[:-drop], protocol=2))
    return Plan(f.resume(data=data), [f.out, data], "trained on another data set")


# --- cut sample folders (IS.py) ------------------------------------------------------------------------------

@case("evaluation", quick=True)
def _is_cut_by_full_disk(f: Fixture) -> Plan:
    """IS.py on a sampling folder cut by a full disk (0-byte last PNG, no DONE.json)"""
    folder = write_sample_folder(f.dir / "samples", done=False)
    (folder / "img" / "000003.png").write_bytes(b"")
    return Plan(f.is_py("--image_dir", str(folder), "--splits", "1"), [folder], "interrupted sampling run")


@case("evaluation")
def _is_mixed_sizes_image_size(f: Fixture) -> Plan:
    """IS.py --image_size 64 on a folder of mixed sizes"""
    from PIL import Image
    folder = f.dir / "mixed"
    folder.mkdir()
    Image.new("RGB", (16, 16)).save(folder / "a.png")
    Image.new("RGB", (12, 12)).save(folder / "b.png")
    return Plan(f.is_py("--image_dir", str(folder), "--image_size", "64", "--splits", "1"), [folder],
                "--image_size 64 resizes a folder of one size")

"""Bad inputs, part 2: run folders, resuming, sampling, evaluation, DAMSM pretraining (``bench/faults/fault_fixture.py``)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bench.faults.fault_fixture import ROOT, Fixture, Plan, case
from tests.helpers import permute_vocabulary, write_sample_folder


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
    f.write("out/run", "a file where the run folder should go\n")
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
    permute_vocabulary(data)
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
    return write_sample_folder(f.dir / "samples", done)


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

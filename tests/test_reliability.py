"""Never lose a run, never silently train the wrong thing (docs/RELIABILITY.md).

One test per class of fault: a run folder that holds a run, each resume rule, vocabulary identity,
every bad value a user can type, a full disk, errors raised in DataLoader workers, interrupted sample
folders, and the sentences that explain a checkpoint mismatch.
"""
from __future__ import annotations

import errno
import shutil

import pytest
import torch
import yaml

import IS
from DAMSM import RNN_ENCODER
from miscc.run import layout as run_layout
from miscc.run.checkpoint import save_released
from miscc.config import cfg, cfg_from_list
from DAMSM import cli_main as damsm_main
from miscc.errors import SSAGANError
from miscc.sample.protocol import DONE_FILE, PLAN_FILE
from main import cli_main
from miscc.train.gan import GANTrainer
from model import NetD, NetG
from tests.helpers import configure, permute_vocabulary, tiny_opts, write_sample_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cli_args(tmp_path, data, damsm, *extra_opts, flags=()):
    return ["--cfg", "cfg/bird.yml", "--gpu", "-1", "--data_dir", str(data), *flags, "--opts",
            *tiny_opts(**{"OUTPUT_DIR": tmp_path / "out", "CONFIG_NAME": "run", "TEXT.DAMSM_NAME": damsm,
                          "PROGRESS": "off"}), *extra_opts]


def _exit_message(capsys, fn, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        fn(*args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# --- the run folder -------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_new_run_over_an_existing_one_is_refused_and_start_over_moves_it_aside(
        tmp_path, synthetic_birds, damsm_files, capsys):
    cli_main("main", _cli_args(tmp_path, synthetic_birds, damsm_files))
    run = tmp_path / "out" / "run"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    err = _exit_message(capsys, cli_main, "main", _cli_args(tmp_path, synthetic_birds, damsm_files))
    assert "already holds" in err and "--resume" in err and "--start_over" in err and "CONFIG_NAME" in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing touched

    cli_main("main", _cli_args(tmp_path, synthetic_birds, damsm_files, flags=("--start_over",)))
    aside = [p for p in (tmp_path / "out").iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1
    assert (aside[0] / "models" / "latest.pth").read_bytes() == before[run / "models" / "latest.pth"]
    assert (run / "models" / "latest.pth").is_file()


@pytest.mark.slow
def test_a_start_whose_files_fail_to_load_leaves_every_folder_as_it_was(
        tmp_path, synthetic_birds, damsm_files, capsys):
    cli_main("main", _cli_args(tmp_path, synthetic_birds, damsm_files))
    out = tmp_path / "out"
    before = {p: (p.read_bytes() if p.is_file() else None) for p in out.rglob("*")}
    netd = out / "run" / "models" / "netD_001.pth"
    # --start_over must not move the old run aside for a start that then fails to load
    _exit_message(capsys, cli_main, "main", _cli_args(tmp_path, synthetic_birds, damsm_files, "TRAIN.NET_G",
                                                      str(netd), "TRAIN.MAX_EPOCH", "2", flags=("--start_over",)))
    # nor may a new run leave an empty run folder behind
    _exit_message(capsys, cli_main, "main", _cli_args(tmp_path, synthetic_birds, damsm_files, "TRAIN.NET_G",
                                                      str(netd), "CONFIG_NAME", "new", "TRAIN.MAX_EPOCH", "2"))
    assert {p: (p.read_bytes() if p.is_file() else None) for p in out.rglob("*")} == before


@pytest.mark.slow
def test_a_folder_with_snapshots_but_no_training_state_is_not_sent_to_resume(
        tmp_path, synthetic_birds, damsm_files, capsys):
    """A run killed while writing its first latest.pth: --resume cannot continue it, so the advice is
    --start_over or a snapshot as TRAIN.NET_G, and that advice works."""
    cli_main("main", _cli_args(tmp_path, synthetic_birds, damsm_files))
    models = tmp_path / "out" / "run" / "models"
    (models / "latest.pth").unlink()
    for flags in ((), ("--resume",)):
        err = _exit_message(capsys, cli_main, "main", _cli_args(tmp_path, synthetic_birds, damsm_files, flags=flags))
        assert "no latest.pth" in err and "--start_over" in err and "TRAIN.NET_G" in err
        assert "Continue it with --resume" not in err
    cli_main("main", _cli_args(tmp_path, synthetic_birds, damsm_files, "TRAIN.NET_G", str(models / "netG_001.pth"),
                               "TRAIN.MAX_EPOCH", "2", flags=("--resume",)))
    assert torch.load(models / "latest.pth", weights_only=True)["epoch"] == 2


def test_an_output_dir_that_is_a_file_is_refused(tmp_path, synthetic_birds, damsm_files, capsys):
    args = _cli_args(tmp_path, synthetic_birds, damsm_files)
    (tmp_path / "out").write_text("mine")
    err = _exit_message(capsys, cli_main, "main", args)
    assert f"{tmp_path / 'out'} is a file" in err and (tmp_path / "out").read_text() == "mine"


@pytest.mark.slow
def test_two_start_overs_within_one_second_keep_both_old_runs(tmp_path, synthetic_birds, damsm_files,
                                                              monkeypatch):
    import datetime
    from types import SimpleNamespace
    from miscc.train import loop as train_loop
    frozen = datetime.datetime(2025, 1, 2, 3, 4, 5)
    monkeypatch.setattr(train_loop, "datetime", SimpleNamespace(datetime=SimpleNamespace(now=lambda: frozen)))
    for _ in range(3):
        cli_main("main", _cli_args(tmp_path, synthetic_birds, damsm_files, flags=("--start_over",)))
    aside = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != "run")
    assert aside == ["run.old-20250102-030405", "run.old-20250102-030405-1"]
    assert all((tmp_path / "out" / name / "models" / "latest.pth").is_file() for name in aside)


def test_damsm_pretraining_refuses_to_overwrite_its_run_too(tmp_path, synthetic_birds, capsys):
    argv = ["--cfg", "cfg/DAMSM/demo.yml", "--gpu", "-1", "--data_dir", str(synthetic_birds), "--opts",
            *tiny_opts(**{"OUTPUT_DIR": tmp_path, "CONFIG_NAME": "damsm", "PROGRESS": "off"})]
    damsm_main(argv)
    state = (tmp_path / "damsm" / "models" / "latest_damsm.pth").read_bytes()
    err = _exit_message(capsys, damsm_main, argv)
    assert "already holds a DAMSM pretraining run" in err
    assert (tmp_path / "damsm" / "models" / "latest_damsm.pth").read_bytes() == state


@pytest.mark.slow
def test_temp_files_of_a_killed_write_are_removed_by_the_next_run(tmp_path, synthetic_birds, damsm_files):
    configure(tmp_path, synthetic_birds, damsm_files)
    GANTrainer("main").train()
    models = tmp_path / "output" / "tiny" / "models"
    (models / ".latest.pth1234abcd.tmp").write_bytes(b"torn")
    cfg_from_list(["RESTORE", "True", "TRAIN.MAX_EPOCH", "2"])
    GANTrainer("main").train()
    assert not list(models.glob(".*.tmp"))


# --- resume rules ---------------------------------------------------------------------------------

def _trained(tmp_path, synthetic_birds, damsm_files, **extra):
    configure(tmp_path, synthetic_birds, damsm_files, **extra)
    GANTrainer("main").train()
    cfg_from_list(["RESTORE", "True", "TRAIN.MAX_EPOCH", "2"])


@pytest.mark.parametrize("key,value", [("TRAIN.NF", "8"), ("TREE.BASE_SIZE", "128"),
                                       ("TRAIN.DAMSM_INPUT_SIZE", "80")])
@pytest.mark.slow
def test_resume_refuses_a_change_of_what_defines_the_run(tmp_path, synthetic_birds, damsm_files, key, value):
    _trained(tmp_path, synthetic_birds, damsm_files)
    saved = str(cfg_value(key))
    cfg_from_list([key, value])
    with pytest.raises(SSAGANError, match=rf"{key}: saved .*{saved}.*, now .*{value}"):
        GANTrainer("main").train()


def cfg_value(key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


@pytest.mark.slow
def test_resume_applies_new_learning_rates_and_batch_size_and_records_them(tmp_path, synthetic_birds, damsm_files):
    _trained(tmp_path, synthetic_birds, damsm_files)
    cfg_from_list(["TRAIN.GENERATOR_LR", "0.0005", "TRAIN.BATCH_SIZE", "4"])
    trainer = GANTrainer("main")
    trainer.restore()
    assert all(g["lr"] == 0.0005 for g in trainer.optG.param_groups)
    assert all(g["lr"] == cfg.TRAIN.DISCRIMINATOR_LR for g in trainer.optD.param_groups)
    assert trainer.loader.batch_size == 4
    trainer.train()
    history = yaml.safe_load((tmp_path / "output" / "tiny" / "config_history.yaml").read_text())
    assert history == [{"epoch": 2, "changed": {"TRAIN.BATCH_SIZE": [6, 4], "TRAIN.GENERATOR_LR": [0.0001, 0.0005],
                                                "TRAIN.MAX_EPOCH": [1, 2]}}]
    assert yaml.safe_load((tmp_path / "output" / "tiny" / "config.yaml").read_text())["TRAIN"]["BATCH_SIZE"] == 4


@pytest.mark.slow
def test_resume_applies_a_new_gate_learning_rate_to_the_gates_only(tmp_path, synthetic_birds, damsm_files):
    _trained(tmp_path, synthetic_birds, damsm_files, **{"TRAIN.GENERATOR_GATE_LR": 0.01})
    cfg_from_list(["TRAIN.GENERATOR_GATE_LR", "0.02"])
    trainer = GANTrainer("main")
    trainer.restore()
    assert [g["lr"] for g in trainer.optG.param_groups] == [cfg.TRAIN.GENERATOR_LR, 0.02]
    assert len(trainer.optD.param_groups) == 1


@pytest.mark.slow
@pytest.mark.parametrize("saved,now", [(0.01, 0.0), (0.0, 0.01)])
def test_resume_refuses_to_switch_a_gate_learning_rate_on_or_off(tmp_path, synthetic_birds, damsm_files, saved, now):
    """On/off changes the optimiser's parameter groups, so the saved Adam state no longer fits."""
    _trained(tmp_path, synthetic_birds, damsm_files, **{"TRAIN.DISCRIMINATOR_GATE_LR": saved})
    cfg_from_list(["TRAIN.DISCRIMINATOR_GATE_LR", str(now)])
    with pytest.raises(SSAGANError, match=r"TRAIN.DISCRIMINATOR_GATE_LR (on|off).*Set it back"):
        GANTrainer("main").train()


@pytest.mark.slow
def test_a_resume_with_loader_workers_reproduces_the_uninterrupted_run(tmp_path, synthetic_birds, damsm_files):
    """Workers draw the crops and flips; their seeds must come from the restored random state, so each
    epoch gets fresh workers (persistent ones would carry the uninterrupted run's streams over)."""
    configure(tmp_path / "straight", synthetic_birds, damsm_files, **{"WORKERS": 1, "TRAIN.MAX_EPOCH": 2})
    straight = GANTrainer("main")
    straight.train()
    configure(tmp_path / "killed", synthetic_birds, damsm_files, **{"WORKERS": 1, "TRAIN.MAX_EPOCH": 1})
    GANTrainer("main").train()
    cfg_from_list(["RESTORE", "True", "TRAIN.MAX_EPOCH", "2"])
    resumed = GANTrainer("main")
    resumed.train()
    for (k, a), b in zip(straight.netG.state_dict().items(), resumed.netG.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.slow
def test_resuming_a_finished_run_says_there_is_nothing_to_do(tmp_path, synthetic_birds, damsm_files, capsys):
    _trained(tmp_path, synthetic_birds, damsm_files)
    cfg_from_list(["TRAIN.MAX_EPOCH", "1"])
    latest = tmp_path / "output" / "tiny" / "models" / "latest.pth"
    before = latest.read_bytes()
    GANTrainer("main").train()
    assert "nothing to do" in capsys.readouterr().out
    assert latest.read_bytes() == before


# --- vocabulary identity --------------------------------------------------------------------------

@pytest.mark.slow
def test_a_training_state_is_refused_under_a_renumbered_vocabulary(tmp_path, synthetic_birds, damsm_files):
    data = tmp_path / "birds"
    shutil.copytree(synthetic_birds, data)
    _trained(tmp_path, data, damsm_files)
    permute_vocabulary(data)
    with pytest.raises(SSAGANError, match="vocabulary mismatch.*other words"):
        GANTrainer("main").train()


@pytest.mark.slow
def test_a_text_encoder_written_here_is_refused_under_a_renumbered_vocabulary(tmp_path, synthetic_birds):
    data = tmp_path / "birds"
    shutil.copytree(synthetic_birds, data)
    damsm_main(["--cfg", "cfg/DAMSM/demo.yml", "--gpu", "-1", "--data_dir", str(data), "--opts",
                *tiny_opts(**{"OUTPUT_DIR": tmp_path, "CONFIG_NAME": "damsm", "PROGRESS": "off"})])
    encoder = tmp_path / "damsm" / "models" / "text_encoder0.pth"
    configure(tmp_path / "gan", data, encoder)
    GANTrainer("main")  # same vocabulary: accepted
    permute_vocabulary(data)
    with pytest.raises(SSAGANError, match="same .* words, other word ids"):
        GANTrainer("main")


def test_a_released_text_encoder_has_no_fingerprint_and_only_its_size_is_checked(tmp_path, synthetic_birds,
                                                                                damsm_files):
    data = tmp_path / "birds"
    shutil.copytree(synthetic_birds, data)
    permute_vocabulary(data)
    configure(tmp_path, data, damsm_files)
    GANTrainer("main")  # the released format cannot tell; docs say to use the released captions.pickle


# --- bad values: one sentence, exit 2, nothing written --------------------------------------------

@pytest.mark.parametrize("opts,flags,needle", [
    (("TRAIN.BATCH_SIZE", "0"), (), "TRAIN.BATCH_SIZE = 0 must be >= 2"),
    (("TRAIN.BATCH_SIZE", "-3"), (), "TRAIN.BATCH_SIZE = -3"),
    (("TRAIN.NF", "0"), (), "TRAIN.NF = 0 must be >= 1"),
    (("TRAIN.GSAVE_INTERVAL", "0"), (), "TRAIN.GSAVE_INTERVAL = 0"),
    (("TRAIN.DSAVE_INTERVAL", "0"), (), "TRAIN.DSAVE_INTERVAL = 0"),
    (("TEXT.WORDS_NUM", "0"), (), "TEXT.WORDS_NUM = 0"),
    (("TREE.BASE_SIZE", "100"), (), "TREE.BASE_SIZE = 100"),
    (("TRAIN.DAMSM_INPUT_SIZE", "50"), (), "TRAIN.DAMSM_INPUT_SIZE = 50 must be >= 75"),
    (("TRAIN.MAX_EPOCH", "0"), (), "TRAIN.MAX_EPOCH = 0"),
    (("TRAIN.EMA_DECAY", "1.5"), (), "TRAIN.EMA_DECAY = 1.5"),
    (("TRAIN.EVAL_INTERVAL", "-1"), (), "TRAIN.EVAL_INTERVAL = -1"),
    ((), ("--manualSeed", "-1"), "SEED = -1"),
    ((), ("--manualSeed", str(2 ** 33)), "SEED = 8589934592"),
    (("--resume",), (), "Put flags such as --resume before --opts"),
])
def test_every_bad_value_is_one_sentence_naming_the_key(tmp_path, synthetic_birds, damsm_files, capsys,
                                                       opts, flags, needle):
    err = _exit_message(capsys, cli_main, "main",
                        _cli_args(tmp_path, synthetic_birds, damsm_files, *opts, flags=flags))
    assert needle in err
    assert not (tmp_path / "out").exists()


def test_an_explicit_gpu_without_cuda_is_refused(tmp_path, synthetic_birds, damsm_files, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = _cli_args(tmp_path, synthetic_birds, damsm_files)
    args[args.index("--gpu") + 1] = "0"
    err = _exit_message(capsys, cli_main, "main", args)
    assert "--gpu 0: CUDA is not available" in err and "--gpu -1" in err


@pytest.mark.slow
def test_sampling_into_a_file_is_refused(tmp_path, synthetic_birds, damsm_files, capsys):
    cli_main("main", _cli_args(tmp_path, synthetic_birds, damsm_files))
    target = tmp_path / "a_file"
    target.write_text("mine")
    err = _exit_message(capsys, cli_main, "main", _cli_args(
        tmp_path, synthetic_birds, damsm_files, flags=("--sample", "--out_dir", str(target))))
    assert "is a file" in err and target.read_text() == "mine"


def test_is_py_refuses_a_zero_batch_size_and_a_fake_npz(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    assert IS.main(["--image_dir", str(tmp_path), "--batch_size", "0", "--weights", "random"]) == 2
    assert "--batch_size 0: must be at least 1" in capsys.readouterr().err
    fake = tmp_path / "stats.npz"
    fake.write_text("not numbers")
    assert IS.main(["--image_dir", str(tmp_path), "--fid_ref", str(fake), "--weights", "random"]) == 2
    assert "is not a readable .npz file" in capsys.readouterr().err


# --- faults while writing -------------------------------------------------------------------------

def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "latest.pth"
    run_layout.atomic_save({"epoch": 1}, path)
    before = path.read_bytes()

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(run_layout.os, "fsync", full)
    with pytest.raises(SSAGANError, match="No space left on device.*previous version is intact"):
        run_layout.atomic_save({"epoch": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pth"]  # no temp file left


@pytest.mark.slow
def test_a_full_disk_while_sampling_leaves_a_folder_that_is_known_incomplete(
        tmp_path, synthetic_birds, damsm_files, capsys, monkeypatch):
    cli_main("main", _cli_args(tmp_path, synthetic_birds, damsm_files))
    from PIL import Image

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "samples"
    err = _exit_message(capsys, cli_main, "main", _cli_args(
        tmp_path, synthetic_birds, damsm_files, flags=("--sample", "--out_dir", str(out))))
    assert "No space left on device" in err and "incomplete" in err
    assert not (out / DONE_FILE).exists() and (out / PLAN_FILE).exists()


def test_is_py_refuses_an_interrupted_sample_folder_unless_told(tmp_path, capsys):
    folder = write_sample_folder(tmp_path / "samples", done=False)
    assert IS.main(["--image_dir", str(folder), "--weights", "random", "--splits", "1", "--workers", "0"]) == 2
    assert "3 images of 10 planned" in capsys.readouterr().err


def test_a_data_error_in_a_loader_worker_reads_like_one_without_workers(tmp_path, synthetic_birds, damsm_files,
                                                                        capsys):
    data = tmp_path / "birds"
    shutil.copytree(synthetic_birds, data)
    for jpg in (data / "CUB_200_2011" / "images").rglob("*.jpg"):
        jpg.write_bytes(b"not a jpeg")
    messages = []
    for workers in ("0", "1"):
        err = _exit_message(capsys, cli_main, "main", _cli_args(tmp_path / workers, data, damsm_files, "WORKERS", workers))
        messages.append(err)
    assert "cannot be read" in messages[0]
    assert messages[0] == messages[1]


# --- explaining what was loaded -------------------------------------------------------------------

def test_a_checkpoint_mismatch_starts_with_its_likely_cause(tmp_path):
    from miscc.run.checkpoint import load_checkpoint
    save_released(NetD(4, imsize=64), tmp_path / "netD_001.pth", prefix="module.")
    with pytest.raises(SSAGANError, match=r"^This looks like a discriminator \(netD\) file"):
        load_checkpoint(NetG(4, 100, imsize=64), tmp_path / "netD_001.pth")
    save_released(NetG(8, 100, imsize=64), tmp_path / "netG_001.pth", prefix="module.")
    with pytest.raises(SSAGANError, match=r"^The file was saved with TRAIN.NF 8, the config says 4"):
        load_checkpoint(NetG(4, 100, imsize=64), tmp_path / "netG_001.pth")
    with pytest.raises(SSAGANError, match=r"^The file has 5 blocks, the model 6: .*TREE.BASE_SIZE"):
        load_checkpoint(NetG(8, 100, imsize=128), tmp_path / "netG_001.pth")
    with pytest.raises(SSAGANError, match="is a folder; give the path of the .pth file"):
        load_checkpoint(NetG(4, 100, imsize=64), tmp_path)


def test_released_netd_is_found_beside_netg_whatever_the_folder_names(tmp_path, synthetic_birds, damsm_files):
    folder = tmp_path / "my_netG_runs" / "netG_best_models"
    folder.mkdir(parents=True)
    torch.manual_seed(3)
    save_released(NetD(4, imsize=64), folder / "netD_007.pth", prefix="module.")
    save_released(NetG(4, 100, imsize=64), folder / "netG_007.pth", prefix="module.")
    configure(tmp_path, synthetic_birds, damsm_files, **{"TRAIN.NET_G": folder / "netG_007.pth",
                                                         "TRAIN.MAX_EPOCH": 8})
    trainer = GANTrainer("main")
    trainer.restore()
    expected = torch.load(folder / "netD_007.pth", weights_only=True)
    assert torch.equal(trainer.netD.state_dict()["conv_img.weight"], expected["module.conv_img.weight"])
    assert trainer.start_epoch == 8


@pytest.mark.slow
def test_finetune_from_a_main_generator_says_where_the_encoders_come_from(tmp_path, synthetic_birds, damsm_files,
                                                                         capsys):
    configure(tmp_path / "a", synthetic_birds, damsm_files)
    GANTrainer("main").train()
    netg = tmp_path / "a" / "output" / "tiny" / "models" / "netG_001.pth"
    configure(tmp_path / "b", synthetic_birds, damsm_files, **{"TRAIN.NET_G": netg, "TRAIN.MAX_EPOCH": 2})
    GANTrainer("finetune").restore()
    assert "encoders start from TEXT.DAMSM_NAME" in capsys.readouterr().out
    save_released(RNN_ENCODER(5, nhidden=256), netg.with_name("text_encoder_001.pth"))
    with pytest.raises(SSAGANError, match="come as a pair: one is missing"):
        GANTrainer("finetune").restore()


@pytest.mark.slow
def test_the_start_line_names_device_data_vocabulary_and_start(tmp_path, synthetic_birds, damsm_files, capsys):
    configure(tmp_path, synthetic_birds, damsm_files)
    GANTrainer("main").train()
    out = capsys.readouterr().out
    assert "GAN training on cpu x 1 process(es)" in out and "vocabulary" in out and "starts fresh" in out


def test_progress_in_a_log_file_is_whole_lines(capsys, monkeypatch):
    from miscc.run import progress
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    for _ in progress.progress(range(3), "steps", "log"):
        pass
    lines = capsys.readouterr().err.split("\n")
    assert "\r" not in "".join(lines)
    assert [line.split(" (")[0] for line in lines if line] == ["steps: 1/3", "steps: 2/3", "steps: 3/3"]


# --- the fault probe's verdicts (bench/faults/fault_probe.py) ----------------------------------------------

def test_the_fault_probe_calls_only_a_refusal_that_changed_nothing_clear(tmp_path):
    from bench.faults.fault_probe import changes, classify, fingerprint
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    (run / "models" / "latest.pth").write_bytes(b"state")
    watch = [run, tmp_path / "absent"]
    before = fingerprint(watch)
    assert changes(before, fingerprint(watch)) == []
    one_line = "warning: something\nerror: TRAIN.NF = 0 must be >= 1\n"
    assert classify(2, one_line, "TRAIN.NF = 0", []) == ("clear", "")
    assert classify(2, one_line, "TRAIN.NF = 0", ["x"])[0] == "weak"
    assert classify(2, one_line, "TRAIN.BATCH_SIZE", [])[0] == "weak"        # does not name the key
    assert classify(1, one_line, "TRAIN.NF = 0", [])[0] == "weak"
    assert classify(2, one_line + "Traceback (most recent call last):\n", "TRAIN.NF", [])[0] == "bad"
    assert classify(0, "", "TRAIN.NF", [])[0] == "bad"
    assert classify(None, "", "TRAIN.NF", [])[0] == "bad"
    (run / "models" / "latest.pth").write_bytes(b"other")
    (tmp_path / "absent").mkdir()
    assert changes(before, fingerprint(watch)) == [f"{run}/models/latest.pth", str(tmp_path / "absent")]

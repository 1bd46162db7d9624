"""DAMSM pretraining (``python DAMSM.py``): learning, released-format outputs, resume, errors.

One short run is shared by several tests (module fixture); every run uses WORKERS 0 and a fixed
seed, so an interrupted-and-resumed run must reproduce it bit for bit. The run uses its own synthetic
set of 8 species x 8 images: on the session's 4 x 6 set an epoch is 3 batches of mostly same-class
pairs, and its loss is so noisy that a run with lr 0 "improves" as often as a learning one.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import DAMSM
from DAMSM import CNN_ENCODER, RNN_ENCODER
from miscc.train import damsm as damsm_trainer
from miscc.run.checkpoint import load_checkpoint, load_file
from miscc.config.cli import apply_args, base_parser
from miscc.config import reset_cfg
from miscc.train.damsm import lr_at_epoch, pretrain
from miscc.run.layout import damsm_epoch_from_name as epoch_of_text_encoder
from miscc.errors import SSAGANError
from tests.helpers import bird_set, tiny_opts

DEMO_CFG = str(Path(__file__).resolve().parents[1] / "cfg" / "DAMSM" / "demo.yml")
N_EPOCHS = 3


def damsm_argv(out: Path, name: str, epochs: int, *extra: str) -> list[str]:
    """The tiny settings with 32 px crops (seen by the encoder at 75 px: 3 x 3 regions), batches of 8."""
    return ["--cfg", DEMO_CFG, "--gpu", "-1", "--manualSeed", "0", "--opts",
            *tiny_opts(**{"OUTPUT_DIR": out, "CONFIG_NAME": name, "TREE.BASE_SIZE": 32, "TRAIN.BATCH_SIZE": 8,
                          "TRAIN.MAX_EPOCH": epochs, "TRAIN.SNAPSHOT_INTERVAL": 2, "TRAIN.ENCODER_LR": 0.005}),
            *extra]


def configure(argv: list[str]) -> None:
    reset_cfg()
    apply_args(base_parser("test", DEMO_CFG).parse_args(argv), entry="damsm")


def models(out: Path, name: str) -> Path:
    return out / name / "models"


# Batches of 8 tiny images gain nothing from intra-op threads (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def birds(tmp_path_factory) -> Path:
    """6 train species (48 images, 6 batches of 8) and 2 test species (16 images, 2 batches)."""
    root = tmp_path_factory.mktemp("damsm_data") / "birds"
    bird_set(root, classes=8, per_class=8)
    return root


@pytest.fixture(scope="module")
def reference_run(birds, tmp_path_factory):
    """N_EPOCHS uninterrupted epochs; returns (output dir, per-epoch stats)."""
    out = tmp_path_factory.mktemp("damsm_out")
    configure(damsm_argv(out, "ref", N_EPOCHS, "DATA_DIR", str(birds)))
    history = pretrain()
    reset_cfg()
    return out, history


@pytest.mark.slow
def test_pretraining_reduces_the_training_loss(reference_run):
    _, history = reference_run
    assert [h.epoch for h in history] == list(range(N_EPOCHS))
    # Seeds 0-4 give last/first 0.68-0.82 here; with lr 0 (nothing learnt) 0.95-1.05.
    assert history[-1].train_total < 0.9 * history[0].train_total, [h.train_total for h in history]
    assert [h.lr for h in history] == pytest.approx([0.005 * 0.98 ** e for e in range(N_EPOCHS)])
    assert all(h.val_word > 0 and h.val_sent > 0 for h in history)


@pytest.mark.slow
def test_released_files_load_strictly_into_fresh_encoders(reference_run):
    out, _ = reference_run
    folder = models(out, "ref")
    # snapshots at epoch % 2 == 0 plus the last epoch (2 here, already a multiple)
    assert sorted(p.name for p in folder.glob("*_encoder*.pth")) == [
        "image_encoder0.pth", "image_encoder2.pth", "text_encoder0.pth", "text_encoder2.pth"]
    n_words = load_file(folder / "text_encoder2.pth")["encoder.weight"].shape[0]
    for name, fresh in (("text_encoder2.pth", RNN_ENCODER(n_words, nhidden=256)),
                        ("image_encoder2.pth", CNN_ENCODER(256, pretrained=False, input_size=75))):
        state = load_file(folder / name)
        assert isinstance(state, dict) and not any(k.startswith("module.") for k in state)
        before = {k: v.clone() for k, v in fresh.state_dict().items()}
        load_checkpoint(fresh, folder / name)
        after = fresh.state_dict()
        assert all(torch.equal(after[k], state[k]) for k in state)
        assert not all(torch.equal(before[k], after[k]) for k in before)
    # epoch 0 and epoch 2 differ: training kept changing the weights after the first snapshot
    assert not torch.equal(load_file(folder / "text_encoder0.pth")["rnn.weight_hh_l0"],
                           load_file(folder / "text_encoder2.pth")["rnn.weight_hh_l0"])
    assert (out / "ref" / "config.yaml").is_file()
    assert list((out / "ref" / "tb").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_kill_and_resume_continues_at_the_next_epoch_and_matches(reference_run, birds, tmp_path,
                                                                  monkeypatch):
    ref_out, _ = reference_run
    # Killed in the middle of epoch 2 (6 train + 2 val batches per epoch, then 3 more batches).
    real, calls = damsm_trainer.damsm_batch_losses, []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) > 8 * 2 + 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(damsm_trainer, "damsm_batch_losses", dying)
    configure(damsm_argv(tmp_path, "run", N_EPOCHS, "DATA_DIR", str(birds)))
    with pytest.raises(KeyboardInterrupt):
        pretrain()
    monkeypatch.undo()
    folder = models(tmp_path, "run")
    state = load_file(folder / "latest_damsm.pth")
    assert state["epoch"] == 1
    assert state["lr"] == pytest.approx(lr_at_epoch(2, 0.005))
    assert sorted(p.name for p in folder.glob("text_encoder*.pth")) == ["text_encoder0.pth"]

    configure(["--resume"] + damsm_argv(tmp_path, "run", N_EPOCHS, "DATA_DIR", str(birds)))
    resumed = pretrain()
    assert [h.epoch for h in resumed] == [2]
    assert load_file(folder / "latest_damsm.pth")["epoch"] == 2
    for kind in ("text_encoder", "image_encoder"):
        mine = load_file(folder / f"{kind}2.pth")
        ref = load_file(models(ref_out, "ref") / f"{kind}2.pth")
        assert mine.keys() == ref.keys()
        assert all(torch.equal(mine[k], ref[k]) for k in ref), f"{kind}: resumed run diverged"

    # resuming a finished run does nothing
    configure(["--resume"] + damsm_argv(tmp_path, "run", N_EPOCHS, "DATA_DIR", str(birds)))
    assert pretrain() == []


@pytest.mark.slow
def test_net_e_resumes_from_released_files_at_the_next_epoch(reference_run, birds, tmp_path):
    ref_out, _ = reference_run
    net_e = models(ref_out, "ref") / "text_encoder0.pth"
    configure(damsm_argv(tmp_path, "from_e", 2, "DATA_DIR", str(birds), "TRAIN.NET_E", str(net_e)))
    history = pretrain()
    assert [h.epoch for h in history] == [1]
    assert history[0].lr == pytest.approx(lr_at_epoch(1, 0.005))
    assert epoch_of_text_encoder("x/text_encoder200.pth") == 200
    with pytest.raises(SSAGANError, match="text_encoder<epoch>.pth"):
        epoch_of_text_encoder("x/netG_200.pth")


def test_lr_schedule_matches_the_original():
    # 0.002 decays 114 times, then stays just below ENCODER_LR / 10 (docs/ORIGINAL.md, 'DAMSM pretraining')
    assert lr_at_epoch(114, 0.002) == pytest.approx(0.002 * 0.98 ** 114)
    assert lr_at_epoch(114, 0.002) < 0.0002 < lr_at_epoch(113, 0.002)
    assert lr_at_epoch(599, 0.002) == lr_at_epoch(114, 0.002)


def test_missing_data_dir_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    missing = tmp_path / "no_birds_here"
    configure(damsm_argv(tmp_path, "bad", 1, "DATA_DIR", str(missing)))
    with pytest.raises(SSAGANError, match="does not exist"):
        pretrain()
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit) as exit_info:
        DAMSM.cli_main(damsm_argv(tmp_path, "bad", 1, "DATA_DIR", str(missing)))
    assert exit_info.value.code == 2
    assert "no_birds_here" in capsys.readouterr().err


def test_resume_without_a_state_is_an_error(synthetic_birds, tmp_path):
    configure(["--resume"] + damsm_argv(tmp_path, "none", 1, "DATA_DIR", str(synthetic_birds)))
    with pytest.raises(SSAGANError, match="nothing to resume"):
        pretrain()


def test_the_small_trunk_learns_with_the_projections_and_its_files_name_their_trunk(birds, tmp_path):
    """TRAIN.DAMSM_TRUNK small (offline demos): the trunk's weights change in pretraining (the Inception
    trunk's never do), the files load into the small encoder only, and building the other trunk from
    them names the key to set."""
    from miscc.run.encoders import EncoderSpec, image_encoder

    configure(damsm_argv(tmp_path, "small", 2, "DATA_DIR", str(birds), "TRAIN.DAMSM_TRUNK", "small",
                         "TRAIN.SNAPSHOT_INTERVAL", "1"))
    history = pretrain()
    reset_cfg()
    assert history[-1].train_total < history[0].train_total
    folder = models(tmp_path, "small")
    first, last = load_file(folder / "image_encoder0.pth"), load_file(folder / "image_encoder1.pth")
    assert not torch.equal(first["trunk.0.weight"], last["trunk.0.weight"])
    small = EncoderSpec(256, input_size=75, trunk="small")
    local, code = image_encoder(small, folder / "image_encoder1.pth").eval()(torch.zeros(2, 3, 32, 32))
    assert local.shape == (2, 256, 10, 10) and code.shape == (2, 256)
    with pytest.raises(SSAGANError, match="TRAIN.DAMSM_TRUNK 'small'.*set TRAIN.DAMSM_TRUNK small"):
        image_encoder(EncoderSpec(256, input_size=75), folder / "image_encoder1.pth")
    inception = tmp_path / "inception.pth"
    torch.save(CNN_ENCODER(256, pretrained=False, input_size=75).state_dict(), inception)
    with pytest.raises(SSAGANError, match="TRAIN.DAMSM_TRUNK 'inception'"):
        image_encoder(small, inception)

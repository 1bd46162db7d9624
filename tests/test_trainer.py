"""The GAN training loop on the tiny synthetic set: main and finetune modes, checkpoints, resume."""
import copy

import pytest
import torch

from DAMSM import RNN_ENCODER
from miscc.run.checkpoint import save_released
from miscc.config import cfg, cfg_from_list
from miscc.errors import SSAGANError
from main import cli_main
from miscc.train.gan import GANTrainer
from miscc.run.seeding import seed_everything
from tests.helpers import changed, configure, snapshot, tiny_opts


def test_main_epoch_trains_g_and_d_and_keeps_encoders_frozen(tmp_path, synthetic_birds, damsm_files):
    configure(tmp_path, synthetic_birds, damsm_files)
    trainer = GANTrainer("main")
    g0, d0 = snapshot(trainer.netG), snapshot(trainer.netD)
    t0, i0 = snapshot(trainer.text_encoder), snapshot(trainer.image_encoder)
    stats = []
    trainer.step = (lambda step: lambda data: stats.append(step(data)) or stats[-1])(trainer.step)
    out = trainer.train()

    assert len(stats) == 3  # 18 train images, batch 6, drop_last
    for s in stats:
        assert all(torch.isfinite(v) for v in s.values())
        assert {"errD/d_loss", "errD/MAGP", "errG/g_loss", "errG/DAMSM"} <= set(s)
    assert "fc.weight" in changed(g0, trainer.netG) and "block0.gamma" in changed(g0, trainer.netG)
    assert "COND_DNET.joint_conv.0.weight" in changed(d0, trainer.netD)
    assert not changed(t0, trainer.text_encoder) and not changed(i0, trainer.image_encoder)

    models = out / "models"
    netg = torch.load(models / "netG_001.pth", weights_only=True)
    assert all(k.startswith("module.") for k in netg)
    assert (models / "netD_001.pth").is_file() and (models / "latest.pth").is_file()
    assert (out / "config.yaml").is_file() and (out / "images" / "epoch_001.png").is_file()
    assert any((out / "tb").iterdir())
    assert not (models / "text_encoder_001.pth").exists()


def test_finetune_epoch_updates_encoders_but_not_the_inception_trunk(tmp_path, synthetic_birds, damsm_files):
    configure(tmp_path, synthetic_birds, damsm_files)
    trainer = GANTrainer("finetune")
    assert trainer.damsm_weight == 0.1 and trainer.text_encoder.training
    t0, i0 = snapshot(trainer.text_encoder), snapshot(trainer.image_encoder)
    out = trainer.train()
    assert {"encoder.weight", "rnn.weight_ih_l0"} <= changed(t0, trainer.text_encoder)
    moved = changed(i0, trainer.image_encoder)
    assert {"emb_features.weight", "emb_cnn_code.weight"} <= moved
    assert not [k for k in moved if k.endswith(".conv.weight")]  # trunk weights stay frozen
    for name in ("netG_001.pth", "text_encoder_001.pth", "image_encoder_001.pth"):
        assert (out / "models" / name).is_file()


@pytest.mark.slow
def test_kill_and_resume_reproduces_the_uninterrupted_run(tmp_path, synthetic_birds, damsm_files):
    configure(tmp_path / "straight", synthetic_birds, damsm_files, **{"TRAIN.MAX_EPOCH": 2})
    straight = GANTrainer("main")
    straight.train()

    configure(tmp_path / "killed", synthetic_birds, damsm_files, **{"TRAIN.MAX_EPOCH": 1})
    GANTrainer("main").train()  # "killed" after epoch 1: only latest.pth survives in memory terms
    cfg_from_list(["TRAIN.MAX_EPOCH", "2", "RESTORE", "True"])
    seed_everything(12345)  # a different process start: the saved RNG state must win
    resumed = GANTrainer("main")
    resumed.restore()
    assert resumed.start_epoch == 2 and resumed.step_count == 3
    opt_after_epoch1 = copy.deepcopy(resumed.optG.state_dict()["state"])
    assert opt_after_epoch1[0]["step"] == 3
    resumed.train()

    assert resumed.step_count == straight.step_count == 6
    for (k, a), b in zip(straight.netG.state_dict().items(), resumed.netG.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    sa, sb = straight.optD.state_dict()["state"], resumed.optD.state_dict()["state"]
    for i in sa:
        assert torch.allclose(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"], atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_released_netg_resumes_with_epoch_from_its_name(tmp_path, synthetic_birds, damsm_files):
    configure(tmp_path / "a", synthetic_birds, damsm_files)
    GANTrainer("main").train()
    released = tmp_path / "released" / "netG_550.pth"
    released.parent.mkdir()
    (tmp_path / "a" / "output" / "tiny" / "models" / "netG_001.pth").rename(released)

    configure(tmp_path / "b", synthetic_birds, damsm_files, **{"TRAIN.NET_G": released,
                                                               "TRAIN.MAX_EPOCH": 551})
    trainer = GANTrainer("finetune")
    trainer.restore()  # no netD_550 / text_encoder_550 next to it: those start from their defaults
    assert trainer.start_epoch == 551
    assert trainer.optG.state_dict()["state"] == {}


def test_resume_without_anything_to_resume_is_a_clear_error(tmp_path, synthetic_birds, damsm_files):
    configure(tmp_path, synthetic_birds, damsm_files, RESTORE=True)
    with pytest.raises(SSAGANError, match="nothing to resume"):
        GANTrainer("main").restore()


@pytest.mark.slow
def test_resume_refuses_a_state_of_the_other_mode(tmp_path, synthetic_birds, damsm_files):
    configure(tmp_path, synthetic_birds, damsm_files)
    GANTrainer("main").train()
    cfg_from_list(["RESTORE", "True", "TRAIN.MAX_EPOCH", "2"])
    with pytest.raises(SSAGANError, match="'main' run"):
        GANTrainer("finetune").restore()


def test_wrong_vocabulary_encoder_is_refused_before_training(tmp_path, synthetic_birds):
    bad = tmp_path / "text_encoder200.pth"
    save_released(RNN_ENCODER(7, nhidden=256), bad)
    configure(tmp_path, synthetic_birds, bad)
    with pytest.raises(SSAGANError, match="vocabulary mismatch"):
        GANTrainer("main")


def test_command_line_trains_and_reports_user_errors(tmp_path, synthetic_birds, damsm_files, capsys):
    args = ["--cfg", "cfg/bird.yml", "--gpu", "-1", "--data_dir", str(synthetic_birds), "--opts",
            *tiny_opts(**{"OUTPUT_DIR": tmp_path, "CONFIG_NAME": "cli", "TEXT.DAMSM_NAME": damsm_files})]
    cli_main("main", args)
    assert (tmp_path / "cli" / "models" / "netG_001.pth").is_file()
    assert cfg.CUDA is False and cfg.TRAIN.NF == 4  # file < flags < --opts

    with pytest.raises(SystemExit) as exit_info:
        cli_main("main", ["--cfg", "cfg/bird.yml", "--opts", "TRAIN.BATCHSIZE", "3"])
    assert exit_info.value.code == 2
    assert "TRAIN.BATCHSIZE is not a valid config key" in capsys.readouterr().err

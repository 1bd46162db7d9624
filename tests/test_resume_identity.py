"""What a resume checks beyond the config (issue 23): contradictory flags, the data set's file list."""
from __future__ import annotations

import pytest
import torch

from miscc.config import cfg_from_list
from miscc.run.data_identity import check_identity, split_identity
from miscc.errors import SSAGANError
from main import cli_main
from miscc.train.gan import GANTrainer
from tests.helpers import configure

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("flags, named", [(["--resume", "--start_over"], "--resume"),
                                          (["--start_over", "--opts", "RESTORE", "True"], "RESTORE True")])
def test_resume_and_start_over_together_are_refused_naming_both(tmp_path, capsys, flags, named):
    argv = ["--cfg", "cfg/demo.yml", "--gpu", "-1", *flags]
    if "--opts" not in flags:
        argv += ["--opts"]
    argv += ["OUTPUT_DIR", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        cli_main("main", argv)
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0] and "--start_over" in errors[0] and "contradict" in errors[0]
    assert not (tmp_path / "out").exists()


def test_the_identity_is_the_train_file_list_not_the_folder():
    a = split_identity(["x/1", "x/2"], "/data/birds")
    assert split_identity(["x/1", "x/2"], "/moved/birds")["train_files_sha256"] == a["train_files_sha256"]
    check_identity(a, split_identity(["x/1", "x/2"], "/moved/birds"), "latest.pth")  # a moved folder resumes
    check_identity(None, a, "latest.pth")  # a state written before the identity was recorded
    with pytest.raises(SSAGANError, match=r"trained on another data set: 2 train images of /data/birds .* has 3"):
        check_identity(a, split_identity(["x/1", "x/2", "x/3"], "/data/big_birds"), "latest.pth")
    with pytest.raises(SSAGANError, match="the same number of other files"):
        check_identity(a, split_identity(["x/1", "y/2"], "/data/birds"), "latest.pth")


@pytest.mark.slow
def test_a_resume_on_another_train_split_is_refused(tmp_path, synthetic_birds, damsm_files):
    configure(tmp_path, synthetic_birds, damsm_files)
    run = GANTrainer("main").train()
    latest = run / "models" / "latest.pth"
    state = torch.load(latest, weights_only=True)
    assert state["data"] == split_identity(GANTrainer("main").dataset.filenames, str(synthetic_birds))
    # As if the run had been trained on a folder of 48 images under the same name and vocabulary.
    state["data"] = {**state["data"], "train_images": 48, "train_files_sha256": "0" * 64}
    torch.save(state, latest)
    before = latest.read_bytes()
    cfg_from_list(["RESTORE", "True", "TRAIN.MAX_EPOCH", "2"])
    with pytest.raises(SSAGANError, match=r"latest.pth was trained on another data set: 48 train images"):
        GANTrainer("main").train()
    assert latest.read_bytes() == before
    del state["data"]  # a state written before the identity was recorded resumes as it did
    torch.save(state, latest)
    GANTrainer("main").train()
    assert torch.load(latest, weights_only=True)["epoch"] == 2

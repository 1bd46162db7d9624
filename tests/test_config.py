"""Config: defaults, YAML merge rules, CLI overrides and the errors users see."""
import pytest
import yaml

from miscc.config import SPEC, cfg, cfg_from_file, cfg_from_list, config_doc_markdown, reset_cfg, save_cfg
from miscc.errors import SSAGANError


def write(tmp_path, text, name="c.yml"):
    p = tmp_path / name
    p.write_text(text)
    return p


# The original miscc/config/__init__.py defaults (docs/ORIGINAL.md, 'Configuration'), written out here rather
# than read from SPEC: cfg is built from SPEC, so comparing the two could never fail.
ORIGINAL_DEFAULTS = {
    "DATASET_NAME": "birds", "CONFIG_NAME": "", "DATA_DIR": "", "GPU_ID": 0, "CUDA": True, "WORKERS": 6,
    "RNN_TYPE": "LSTM", "B_VALIDATION": False, "RESTORE": False, "USE_SN": False, "loss": "hinge",
    "TREE.BRANCH_NUM": 3, "TREE.BASE_SIZE": 64,
    "TRAIN.BATCH_SIZE": 64, "TRAIN.MAX_EPOCH": 600, "TRAIN.SNAPSHOT_INTERVAL": 2000,
    "TRAIN.ENCODER_LR": 2e-4, "TRAIN.RNN_GRAD_CLIP": 0.25, "TRAIN.FLAG": True, "TRAIN.NET_E": "",
    "TRAIN.NET_G": "", "TRAIN.B_NET_D": True, "TRAIN.NF": 32, "TRAIN.SMOOTH.GAMMA1": 5.0,
    "TRAIN.SMOOTH.GAMMA2": 5.0, "TRAIN.SMOOTH.GAMMA3": 10.0, "TRAIN.SMOOTH.LAMBDA": 1.0,
    "TRAIN.WARMUP_EPOCHS": 200, "TRAIN.GSAVE_INTERVAL": 10, "TRAIN.DSAVE_INTERVAL": 10,
    "GAN.DF_DIM": 64, "GAN.GF_DIM": 128, "GAN.Z_DIM": 100, "GAN.CONDITION_DIM": 100, "GAN.R_NUM": 2,
    "GAN.B_ATTENTION": True, "GAN.B_DCGAN": True,
    "TEXT.CAPTIONS_PER_IMAGE": 10, "TEXT.EMBEDDING_DIM": 256, "TEXT.WORDS_NUM": 18,
    "TEXT.DAMSM_NAME": "../DAMSMencoders/coco/text_encoder200.pth",
}
# The original's (inert) 2e-4 defaults are replaced by the values its main.py hard-coded.
RELEASED_LR_DEFAULTS = {"TRAIN.DISCRIMINATOR_LR": 4e-4, "TRAIN.GENERATOR_LR": 1e-4}


def _lookup(name):
    node = cfg
    for part in name.split("."):
        node = node[part]
    return node


def test_every_key_has_a_doc():
    for key in SPEC:
        assert key.doc.strip(), key.name


def test_keys_of_the_original_keep_its_defaults_and_types():
    for name, value in {**ORIGINAL_DEFAULTS, **RELEASED_LR_DEFAULTS}.items():
        assert _lookup(name) == value and type(_lookup(name)) is type(value), name


def test_original_style_yaml_with_inert_keys_still_loads(tmp_path):
    path = write(tmp_path, """
CONFIG_NAME: 'bird_sloss01'
DATASET_NAME: 'birds'
DATA_DIR: 'data/birds'
GPU_ID: 0
WORKERS: 1
B_VALIDATION: True
loss: 'hinge'
TREE:
  BRANCH_NUM: 1
  BASE_SIZE: 256
TRAIN:
  NF: 64
  BATCH_SIZE: 24
  MAX_EPOCH: 600
  NET_G: ''
  WARMUP_EPOCHS: 100
  GSAVE_INTERVAL: 10
  DSAVE_INTERVAL: 10
TEXT:
  EMBEDDING_DIM: 256
  CAPTIONS_PER_IMAGE: 10
  DAMSM_NAME: 'DAMSMencoders/bird/text_encoder200.pth'
""")
    with pytest.warns(UserWarning, match=r"TREE.BRANCH_NUM = 1 has no effect \(inert") as record:
        cfg_from_file(path)
    assert len(record) == 1  # loss: 'hinge' is an inert key at its default: no warning
    assert cfg.TRAIN.NF == 64 and cfg.TREE.BASE_SIZE == 256 and cfg.B_VALIDATION is True
    assert cfg.TRAIN.SMOOTH.GAMMA1 == 5.0  # untouched nested defaults survive a partial section


def test_unknown_key_names_the_file_the_key_and_the_valid_keys(tmp_path):
    path = write(tmp_path, "TRAIN:\n  BATCHSIZE: 8\n")
    with pytest.raises(SSAGANError) as err:
        cfg_from_file(path)
    msg = str(err.value)
    assert str(path) in msg and "TRAIN.BATCHSIZE" in msg and "BATCH_SIZE" in msg


def test_wrong_type_is_rejected_with_the_expected_type(tmp_path):
    with pytest.raises(SSAGANError, match=r"TRAIN.BATCH_SIZE must be int, got str"):
        cfg_from_file(write(tmp_path, "TRAIN:\n  BATCH_SIZE: eight\n"))
    with pytest.raises(SSAGANError, match="write 0.0002"):
        cfg_from_file(write(tmp_path, "TRAIN:\n  GENERATOR_LR: 2e-4\n"))


def test_int_is_accepted_for_a_float_key(tmp_path):
    cfg_from_file(write(tmp_path, "TRAIN:\n  SMOOTH:\n    GAMMA1: 4\n"))
    assert cfg.TRAIN.SMOOTH.GAMMA1 == 4.0 and isinstance(cfg.TRAIN.SMOOTH.GAMMA1, float)


def test_choices_are_listed(tmp_path):
    with pytest.raises(SSAGANError, match=r"\['LSTM', 'GRU'\]"):
        cfg_from_file(write(tmp_path, "RNN_TYPE: 'RNN'\n"))


def test_section_given_as_a_scalar_is_an_error(tmp_path):
    with pytest.raises(SSAGANError, match="TRAIN must be a mapping"):
        cfg_from_file(write(tmp_path, "TRAIN: 3\n"))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SSAGANError, match="does not exist"):
        cfg_from_file(tmp_path / "nope.yml")


def test_cli_overrides_beat_the_file(tmp_path):
    cfg_from_file(write(tmp_path, "TRAIN:\n  BATCH_SIZE: 24\nB_VALIDATION: False\n"))
    cfg_from_list(["TRAIN.BATCH_SIZE", "8", "B_VALIDATION", "True", "TRAIN.GENERATOR_LR", "1e-4",
                   "TRAIN.NET_G", "models/netG_100.pth", "CONFIG_NAME", "123"])
    assert cfg.TRAIN.BATCH_SIZE == 8 and cfg.B_VALIDATION is True
    assert cfg.TRAIN.GENERATOR_LR == pytest.approx(1e-4) and cfg.TRAIN.NET_G == "models/netG_100.pth"
    assert cfg.CONFIG_NAME == "123"


def test_cli_errors():
    with pytest.raises(SSAGANError, match="Did you mean TRAIN.BATCH_SIZE"):
        cfg_from_list(["BATCH_SIZE", "8"])
    with pytest.raises(SSAGANError, match="pairs"):
        cfg_from_list(["TRAIN.NF"])
    with pytest.raises(SSAGANError, match="TRAIN.NF must be int"):
        cfg_from_list(["TRAIN.NF", "big"])


def test_saved_config_loads_back_identically(tmp_path):
    cfg_from_list(["TRAIN.NF", "16", "DATA_DIR", "data/x"])
    save_cfg(tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    reset_cfg()
    assert cfg.TRAIN.NF == 32
    cfg_from_file(tmp_path / "config.yaml")
    assert cfg.TRAIN.NF == 16 and cfg.DATA_DIR == "data/x" and saved["TRAIN"]["NF"] == 16


def test_docs_table_lists_every_key():
    table = config_doc_markdown()
    for key in SPEC:
        assert f"`{key.name}`" in table


def test_docs_config_md_is_up_to_date():
    from pathlib import Path
    doc = Path(__file__).resolve().parents[1] / "docs" / "CONFIG.md"
    assert doc.read_text() == config_doc_markdown(), "run: python -m miscc.config > docs/CONFIG.md"


def test_cross_key_rules_fail_at_load_time_not_at_the_first_step_or_evaluation():
    import model
    from miscc.config import GAN_TEXT_DIM, validate_for
    assert GAN_TEXT_DIM == model.SENT_DIM
    cfg_from_list(["TEXT.EMBEDDING_DIM", "128"])
    validate_for("damsm")  # a DAMSM pair may have any even width
    with pytest.raises(SSAGANError, match="TEXT.EMBEDDING_DIM = 128: the generator and the discriminator take 256"):
        validate_for("gan")
    reset_cfg()
    cfg_from_list(["EVAL.METRICS", "r_precision", "EVAL.BEST_METRIC", "fid"])
    validate_for("gan")  # evaluation off: nothing to pick
    cfg_from_list(["TRAIN.EVAL_INTERVAL", "2"])
    with pytest.raises(SSAGANError, match="EVAL.BEST_METRIC = 'fid' is not computed: EVAL.METRICS is 'r_precision'"):
        validate_for("gan")

"""Released-format checkpoints: prefixes, strict loading, clear errors, old DAMSM files, atomic writes."""
import os
from collections import OrderedDict

import pytest
import torch

from DAMSM import CNN_ENCODER, RNN_ENCODER
from miscc.run.checkpoint import atomic_save, load_checkpoint, load_into, released_state_dict, save_released
from miscc.errors import SSAGANError
from model import NetD, NetG


def randomized(module):
    torch.manual_seed(123)
    for t in module.state_dict().values():
        if t.is_floating_point():
            t.normal_()
    return module


@pytest.mark.parametrize("prefix", ["module.", ""])
def test_released_netg_file_round_trips_strictly(tmp_path, prefix):
    src = randomized(NetG(8, 100, imsize=64))
    path = tmp_path / "netG_600.pth"
    torch.save(released_state_dict(src, prefix), path)  # as the original's torch.save(wrapper.state_dict())
    dst = load_checkpoint(NetG(8, 100, imsize=64), path)
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert torch.equal(a, b), k


def test_released_netd_file_has_module_prefix(tmp_path):
    save_released(NetD(4, imsize=64), tmp_path / "netD_100.pth", prefix="module.")
    keys = list(torch.load(tmp_path / "netD_100.pth", weights_only=True))
    assert keys[0] == "module.conv_img.weight" and all(k.startswith("module.") for k in keys)
    load_checkpoint(NetD(4, imsize=64), tmp_path / "netD_100.pth")


def test_loading_into_a_wrapped_module(tmp_path):
    src = randomized(NetD(4, imsize=64))
    wrapper = torch.nn.DataParallel(NetD(4, imsize=64))
    load_into(wrapper, src.state_dict(), "plain state dict")
    assert torch.equal(wrapper.module.conv_img.weight, src.conv_img.weight)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = released_state_dict(NetG(8, imsize=64), "module.")
    del state["module.block1.c1.weight"]
    state["module.extra.weight"] = torch.zeros(1)
    with pytest.raises(SSAGANError) as err:
        load_into(NetG(8, imsize=64), state, "netG_bad.pth")
    msg = str(err.value)
    assert "netG_bad.pth" in msg and "block1.c1.weight" in msg and "extra.weight" in msg


def test_shape_mismatch_names_the_key_and_both_shapes():
    state = NetG(8, imsize=64).state_dict()
    with pytest.raises(SSAGANError) as err:
        load_into(NetG(16, imsize=64), state, "netG_small.pth")
    assert "fc.weight: file (1024, 100) vs model (2048, 100)" in str(err.value)
    assert "TRAIN.NF" in str(err.value)


def test_2018_damsm_image_encoder_without_bn_counters_loads(tmp_path):
    src = randomized(CNN_ENCODER(16, pretrained=False))
    old = OrderedDict((k, v) for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked"))
    assert len(old) == len(src.state_dict()) - 94
    path = tmp_path / "image_encoder200.pth"
    torch.save(old, path)
    dst = load_checkpoint(CNN_ENCODER(16, pretrained=False), path)
    assert torch.equal(dst.Mixed_7c.branch_pool.bn.running_var, src.Mixed_7c.branch_pool.bn.running_var)


def test_only_bn_counters_may_be_missing(tmp_path):
    state = OrderedDict((k, v) for k, v in CNN_ENCODER(16, pretrained=False).state_dict().items()
                        if not k.endswith("num_batches_tracked") and k != "emb_cnn_code.bias")
    with pytest.raises(SSAGANError, match="emb_cnn_code.bias"):
        load_into(CNN_ENCODER(16, pretrained=False), state)


def test_text_encoder_file_loads_plain(tmp_path):
    src = randomized(RNN_ENCODER(30, nhidden=16))
    torch.save(src.state_dict(), tmp_path / "text_encoder200.pth")
    dst = load_checkpoint(RNN_ENCODER(30, nhidden=16), tmp_path / "text_encoder200.pth")
    assert torch.equal(dst.encoder.weight, src.encoder.weight)
    with pytest.raises(SSAGANError, match="encoder.weight: file \\(30, 300\\) vs model \\(31, 300\\)"):
        load_checkpoint(RNN_ENCODER(31, nhidden=16), tmp_path / "text_encoder200.pth")


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(SSAGANError, match="does not exist"):
        load_checkpoint(NetD(4, imsize=64), tmp_path / "nope.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SSAGANError, match="corrupt"):
        load_checkpoint(NetD(4, imsize=64), tmp_path / "bad.pth")


def test_untrusted_pickles_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(SSAGANError):
        load_checkpoint(NetD(4, imsize=64), tmp_path / "evil.pth")


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "latest.pth"
    atomic_save({"epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_save({"epoch": 2, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["latest.pth"]

"""RNN_ENCODER / CNN_ENCODER: released layouts, output shapes and the offline behaviour."""
import pytest
import torch

from DAMSM import CNN_ENCODER, RNN_ENCODER
from miscc.errors import SSAGANError
from tests.helpers import checkpoint_facts, reference_state_dict, state_dict_rows


def test_rnn_encoder_state_dict_is_the_released_one():
    enc = RNN_ENCODER(5450, nhidden=256)
    assert state_dict_rows(enc) == reference_state_dict("RNN_ENCODER_ntoken5450_nhidden256.json")
    # Counts measured on the original classes (tests/data/reference/checkpoint_facts.json).
    facts = checkpoint_facts()["RNN_ENCODER"]
    assert sum(p.numel() for p in enc.parameters()) == facts["params_total"]
    coco = RNN_ENCODER(27297, nhidden=256)
    assert sum(p.numel() for p in coco.parameters()) == facts["params_total_coco_ntoken27297"]


def test_cnn_encoder_state_dict_is_the_released_one():
    enc = CNN_ENCODER(256, pretrained=False)
    assert state_dict_rows(enc) == reference_state_dict("CNN_ENCODER_nef256.json")
    facts = checkpoint_facts()["CNN_ENCODER"]
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert trainable == facts["trainable_tensors"] == ["emb_features.weight", "emb_cnn_code.weight",
                                                       "emb_cnn_code.bias"]
    assert sum(p.numel() for p in enc.parameters()) == facts["params_total"]
    assert sum(p.numel() for p in enc.parameters() if p.requires_grad) == facts["params_trainable"]


def test_rnn_encoder_outputs_and_padding():
    torch.manual_seed(0)
    enc = RNN_ENCODER(50, nhidden=32).eval()
    caps = torch.randint(1, 50, (3, 18))
    lens = torch.tensor([7, 5, 2])
    caps[1, 5:] = 0
    caps[2, 2:] = 0
    words, sent = enc(caps, lens, enc.init_hidden(3))
    assert words.shape == (3, 32, 7)  # T is the longest caption of the batch, not 18
    assert sent.shape == (3, 32)
    assert not words[1, :, 5:].any() and not words[2, :, 2:].any()
    # forward half of the sentence = forward output at the last real word; backward half = t0.
    assert torch.allclose(sent[1, :16], words[1, :16, 4])
    assert torch.allclose(sent[1, 16:], words[1, 16:, 0])


def test_rnn_encoder_accepts_unsorted_batches_with_identical_results():
    torch.manual_seed(0)
    enc = RNN_ENCODER(50, nhidden=32).eval()
    caps = torch.randint(1, 50, (3, 6))
    lens = torch.tensor([6, 4, 3])
    w, s = enc(caps, lens, enc.init_hidden(3))
    perm = torch.tensor([2, 0, 1])
    w2, s2 = enc(caps[perm], lens[perm], enc.init_hidden(3))
    assert torch.allclose(s2, s[perm], atol=1e-6)
    assert torch.allclose(w2, w[perm], atol=1e-6)


def test_gru_variant_builds_and_runs():
    enc = RNN_ENCODER(20, nhidden=8, rnn_type="GRU")
    hidden = enc.init_hidden(2)
    assert torch.is_tensor(hidden) and hidden.shape == (2, 2, 4)
    _, sent = enc(torch.randint(1, 20, (2, 5)), torch.tensor([5, 3]), hidden)
    assert sent.shape == (2, 8)


def test_cnn_encoder_output_shapes_for_any_input_size():
    enc = CNN_ENCODER(16, pretrained=False).eval()
    with torch.no_grad():
        local, code = enc(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert local.shape == (2, 16, 17, 17) and code.shape == (2, 16)


def test_pretrained_without_weights_or_network_gives_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(SSAGANError) as err:
        CNN_ENCODER(256, pretrained=True)
    msg = str(err.value)
    assert "image_encoder" in msg and "inception_v3_google" in msg and str(tmp_path) in msg


def test_pretrained_loads_a_local_imagenet_file(tmp_path, monkeypatch):
    from torchvision.models import inception_v3
    torch.manual_seed(1)
    ref = inception_v3(weights=None, aux_logits=True, init_weights=True)
    (tmp_path / "checkpoints").mkdir()
    torch.save(ref.state_dict(), tmp_path / "checkpoints" / "inception_v3_google-0cc3c7bd.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    enc = CNN_ENCODER(16, pretrained=True)
    assert torch.equal(enc.Mixed_7c.branch_pool.conv.weight, ref.Mixed_7c.branch_pool.conv.weight)


def test_cnn_encoder_smaller_input_size_for_cheap_runs():
    enc = CNN_ENCODER(16, pretrained=False, input_size=139).eval()
    with torch.no_grad():
        local, code = enc(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert local.shape == (2, 16, 7, 7) and code.shape == (2, 16)
    with pytest.raises(ValueError, match="75"):
        CNN_ENCODER(16, pretrained=False, input_size=64)

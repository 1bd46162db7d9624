"""DAMSM text and image encoders (AttnGAN), state-dict compatible with the released files.

Run as a script, this module pretrains both encoders (``python DAMSM.py --cfg cfg/DAMSM/bird.yml``);
the loop itself lives in ``miscc/train/damsm.py``.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from miscc.errors import SSAGANError

# Inception-v3 stages kept by the image encoder, in forward (and state-dict) order.
INCEPTION_STAGES = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c",
)
# ImageNet weights of torchvision's Inception-v3 (either release of the file works).
IMAGENET_WEIGHT_FILES = ("inception_v3_google-0cc3c7bd.pth", "inception_v3_google-1a9a5a14.pth")
IMAGENET_WEIGHT_URL = "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"


class RNN_ENCODER(nn.Module):
    """Bidirectional LSTM over word embeddings.

    ``forward(captions[B,T], cap_lens[B], hidden) -> (words_emb[B, nhidden, max(cap_lens)],
    sent_emb[B, nhidden])``; ``nhidden`` is split between the two directions.
    """

    def __init__(self, ntoken: int, ninput: int = 300, drop_prob: float = 0.5, nhidden: int = 128,
                 nlayers: int = 1, bidirectional: bool = True, n_steps: int = 18, rnn_type: str = "LSTM"):
        super().__init__()
        self.n_steps = n_steps  # TEXT.WORDS_NUM; kept as an attribute like the original, not used
        self.ntoken, self.ninput, self.drop_prob = ntoken, ninput, drop_prob
        self.nlayers, self.bidirectional = nlayers, bidirectional
        self.rnn_type = rnn_type
        self.num_directions = 2 if bidirectional else 1
        self.nhidden = nhidden // self.num_directions

        self.encoder = nn.Embedding(ntoken, ninput)
        self.drop = nn.Dropout(drop_prob)
        rnn_cls = {"LSTM": nn.LSTM, "GRU": nn.GRU}[self.rnn_type]
        # Inter-layer dropout does nothing with one layer (the original passed it anyway and got a
        # warning); passing 0 then is numerically identical.
        self.rnn = rnn_cls(ninput, self.nhidden, nlayers, batch_first=True,
                           dropout=drop_prob if nlayers > 1 else 0.0, bidirectional=bidirectional)
        self.encoder.weight.data.uniform_(-0.1, 0.1)

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        shape = (self.nlayers * self.num_directions, bsz, self.nhidden)
        if self.rnn_type == "LSTM":
            return weight.new_zeros(shape), weight.new_zeros(shape)
        return weight.new_zeros(shape)

    def forward(self, captions: torch.Tensor, cap_lens: torch.Tensor, hidden, mask=None):
        emb = self.drop(self.encoder(captions))
        # enforce_sorted=False accepts captions in any order (user sentences) and gives results
        # identical to the original's sorted-only packing on sorted batches.
        lengths = cap_lens.detach().to("cpu", torch.int64) if torch.is_tensor(cap_lens) \
            else torch.as_tensor(cap_lens, dtype=torch.int64)
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        output, hidden = self.rnn(packed, hidden)
        output = pad_packed_sequence(output, batch_first=True)[0]
        words_emb = output.transpose(1, 2)
        h_n = hidden[0] if self.rnn_type == "LSTM" else hidden
        sent_emb = h_n.transpose(0, 1).contiguous().view(-1, self.nhidden * self.num_directions)
        return words_emb, sent_emb


def _find_imagenet_weights(weights_path: str | None) -> str | None:
    if weights_path:
        return weights_path
    hub_dir = os.path.join(torch.hub.get_dir(), "checkpoints")
    for name in IMAGENET_WEIGHT_FILES:
        candidate = os.path.join(hub_dir, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _load_imagenet_weights(model: nn.Module, weights_path: str | None) -> None:
    path = _find_imagenet_weights(weights_path)
    hub_dir = os.path.join(torch.hub.get_dir(), "checkpoints")
    try:
        if path is not None:
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            state = torch.hub.load_state_dict_from_url(IMAGENET_WEIGHT_URL, map_location="cpu",
                                                       progress=False)
    except Exception as e:  # no network, corrupt file, ...
        raise SSAGANError(
            "CNN_ENCODER(pretrained=True) needs the ImageNet Inception-v3 weights and could not get "
            f"them ({type(e).__name__}: {e}). Either load a DAMSM image-encoder checkpoint "
            "(image_encoder200.pth; build with pretrained=False, the checkpoint overwrites the trunk), "
            f"or download {IMAGENET_WEIGHT_URL} and place it at {hub_dir}/{IMAGENET_WEIGHT_FILES[0]} "
            "(or pass its path as weights_path).") from e
    model.load_state_dict(state, strict=False)


def encode_text(text_encoder: RNN_ENCODER, captions: torch.Tensor, cap_lens: torch.Tensor):
    """(words_emb, sent_emb) of a batch, with the zero initial state the original used."""
    hidden = text_encoder.init_hidden(captions.size(0))
    return text_encoder(captions, cap_lens, hidden)


class CNN_ENCODER(nn.Module):
    """Frozen Inception-v3 trunk + trainable projections to the DAMSM space.

    ``forward(x in [-1,1], any size) -> (local[B, nef, 17, 17], global[B, nef])``. Like the original,
    the input is resized to 299 bilinearly with no ImageNet normalisation.
    ``pretrained=False`` builds without any download: use it whenever a DAMSM checkpoint is loaded
    afterwards (it replaces every trunk weight) and in tests. ``input_size`` (299 released) may be
    lowered (>= 75) for cheap CPU runs: local features then shrink below 17x17.
    """

    def __init__(self, nef: int, pretrained: bool = True, weights_path: str | None = None,
                 input_size: int = 299):
        super().__init__()
        from torchvision.models import inception_v3

        if input_size < 75:
            raise ValueError(f"Inception needs inputs of at least 75 pixels, got input_size={input_size}")
        self.input_size = input_size
        self.nef = nef
        # Default constructor arguments keep the random-draw order of the original build.
        trunk = inception_v3(weights=None, aux_logits=True, init_weights=True)
        if pretrained:
            _load_imagenet_weights(trunk, weights_path)
        for name in INCEPTION_STAGES:
            stage = getattr(trunk, name)
            stage.requires_grad_(False)
            self.add_module(name, stage)
        self.emb_features = nn.Conv2d(768, self.nef, 1, 1, 0, bias=False)
        self.emb_cnn_code = nn.Linear(2048, self.nef)
        self.emb_features.weight.data.uniform_(-0.1, 0.1)
        self.emb_cnn_code.weight.data.uniform_(-0.1, 0.1)

    def forward(self, x: torch.Tensor):
        x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in INCEPTION_STAGES[5:13]:  # Mixed_5b .. Mixed_6e
            x = getattr(self, name)(x)
        local = x  # 768 x 17 x 17 regions
        for name in INCEPTION_STAGES[13:]:
            x = getattr(self, name)(x)
        x = F.avg_pool2d(x, kernel_size=x.shape[-1]).flatten(1)  # 8x8 -> 1 at 299
        return self.emb_features(local), self.emb_cnn_code(x)


class SMALL_CNN_ENCODER(nn.Module):
    """A small trainable trunk + the same projections: the DAMSM image encoder of offline CPU demos.

    Not in the released code (TRAIN.DAMSM_TRUNK 'small'). A random *frozen* Inception trunk, all an
    offline demo has without the ImageNet download, pools away what small parts look like: the sentence
    embeddings DAMSM pretraining aligns with it then carry the body colour and little of the crown or
    wings. Four stride-2 convolutions trained with the projections see them. Same contract as
    ``CNN_ENCODER``: ``forward(x in [-1,1]) -> (local[B, nef, R, R], global[B, nef])``, the input
    resized to ``input_size`` first (75 -> 10x10 regions, 5x5 before the global pooling).
    """

    def __init__(self, nef: int, input_size: int = 75, width: int = 32):
        super().__init__()
        self.input_size = input_size
        self.nef = nef
        chans = (3, width, 2 * width, 4 * width, 8 * width)
        layers = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.LeakyReLU(0.2, inplace=True)]
        self.trunk = nn.Sequential(*layers)
        self.emb_features = nn.Conv2d(chans[3], nef, 1, 1, 0, bias=False)
        self.emb_cnn_code = nn.Linear(chans[4], nef)

    def forward(self, x: torch.Tensor):
        x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        local = self.trunk[:9](x)  # three conv-BN-LeakyReLU stages: the regions words attend to
        code = self.trunk[9:](local).mean(dim=(2, 3))
        return self.emb_features(local), self.emb_cnn_code(code)


def cli_main(argv=None) -> None:
    """The command line of ``python DAMSM.py``: DAMSM pretraining (``miscc.train.damsm``)."""
    from miscc.config.cli import base_parser, in_process_group, run_main  # the library imports this file: lazily
    from miscc.train.damsm import pretrain

    parser = base_parser("Pretrain the DAMSM text and image encoders (AttnGAN pretrain_DAMSM.py).",
                         "cfg/DAMSM/bird.yml")

    def run(args) -> None:
        in_process_group(lambda device: pretrain(device, args.start_over))

    run_main(run, parser, argv, entry="damsm")


if __name__ == "__main__":
    import sys

    # The trainer imports this file as ``DAMSM``; registering the running script under that name keeps
    # one copy of the classes (two copies would make isinstance checks and pickling disagree).
    sys.modules.setdefault("DAMSM", sys.modules["__main__"])
    cli_main()

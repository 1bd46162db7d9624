"""The rows of the ablation: each variant is the demo recipe (cfg/demo.yml) plus its own switches.

The demo recipe is what a few hundred CPU steps can learn (docs/DEMO.md explains every choice); every row keeps
it, so rows differ only by the switches listed here. The base row is ID1 (= the demo without its
generator average): CSA and EMA are each ID1 plus one part, as the paper's rows are cumulative.
"""
from __future__ import annotations

from dataclasses import dataclass, field

BASE_CONFIG = "cfg/demo.yml"
DAMSM_CONFIG = "cfg/DAMSM/demo.yml"

# Every row: the metrics of the table, evaluated during training (docs/EVALUATION.md) and the best
# epoch chosen by the quality score. EMA off: the released recipe has none; it is a row of its own.
COMMON_OPTS: dict[str, str] = {
    "EVAL.METRICS": "r_precision,colour_accuracy,crown_colour,wing_colour,bird_fd,bird_is,mask_coverage",
    "EVAL.BEST_METRIC": "bird_fd",
    "TRAIN.EMA_DECAY": "0.0",
    "PROGRESS": "log",
}


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    opts: dict[str, str] = field(default_factory=dict)
    entry: str = "main.py"
    paper: str = ""  # what the papers report for this row on CUB (IS / FID), for the docs' table
    compare_to: str = ""  # the row it adds one part to: differences are judged against that row


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("id0", "ID0: no SSACN, no DAMSM", {"GAN.SSACN": "False", "TRAIN.DAMSM_WEIGHT": "0.0"},
            paper="4.86 / 19.24"),
    Variant("id1", "ID1: + SSACN (masks)", {"TRAIN.DAMSM_WEIGHT": "0.0"}, paper="4.97 / 18.54", compare_to="id0"),
    # The released weights (0.05 in main.py, 0.1 in main_finetune.py); the encoder lr is scaled by 4 like
    # the demo's G and D learning rates.
    Variant("id2", "ID2: + DAMSM term", {"TRAIN.DAMSM_WEIGHT": "0.05"}, paper="5.07 / 15.61", compare_to="id1"),
    Variant("id3", "ID3: + fine-tuned encoders", {"TRAIN.DAMSM_WEIGHT": "0.1", "TRAIN.FINETUNE_ENCODER_LR": "0.00016"},
            entry="main_finetune.py", paper="5.17 / 16.58", compare_to="id2"),
    # DF-GAN's fusion at the same width as every row (its released NF 32 is half SSA-GAN's 64; scaled
    # like the demo that would be NF 4, a quarter of the parameters): the row isolates the fusion.
    Variant("dfgan", "DF-GAN fusion", {"GAN.FUSION": "dfgan", "GAN.SSACN": "False", "TRAIN.DAMSM_WEIGHT": "0.0"},
            paper="4.86 / 19.24 (DF-GAN v1)", compare_to="id0"),
    Variant("csa", "ID1 + conditioning augmentation", {"TRAIN.DAMSM_WEIGHT": "0.0", "TEXT.CA": "True"},
            compare_to="id1"),
    Variant("ema", "ID1 + generator EMA", {"TRAIN.DAMSM_WEIGHT": "0.0", "TRAIN.EMA_DECAY": "0.95"},
            compare_to="id1"),
)}
QUICK_VARIANTS = ("id0", "id1")
QUICK_OPTS = {"TRAIN.MAX_EPOCH": "2", "TRAIN.EVAL_INTERVAL": "1", "TRAIN.GSAVE_INTERVAL": "1",
              "TRAIN.DSAVE_INTERVAL": "2"}
FIRST_SEED = 100  # the demo's SEED: seed row 0 of id1 is the demo's own run without its EMA


def run_name(variant: str, seed: int) -> str:
    return f"{variant}_seed{seed}"

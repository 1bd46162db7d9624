"""What an ablation runs: its shared inputs, its run folders, each run's commands and its state.

One ablation folder holds everything:

    <out>/plan.json        what was asked (a later start must ask the same recipe); the runner's lock is
                           <parent>/.<out name>.lock, beside the folder
    <out>/captions/        the evaluation captions, the same for every run
    <out>/damsm/           the DAMSM pair every row uses (pretrained once, unless --damsm names one)
    <out>/runs/<variant>_seed<N>/   a normal run folder (main.py's), plus eval/ and ablation_run.json

A run is *done* when its ``ablation_run.json`` exists (written after training and its final
evaluation); a run with a ``models/latest.pth`` resumes from it; anything else starts anew. The table
is built from these folders alone (``tools.ablation.table``), so runs may come from anywhere.
"""
from __future__ import annotations

import json
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from miscc.errors import SSAGANError
from miscc.run.layout import BEST_TAG, gan_snapshot_name, newest_snapshot
from tools.ablation.variants import BASE_CONFIG, COMMON_OPTS, VARIANTS, run_name

RUN_RECORD = "ablation_run.json"
PLAN_FILE = "plan.json"
DIVERSITY_CAPTIONS = 50     # captions x DIVERSITY_NOISES images per evaluated generator
DIVERSITY_NOISES = 4
GRID_NOISES = 4


@dataclass
class Plan:
    """Everything every run shares; ``opts`` are the user's extra ``--opts`` (after the variant's)."""
    root: Path
    data_dir: Path
    damsm: Path
    variants: list[str]
    seeds: list[int]
    opts: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def captions_dir(self) -> Path:
        return self.root / "captions"

    def runs(self) -> list["Run"]:
        # Seed-major: a stopped ablation has every row at its first seeds rather than some rows complete.
        return [Run(self, v, s) for s in self.seeds for v in self.variants]

    def to_json(self) -> dict:
        return {"data_dir": str(self.data_dir), "damsm": str(self.damsm), "variants": self.variants,
                "seeds": self.seeds, "opts": self.opts, "base_config": BASE_CONFIG}


@dataclass
class Run:
    plan: Plan
    variant: str
    seed: int

    @property
    def name(self) -> str:
        return run_name(self.variant, self.seed)

    @property
    def folder(self) -> Path:
        return self.plan.runs_dir / self.name

    @property
    def record(self) -> Path:
        return self.folder / RUN_RECORD

    @property
    def log(self) -> Path:
        return self.folder.parent / f"{self.name}.log"  # beside the folder: training creates the folder

    def state(self) -> str:
        """``done``, ``resume`` (a latest.pth to continue from), ``restart`` (snapshots but no training
        state: the run stopped before its first one) or ``new``."""
        if self.record.is_file():
            return "done"
        models = self.folder / "models"
        if (models / "latest.pth").is_file():
            return "resume"
        if models.is_dir() and any(models.glob("*.pth")):
            return "restart"
        return "new"

    def opts(self) -> dict[str, str]:
        v = VARIANTS[self.variant]
        return {**COMMON_OPTS, **v.opts, "DATA_DIR": str(self.plan.data_dir), "TEXT.DAMSM_NAME": str(self.plan.damsm),
                "OUTPUT_DIR": str(self.plan.runs_dir), "CONFIG_NAME": self.name, **self.plan.opts}

    def _script(self, extra: list[str], opts: Optional[dict[str, str]] = None) -> list[str]:
        flat = [x for kv in (opts or self.opts()).items() for x in kv]
        return [self.plan.python, VARIANTS[self.variant].entry, "--cfg", BASE_CONFIG, "--gpu", "-1", *extra,
                "--opts", *flat]

    def train_command(self) -> list[str]:
        state = self.state()
        flag = {"resume": ["--resume"], "restart": ["--start_over"]}.get(state, [])
        return self._script(["--manualSeed", str(self.seed), *flag])

    def generator_file(self, which: str) -> Optional[Path]:
        """The generator evaluated as ``final`` (the newest snapshot; EMA when the row averages) or
        ``best`` (the best epoch's file); None when the run has no such file."""
        models = self.folder / "models"
        kind = "netG_ema" if float(self.opts().get("TRAIN.EMA_DECAY", 0)) > 0 else "netG"
        if which == "best":
            path = models / gan_snapshot_name(kind, BEST_TAG)
            return path if path.is_file() else None
        return newest_snapshot(models, kind)

    def sample_command(self, generator: Path, captions: Path, per_caption: int, out_dir: Path,
                       same_noise: bool = False) -> list[str]:
        extra = ["--sample", "--captions", str(captions), "--per_caption", str(per_caption), "--masks",
                 "last" if same_noise else "none", "--out_dir", str(out_dir), *(["--same_noise"] if same_noise else [])]
        return self._script(extra, {**self.opts(), "TRAIN.NET_G": str(generator)})

    def diversity_command(self, samples: Path, out: Path) -> list[str]:
        """IS.py on the diversity samples: the bird-network scores only (no Inception offline)."""
        return [self.plan.python, "IS.py", "--image_dir", str(samples), "--no_inception", "--bird_net",
                str(self.plan.data_dir), "--bird_diversity", "--workers", "0", "--out", str(out)]


def test_texts(data_dir: Path) -> list[tuple[str, str]]:
    """(key, shortest caption) of every test image, in the split's order: the shortest, so that the
    text encoder reads all of it (a user caption longer than TEXT.WORDS_NUM is cut)."""
    try:
        with open(data_dir / "test" / "filenames.pickle", "rb") as f:
            keys = pickle.load(f)
        texts = []
        for k in keys:
            lines = [t.strip() for t in (data_dir / "text" / f"{k}.txt").read_text(encoding="utf-8").splitlines()]
            texts.append((k, min((t for t in lines if t), key=lambda t: len(t.split()))))
        return texts
    except (OSError, pickle.UnpicklingError, ValueError) as e:
        raise SSAGANError(f"{data_dir}: cannot read the test captions ({e}); the ablation needs a CUB-layout set "
                          "(python -m tools.birds.make_birds DIR builds the synthetic one).") from None


def write_captions(plan: Plan, diversity: int = DIVERSITY_CAPTIONS) -> tuple[Path, Path]:
    """The evaluation's caption files, the same for every run: ``diversity.txt`` (first captions of
    ``diversity`` test images spread over the split) and ``grid.txt`` (one per test species)."""
    texts = test_texts(plan.data_dir)
    step = max(1, len(texts) // diversity)
    chosen = [t for _, t in texts[::step][:diversity]]
    per_species: dict[str, str] = {}
    for key, text in texts:
        per_species.setdefault(key.split("/")[0], text)
    plan.captions_dir.mkdir(parents=True, exist_ok=True)
    paths = plan.captions_dir / "diversity.txt", plan.captions_dir / "grid.txt"
    for path, lines in zip(paths, (chosen, list(per_species.values()))):
        text = "".join(line + "\n" for line in lines)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return paths


def load_record(run_folder: Path) -> Optional[dict]:
    try:
        return json.loads((run_folder / RUN_RECORD).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None

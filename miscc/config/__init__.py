"""Configuration: every key, its default and a one-line doc, in one table.

Precedence is defaults < YAML file (``cfg_from_file``) < command line (``cfg_from_list``, the
``--opts KEY VALUE`` pairs). The global ``cfg`` EasyDict is what the original code reads, so it stays
the public object; ``SPEC`` is the single source of truth from which both ``cfg`` and the key
documentation (``python -m miscc.config`` prints it as Markdown) are built.

Type rules follow the original (a YAML value must have the default's type) with two deliberate
relaxations that cannot change meaning: an int is accepted where a float is expected, and the error
names the file, the key and the fix instead of a bare ``KeyError``.
"""
from __future__ import annotations

import copy
import os
import warnings
from typing import Any, Callable, Iterable, NamedTuple, Optional, Sequence

import yaml
from easydict import EasyDict

from miscc.errors import SSAGANError


class Key(NamedTuple):
    name: str  # dotted path, e.g. "TRAIN.BATCH_SIZE"
    default: Any
    doc: str
    choices: Optional[tuple] = None
    check: Optional[Callable[[Any], Optional[str]]] = None  # value -> None, or what a valid value is
    inert: bool = False  # never read; kept so the original's YAML files load (a non-default value warns)


def _rule(text: str, ok: Callable[[Any], bool]) -> Callable[[Any], Optional[str]]:
    """A check that returns ``must be <text>`` for a bad value; ``.rule`` documents it."""
    def check(v: Any) -> Optional[str]:
        return None if ok(v) else f"must be {text}"
    check.rule = text  # type: ignore[attr-defined]
    return check


def at_least(low: float) -> Callable[[Any], Optional[str]]:
    return _rule(f">= {low}", lambda v: v >= low)


def in_range(low: float, high: float, high_open: bool = False) -> Callable[[Any], Optional[str]]:
    closing = ")" if high_open else "]"
    return _rule(f"in [{low}, {high}{closing}", lambda v: low <= v < high if high_open else low <= v <= high)


positive = _rule("> 0", lambda v: v > 0)


class _TrainingMetrics:
    """A check whose valid values are the metrics registry's in-training metrics (miscc/metrics/registry.py,
    the one place a metric is named), read when a value is checked or documented, so that a metric
    registered later is valid too. ``several``: a comma-separated list; ``extra``: other valid words."""

    def __init__(self, several: bool, extra: tuple[str, ...] = ()) -> None:
        self.several, self.extra = several, extra

    @staticmethod
    def names() -> tuple[str, ...]:
        from miscc.metrics.registry import training_metrics  # lazily: the registry sits above the config
        return training_metrics()

    @property
    def rule(self) -> str:
        names = ", ".join((*self.names(), *self.extra))
        return f"a comma-separated list of {names}" if self.several else f"one of {names}"

    def __call__(self, v: str) -> Optional[str]:
        valid = (*self.names(), *self.extra)
        words = [m.strip() for m in v.split(",")] if self.several else [v]
        return None if v.strip() and all(w in valid for w in words) else f"must be {self.rule}"

_even_positive = _rule("a positive even number (two LSTM directions)", lambda v: v > 0 and v % 2 == 0)


# Defaults are the original miscc/config/__init__.py values unless the doc says otherwise. Keys the released
# SSA-GAN code never reads are kept (marked "inert") so that users' original YAML files still load.
SPEC: tuple[Key, ...] = (
    Key("DATASET_NAME", "birds", "Dataset family; `birds` enables the CUB bounding-box crop.", ("birds", "coco")),
    Key("CONFIG_NAME", "", "Run name; outputs go to `OUTPUT_DIR/<CONFIG_NAME>/`."),
    Key("DATA_DIR", "", "Dataset root in the AttnGAN layout (see data/README.md)."),
    Key("OUTPUT_DIR", "output", "Parent folder of all run folders (new; the original wrote to `tmp/`)."),
    Key("GPU_ID", 0, "CUDA device index; `--gpu -1` on the command line forces the CPU.", check=at_least(0)),
    Key("CUDA", True, "Use CUDA when available; False forces the CPU."),
    Key("WORKERS", 6, "DataLoader worker processes.", check=at_least(0)),
    Key("SEED", 100, "Seed of python/numpy/torch RNGs (the original's `--manualSeed` default).",
        check=in_range(0, 2 ** 32 - 1)),
    Key("RNN_TYPE", "LSTM", "Recurrent cell of the DAMSM text encoder.", ("LSTM", "GRU")),
    Key("B_VALIDATION", False, "True: sample the test captions instead of training "
        "(the original YAMLs shipped True)."),
    Key("RESTORE", False, "Resume: from the run's `latest.pth` if present, else from TRAIN.NET_G "
        "(DAMSM pretraining: `latest_damsm.pth`, else TRAIN.NET_E)."),
    Key("USE_SN", False, "Inert in the released code (D has no spectral norm); kept for old YAMLs.", inert=True),
    Key("loss", "hinge", "Inert: the released code always uses the hinge loss; kept for old YAMLs.", ("hinge",), inert=True),

    Key("TREE.BRANCH_NUM", 3, "Inert (AttnGAN multi-branch); SSA-GAN uses one branch.", inert=True),
    Key("TREE.BASE_SIZE", 64, "Image size trained on: 256 released, 64/128 for cheap runs, 299 for DAMSM "
        "pretraining (GAN training and sampling accept 64, 128, 256 only).", check=at_least(1)),

    Key("TRAIN.BATCH_SIZE", 64, "Batch size per process (global batch = this x world size under DDP); at "
        "least 2 (the mismatched pairs and DAMSM negatives need a second item).", check=at_least(2)),
    Key("TRAIN.MAX_EPOCH", 600, "GAN: last epoch (1-based). DAMSM pretraining: number of epochs "
        "(0-based, the last is MAX_EPOCH-1).", check=at_least(1)),
    Key("TRAIN.SNAPSHOT_INTERVAL", 2000, "DAMSM pretraining: save encoders when epoch % this == 0.",
        check=at_least(1)),
    Key("TRAIN.DISCRIMINATOR_LR", 0.0004, "Adam lr of D (the released main.py hard-codes 4e-4; the "
        "original default 2e-4 was never read).", check=positive),
    Key("TRAIN.GENERATOR_LR", 0.0001, "Adam lr of G (released value 1e-4; the original key was inert).",
        check=positive),
    Key("TRAIN.GENERATOR_GATE_LR", 0.0, "New: Adam lr of the generator blocks' zero-initialised residual "
        "gates (`blockN.gamma`) in a parameter group of their own; 0 = TRAIN.GENERATOR_LR in one group "
        "(released). For runs of a few hundred steps, where a gate moving ~one lr per step keeps the "
        "residual paths nearly shut (cfg/demo.yml).", check=at_least(0)),
    Key("TRAIN.DISCRIMINATOR_GATE_LR", 0.0, "New: the same for the discriminator's blocks; 0 = "
        "TRAIN.DISCRIMINATOR_LR in one group (released).", check=at_least(0)),
    Key("TRAIN.RANDOM_FLIP", True, "Random horizontal flip of training images (GAN and DAMSM training), as "
        "released. New: False leaves it out, for data whose birds all face one way (cfg/demo.yml): a "
        "short run then need not learn both facings from the noise."),
    Key("TRAIN.ENCODER_LR", 0.0002, "Initial Adam lr of DAMSM pretraining (bird/coco DAMSM YAMLs set 0.002).",
        check=positive),
    Key("TRAIN.FINETUNE_ENCODER_LR", 0.00004, "Adam lr of the encoders in main_finetune.py (released 4e-5).",
        check=positive),
    Key("TRAIN.RNN_GRAD_CLIP", 0.25, "DAMSM pretraining: grad-norm clip of the text encoder.", check=positive),
    Key("TRAIN.FLAG", True, "Training (True) vs evaluation run; False forces the seed to 100 and builds the "
        "DAMSM image encoder at width 256, as the original."),
    Key("TRAIN.NET_E", "", "DAMSM pretraining: text-encoder checkpoint to resume from."),
    Key("TRAIN.NET_G", "", "Generator checkpoint (`netG_<epoch>.pth`) to sample from or resume from."),
    Key("TRAIN.B_NET_D", True, "Inert; kept for old YAMLs.", inert=True),
    Key("TRAIN.NF", 32, "Channel width ngf = ndf (released models: 64).", check=at_least(1)),
    Key("TRAIN.SMOOTH.GAMMA1", 5.0, "DAMSM attention sharpness over regions (4.0 when pretraining DAMSM).",
        check=positive),
    Key("TRAIN.SMOOTH.GAMMA2", 5.0, "DAMSM word-to-image aggregation sharpness.", check=positive),
    Key("TRAIN.SMOOTH.GAMMA3", 10.0, "DAMSM similarity scale before the softmax.", check=positive),
    Key("TRAIN.SMOOTH.LAMBDA", 1.0, "Weight of the DAMSM word+sentence terms in the generator's DAMSM loss.",
        check=at_least(0)),
    Key("TRAIN.DAMSM_INPUT_SIZE", 299, "Resize of images entering the DAMSM image encoder (299 released); "
        "lower (>= 75, Inception's minimum) only for cheap CPU demos, and the same in DAMSM pretraining and GAN "
        "training.", check=at_least(75)),
    Key("TRAIN.DAMSM_TRUNK", "inception", "New: trunk of the DAMSM image encoder. `inception` = the released frozen "
        "Inception-v3; `small` = four stride-2 convolutions trained with the projections (offline CPU demos: a "
        "random frozen Inception does not see small parts such as the crown). Same in DAMSM pretraining and GAN "
        "training.", ("inception", "small")),
    Key("TRAIN.DAMSM_IMAGENET", True, "DAMSM pretraining starts the frozen Inception trunk from ImageNet "
        "weights (the original); False = random trunk, for offline demos only."),
    Key("TRAIN.DAMSM_WEIGHT", -1.0, "Weight of the DAMSM loss in the generator loss; negative = the released "
        "value of the entry point (0.05 main.py, 0.1 main_finetune.py); 0 removes the term."),
    Key("TRAIN.WARMUP_EPOCHS", 200, "No GAN checkpoint is written before this epoch.", check=at_least(0)),
    Key("TRAIN.GSAVE_INTERVAL", 10, "Write netG_<epoch>.pth every this many epochs.", check=at_least(1)),
    Key("TRAIN.DSAVE_INTERVAL", 10, "Write netD_<epoch>.pth every this many epochs.", check=at_least(1)),
    Key("TRAIN.AMP", "none", "New: mixed precision of the GAN forwards (autocast); `none` = fp32, "
        "bit-identical to the released computation; `fp16` adds loss scaling (GradScaler), `bf16` needs "
        "none. Losses and MA-GP norms stay fp32 (docs/SCALING.md).", ("none", "bf16", "fp16")),
    Key("TRAIN.CHANNELS_LAST", False, "New: channels-last memory format for G, D and the image encoder "
        "(faster convolutions on tensor-core GPUs; same math)."),
    Key("TRAIN.COMPILE", False, "New: `torch.compile` the G forward and the D trunk of the hinge passes "
        "(the MA-GP pass stays eager: compiled graphs have no double backward)."),
    Key("TRAIN.KL_WEIGHT", 1.0 / 256, "New: weight of the conditioning-augmentation KL term (batch mean of "
        "the sum over the 256 dimensions) in the generator loss when TEXT.CA; the default equals "
        "AttnGAN's KL coefficient 1.0 on its per-dimension mean (docs/VARIANTS.md).", check=at_least(0)),
    Key("TRAIN.EMA_DECAY", 0.0, "New: exponential moving average of the generator weights, updated after "
        "every G step with this decay (e.g. 0.999); saved as `netG_ema_<epoch>.pth` and preferred by the "
        "sampler. 0 = off (released).", check=in_range(0.0, 1.0, high_open=True)),

    Key("GAN.DF_DIM", 64, "Inert; kept for old YAMLs (D width is TRAIN.NF).", inert=True),
    Key("GAN.GF_DIM", 128, "Inert; kept for old YAMLs (G width is TRAIN.NF).", inert=True),
    Key("GAN.Z_DIM", 100, "Inert: the noise size is 100, hard-coded in the released NetG.", inert=True),
    Key("GAN.CONDITION_DIM", 100, "Inert; kept for old YAMLs.", inert=True),
    Key("GAN.R_NUM", 2, "Inert; kept for old YAMLs.", inert=True),
    Key("GAN.B_ATTENTION", True, "Inert; kept for old YAMLs.", inert=True),
    Key("GAN.B_DCGAN", True, "Inert; kept for old YAMLs.", inert=True),
    Key("GAN.SSACN", True, "New: semantic masks in the generator (released). False = ablation without "
        "SSACN: no mask predictors, every fusion spatially uniform (docs/VARIANTS.md)."),
    Key("GAN.FUSION", "ssacn", "New: generator fusion block; `ssacn` = SSCBN + ReLU (released), `dfgan` = "
        "DF-GAN's two (affine + LeakyReLU) per fusion without BN, and DF-GAN's output head.",
        ("ssacn", "dfgan")),

    Key("TEXT.CAPTIONS_PER_IMAGE", 10, "Captions per image in the dataset (CUB 10, COCO 5).", check=at_least(1)),
    Key("TEXT.EMBEDDING_DIM", 256, "DAMSM word/sentence embedding size (bidirectional: 2 x 128).",
        check=_even_positive),
    Key("TEXT.WORDS_NUM", 18, "Caption length cap; longer captions keep a random ordered subset.",
        check=at_least(1)),
    Key("TEXT.DAMSM_NAME", "../DAMSMencoders/coco/text_encoder200.pth",
        "DAMSM text-encoder checkpoint; the image encoder is the same path with "
        "`text_encoder` -> `image_encoder`."),
    Key("TEXT.CA", False, "New: conditioning augmentation (CSA-GAN / StackGAN): the generator sees "
        "c = mu + sigma * eps of the sentence (mu when sampling), plus TRAIN.KL_WEIGHT * KL in its loss; "
        "D and DAMSM keep the sentence embedding."),

    Key("TRAIN.EVAL_INTERVAL", 0, "New: evaluate the generator every this many epochs and at the last epoch "
        "(EVAL.* keys; metrics.jsonl, eval/* in TensorBoard, best.json and netG_best.pth; docs/EVALUATION.md, "
        "\"During training\"). 0 = never (released). Cost at CUB scale, 3000 images: about 3.4% of an epoch per "
        "evaluation.", check=at_least(0)),
    Key("EVAL.INCEPTION_WEIGHTS", "", "New: torch-fidelity's `weights-inception-2015-12-05-6726825d.pth` "
        "for IS/FID; empty = the torch hub cache (see docs/EVALUATION.md). During training, a missing hub file "
        "skips IS/FID with one message; `random` = random weights, for tests and demos only (every output "
        "marks its IS/FID as meaningless)."),
    Key("EVAL.FID_REF", "", "New: FID reference of in-training evaluation: a statistics `.npz` (`IS.py "
        "--save_stats`), a CUB data folder or an image folder; empty = the test split of DATA_DIR at the "
        "generator's size (CUB layout only; cached like IS.py's)."),
    Key("EVAL.FID_NUM_IMAGES", 3000, "New: images of the in-training evaluation set, test captions drawn once "
        "from SEED with the sampler's noise for each; 0 (or more than there are) = every test caption once, "
        "the protocol of `main.py --sample` + IS.py. Fewer images bias FID upwards: compare values of one "
        "run with each other only.", check=at_least(0)),
    Key("EVAL.METRICS", "fid,r_precision,colour_accuracy", "New: comma-separated metrics of in-training "
        "evaluation: `fid`, `inception_score`, `r_precision` (the run's DAMSM encoders, fine-tuned ones in "
        "main_finetune.py), `colour_accuracy` (synthetic bird set only: skipped without "
        "`attributes_test.json`), `crown_colour`, `wing_colour` (the same, for the crown and the wings, each "
        "with its shuffled-caption baseline), `bird_fd`, `bird_is`, `mask_coverage` (synthetic bird set only; the bird "
        "scores need `python -m tools.bird_features DATA_DIR` once).", check=_TrainingMetrics(several=True)),
    Key("EVAL.BEST_METRIC", "fid", "New: the metric that picks the best epoch (`netG_best.pth`, best.json); "
        "lower is better for `fid` and `bird_fd`, higher for the others; must be one of EVAL.METRICS; `none` = no best "
        "epoch.", check=_TrainingMetrics(several=False, extra=("none",))),
    Key("EVAL.BATCH_SIZE", 50, "New: images per generator / Inception batch during in-training evaluation "
        "(IS.py's default 50).", check=at_least(1)),
    Key("EVAL.DISPLAY_CAPTIONS", 8, "New: test captions (of different classes where possible) in the "
        "per-epoch grid `images/epoch_XXX.png`; drawn once from SEED, the same in every epoch.",
        check=at_least(1)),
    Key("EVAL.DISPLAY_NOISES", 4, "New: noise vectors per caption in the per-epoch grid (fixed: column j "
        "shows noise j in every row and every epoch).", check=at_least(1)),
    Key("PROGRESS", "auto", "New: progress reporting of long loops; `auto` = a bar on a terminal and one "
        "line every 30 s in a log file, `bar`, `log`, or `off`.", ("auto", "bar", "log", "off")),
)

_SPEC_BY_NAME = {k.name: k for k in SPEC}


def _build_defaults() -> EasyDict:
    root: dict = {}
    for key in SPEC:
        node = root
        *parents, leaf = key.name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = copy.deepcopy(key.default)
    return EasyDict(root)


cfg = _build_defaults()


def reset_cfg() -> EasyDict:
    """Restore every key of the global ``cfg`` to its default (in place, so imports stay valid)."""
    fresh = _build_defaults()
    for k in list(cfg.keys()):
        del cfg[k]
    cfg.update(fresh)
    return cfg


def _type_name(value: Any) -> str:
    return type(value).__name__


def _coerce(name: str, value: Any, source: str) -> Any:
    """Check ``value`` against the spec of ``name``; return it in the default's type or raise."""
    key = _SPEC_BY_NAME[name]
    expected = type(key.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        hint = ""
        if expected is float and isinstance(value, str):
            hint = " (YAML reads 2e-4 as text: write 0.0002)"
        raise SSAGANError(
            f"{source}: config key {name} must be {expected.__name__}, got {_type_name(value)} "
            f"{value!r}{hint}. Default: {key.default!r}.")
    if key.choices is not None and value not in key.choices:
        raise SSAGANError(
            f"{source}: config key {name} = {value!r} is not one of {list(key.choices)}. {key.doc}")
    problem = key.check(value) if key.check is not None else None
    if problem:
        raise SSAGANError(f"{source}: config key {name} = {value!r} {problem}. {key.doc}")
    if key.inert and value != key.default:
        warnings.warn(f"{source}: config key {name} = {value!r} has no effect (inert: the released code never "
                      f"reads it; kept so the original YAML files load).", stacklevel=3)
    return value


def _valid_children(prefix: str) -> list[str]:
    depth = prefix.count(".") + 1 if prefix else 0
    names = {k.name.split(".")[depth] for k in SPEC
             if k.name.startswith(prefix + ".") or not prefix}
    return sorted(names)


def _merge(node: dict, into: EasyDict, prefix: str, source: str) -> None:
    if not isinstance(node, dict):
        raise SSAGANError(f"{source}: {prefix or 'the file'} must be a mapping of keys, got {node!r}.")
    for k, v in node.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if k not in into:
            raise SSAGANError(
                f"{source}: {name} is not a valid config key. Valid keys"
                f"{' under ' + prefix if prefix else ''}: {', '.join(_valid_children(prefix))}. "
                f"See docs/CONFIG.md.")
        if isinstance(into[k], dict):
            _merge(v, into[k], name, source)
        else:
            into[k] = _coerce(name, v, source)


def cfg_from_file(path: str | os.PathLike) -> EasyDict:
    """Merge a YAML file into the global ``cfg`` (unknown keys and wrong types are errors)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SSAGANError(f"config file {path} does not exist; pick one under cfg/ (e.g. cfg/bird.yml).")
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise SSAGANError(f"{path}: not valid YAML: {e}") from e
    _merge(data, cfg, "", path)
    return cfg


def cfg_from_list(opts: Sequence[str], source: str = "--opts") -> EasyDict:
    """Apply ``KEY VALUE`` pairs from the command line, e.g. ``["TRAIN.BATCH_SIZE", "8"]``.

    Values are parsed as YAML scalars (``8`` -> int, ``True`` -> bool, ``1e-4`` is accepted as float
    here because a float key makes the intent unambiguous).
    """
    flags = [x for x in opts if str(x).startswith("--")]
    if flags:
        raise SSAGANError(f"--opts: {flags[0]} is a flag, but everything after --opts is read as KEY VALUE "
                          f"pairs. Put flags such as {flags[0]} before --opts.")
    if len(opts) % 2:
        raise SSAGANError(f"{source} takes KEY VALUE pairs, got an odd number of items: {list(opts)}")
    for name, raw in zip(opts[0::2], opts[1::2]):
        if name not in _SPEC_BY_NAME:
            close = [k.name for k in SPEC if k.name.split(".")[-1] == name.split(".")[-1]]
            hint = f" Did you mean {close[0]}?" if close else " See docs/CONFIG.md for all keys."
            raise SSAGANError(f"{source}: {name} is not a valid config key.{hint}")
        value = yaml.safe_load(raw) if raw != "" else ""
        if isinstance(_SPEC_BY_NAME[name].default, float) and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(_SPEC_BY_NAME[name].default, str) and value is None:
            value = ""
        elif isinstance(_SPEC_BY_NAME[name].default, str) and not isinstance(value, str):
            value = raw  # a path like 123 or a name like True meant as text
        node = cfg
        *parents, leaf = name.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = _coerce(name, value, source)
    return cfg


def cfg_to_dict(c: Optional[EasyDict] = None) -> dict:
    """Plain nested dict (for YAML dumps and checkpoints)."""
    def plain(x):
        return {k: plain(v) for k, v in x.items()} if isinstance(x, dict) else x
    return plain(cfg if c is None else c)


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"TRAIN": {"NF": 8}}`` -> ``{"TRAIN.NF": 8}``."""
    out = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        out.update(flatten(v, name + ".") if isinstance(v, dict) else {name: v})
    return out


# Checks that involve one entry point (the same key is valid for another), or several keys.
GAN_IMAGE_SIZES = (64, 128, 256)
GAN_TEXT_DIM = 256  # the sentence embedding size NetG and NetD are built for (model.SENT_DIM)


def best_metric_problem(metrics: Sequence[str], best_metric: str) -> Optional[str]:
    """Why EVAL.BEST_METRIC cannot pick a best epoch from EVAL.METRICS, or None."""
    if best_metric != "none" and best_metric not in metrics:
        return (f"config key EVAL.BEST_METRIC = {best_metric!r} is not computed: EVAL.METRICS is "
                f"{','.join(metrics)!r}. Add it there, or pick one of those.")
    return None


def validate_for(entry: str) -> None:
    """Entry-specific and cross-key rules, run once all sources are merged (``entry``: gan, damsm,
    sample, eval), so that what would fail at the first step or evaluation fails before anything starts."""
    if entry in ("gan", "sample") and cfg.TREE.BASE_SIZE not in GAN_IMAGE_SIZES:
        raise SSAGANError(f"config key TREE.BASE_SIZE = {cfg.TREE.BASE_SIZE}: the generator is built for "
                          f"{', '.join(map(str, GAN_IMAGE_SIZES))} pixels (299 is for DAMSM pretraining only).")
    if entry in ("gan", "sample") and cfg.TEXT.EMBEDDING_DIM != GAN_TEXT_DIM:
        raise SSAGANError(f"config key TEXT.EMBEDDING_DIM = {cfg.TEXT.EMBEDDING_DIM}: the generator and the "
                          f"discriminator take {GAN_TEXT_DIM}-d sentence embeddings, so the DAMSM encoders of a GAN "
                          f"must be {GAN_TEXT_DIM} wide (other widths are for DAMSM pretraining only).")
    if entry == "gan" and cfg.TRAIN.EVAL_INTERVAL > 0:
        problem = best_metric_problem([m.strip() for m in cfg.EVAL.METRICS.split(",")], cfg.EVAL.BEST_METRIC)
        if problem:
            raise SSAGANError(problem)


def save_cfg(path: str | os.PathLike, config: Optional[dict] = None) -> None:
    """Write ``config`` (default: the resolved ``cfg``, as ``cfg_to_dict``) as YAML, loadable again with
    ``cfg_from_file``, atomically."""
    from miscc.run.layout import atomic_write_text
    atomic_write_text(path, yaml.safe_dump(cfg_to_dict() if config is None else config, sort_keys=False))


DOC_HEADER = """# Configuration keys

Generated from `miscc/config/__init__.py` by `python -m miscc.config > docs/CONFIG.md` (a test keeps the
two in sync). Precedence: defaults < YAML (`--cfg FILE`) < command-line flags (`--gpu`, `--data_dir`,
`--manualSeed`, `--resume`, `--progress`) < `--opts KEY VALUE ...`. Every value is checked when it is read
(type, allowed values, valid range); a bad one stops the run before any data, model or file is touched,
with a message naming the file or flag, the key and the valid values. An int is accepted for a float
key. Keys marked *inert* are never read by the released code and are kept so that the original YAML
files load; setting one to a non-default value prints a warning. Which keys may change when a run is
resumed: docs/RELIABILITY.md.

"""


def config_doc_markdown(keys: Iterable[Key] = SPEC) -> str:
    """The key reference as Markdown (docs/CONFIG.md is generated from this)."""
    lines = [DOC_HEADER + "| key | default | meaning |", "|---|---|---|"]
    for k in keys:
        choices = f" One of: {', '.join(map(str, k.choices))}." if k.choices else ""
        valid = f" Valid: {k.check.rule}." if k.check is not None else ""
        inert = " *(inert; a non-default value warns)*" if k.inert else ""
        lines.append(f"| `{k.name}` | `{k.default!r}` | {k.doc}{choices}{valid}{inert} |")
    return "\n".join(lines) + "\n"

"""In-training evaluation (miscc/watch/evaluation.py): the fixed set, metrics.jsonl, the best epoch, resume,
offline behaviour, and a 2-process torchrun run that must give the single-process values.

The data set has two test species (8 images, 80 captions) so that R-precision has mismatched
captions of another class; Inception runs with random weights (the real file is not downloadable
here), which makes IS/FID meaningless but still a deterministic function of the images.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import IS
import miscc.watch.evaluation as te
from DAMSM import CNN_ENCODER
from datasets import TextDataset, build_transform
from miscc.run.checkpoint import load_checkpoint
from miscc.config import cfg_from_list
from miscc.errors import SSAGANError
from miscc.watch.eval_set import EvalSet, draw_eval_set, load_or_draw
from miscc.config.factory import build_dataset, build_generator
from miscc.run.layout import RunLayout
from miscc.sample.sampler import dataset_caption_jobs, generate, load_models
from miscc.train.gan import GANTrainer
from tests.helpers import bird_set, configure, random_damsm, tiny_opts

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
ALL_METRICS = "fid,inception_score,r_precision,colour_accuracy"


@pytest.fixture(scope="module")
def birds8(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, DAMSM text encoder) of 8 species x 4 images: 6 train species, 2 test species."""
    root = tmp_path_factory.mktemp("birds8")
    data = bird_set(root / "birds", classes=8, per_class=4)
    return data, random_damsm(root, TextDataset(data, "train").n_words)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """FID reference statistics cached in the test's folder, not in ~/.cache."""
    monkeypatch.setattr("miscc.train.gan.DEFAULT_CACHE_DIR", tmp_path / "fid_cache")
    return tmp_path / "fid_cache"


def _run(tmp_path: Path, birds8, mode: str = "main", **opts) -> Path:
    data, damsm = birds8
    configure(tmp_path, data, damsm, **{"EVAL.INCEPTION_WEIGHTS": "random", "PROGRESS": "off", **opts})
    return GANTrainer(mode).train()


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _scalars(run: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _saved_set(run: Path) -> EvalSet:
    return EvalSet.from_state(torch.load(run / "eval_set.pt", weights_only=True))


# --- the fixed set ----------------------------------------------------------------------------------

def test_eval_set_is_the_samplers_protocol_drawn_without_touching_the_global_random_streams(birds8):
    data, _ = birds8
    dataset = TextDataset(data, "test")
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    every = draw_eval_set(dataset, 0, 8, 4, seed=7)
    subset = draw_eval_set(dataset, 30, 8, 4, seed=7)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))

    # Every caption once, with the tokens and noise main.py --sample gives it.
    jobs, noise = dataset_caption_jobs(dataset, "every", 1, 7)
    assert list(every.jobs) == jobs and torch.equal(every.noise, noise)
    # A subset keeps dataset order and each caption's own noise.
    picked = [j.caption_idx for j in subset.jobs]
    assert len(picked) == 30 == len(set(picked)) and picked == sorted(picked)
    assert torch.equal(subset.noise, noise[picked])
    # The display set does not depend on the evaluation subset; its first captions cover both classes.
    assert subset.display == every.display and torch.equal(subset.display_noise, every.display_noise)
    assert len(every.display) == 8 and every.display_noise.shape == (4, 100)
    classes = [j.key.split("/")[0] for j in every.display]
    assert len(set(classes[:2])) == 2 and len({j.key for j in every.display}) == 8  # 8 different images
    assert draw_eval_set(dataset, 30, 8, 4, seed=8).fingerprint() != subset.fingerprint()


def test_a_saved_set_is_reused_and_replaced_only_when_its_settings_change(tmp_path, birds8):
    dataset = TextDataset(birds8[0], "test")
    path = tmp_path / "eval_set.pt"
    draw_eval_set(dataset, 30, 8, 4, seed=7).save(path)
    saved = EvalSet.from_state(torch.load(path, weights_only=True))
    same, drawn, note = load_or_draw(path, dataset, 30, 8, 4, seed=7)
    assert not drawn and note is None and same.fingerprint() == saved.fingerprint()
    # Evaluation turned off on resume: the set (and the record of its jobs) is kept.
    kept, drawn, note = load_or_draw(path, dataset, None, 8, 4, seed=7)
    assert not drawn and note is None and len(kept.jobs) == 30
    # Another size: a new set, and a note that values are not comparable across it.
    other, drawn, note = load_or_draw(path, dataset, 20, 8, 4, seed=7)
    assert drawn and len(other.jobs) == 20 and "not comparable" in note and other.display == saved.display
    # Turning evaluation on after grid-only epochs: new jobs, silently, the same display set.
    draw_eval_set(dataset, None, 8, 4, seed=7).save(path)
    on, drawn, note = load_or_draw(path, dataset, 30, 8, 4, seed=7)
    assert drawn and note is None and on.fingerprint() == saved.fingerprint()


def test_metrics_history_resume_keeps_earlier_epochs_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"epoch": e, "values": {"fid": v}} for e, v in ((1, 9.0), (2, 7.0), (3, 8.0), (4, 6.0))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 5, "val')
    history = te.MetricsHistory(path, "fid")
    assert history.resume(4) == 2  # epoch 4 will be trained again; the torn line is dropped
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2, 3]
    assert history.best()["epoch"] == 2
    assert te.MetricsHistory(path, "r_precision").better(0.5, 0.4)


def test_settings_refuse_what_would_fail_at_the_first_evaluation(tmp_path):
    good = te.EvalSettings(1, ("fid", "r_precision"), "fid", 100, 10, 8, 4, "", "", "data", 0, None)
    good.check()
    with pytest.raises(SSAGANError, match="EVAL.BEST_METRIC = 'inception_score' is not computed"):
        te.EvalSettings(**{**good.__dict__, "best_metric": "inception_score"}).check()
    with pytest.raises(SSAGANError, match="EVAL.INCEPTION_WEIGHTS .* no such file"):
        te.EvalSettings(**{**good.__dict__, "inception_weights": str(tmp_path / "w.pth")}).check()
    with pytest.raises(SSAGANError, match="EVAL.FID_REF"):
        te.EvalSettings(**{**good.__dict__, "fid_ref": str(tmp_path / "ref.npz")}).check()
    every_3 = te.EvalSettings(**{**good.__dict__, "interval": 3})
    assert [e for e in range(1, 8) if every_3.due(e, 7)] == [3, 6, 7]  # and always the last epoch
    assert not te.EvalSettings(**{**good.__dict__, "interval": 0}).due(7, 7)
    with pytest.raises(SSAGANError, match="EVAL.METRICS"):
        cfg_from_list(["EVAL.METRICS", "fid,lpips"])


# --- a run with evaluation --------------------------------------------------------------------------

@pytest.mark.slow
def test_every_epoch_is_evaluated_and_fid_equals_is_py_on_the_sampled_pngs(tmp_path, birds8, cache):
    data, damsm = birds8
    run = _run(tmp_path, birds8, **{"TRAIN.EVAL_INTERVAL": 1, "TRAIN.MAX_EPOCH": 2, "EVAL.FID_NUM_IMAGES": 20,
                                    "EVAL.METRICS": ALL_METRICS})
    lines = _lines(run)
    assert [line["epoch"] for line in lines] == [1, 2] and [line["step"] for line in lines] == [4, 8]
    scalars = _scalars(run)
    for tag in ("eval/FID_random_inception", "eval/IS_random_inception", "eval/R_precision",
                "eval/colour_accuracy"):
        assert [step for step, _ in scalars[tag]] == [1, 2], tag
    line = lines[1]
    assert line["images"] == 20 and set(line["values"]) == {"fid", "inception_score", "r_precision",
                                                            "colour_accuracy"}
    assert line["meaningless"] == ["fid", "inception_score"] and te.RANDOM_NOTE in line["protocol"]["notes"]
    assert line["protocol"]["inception"]["weights_sha256"] == "random"
    assert line["protocol"]["eval_set"]["sha256"] == _saved_set(run).fingerprint()
    assert (run / "metrics.png").is_file() and any(cache.iterdir())

    # The same captions and noise through the sampler into PNG files, then IS.py: the same numbers.
    es = _saved_set(run)
    dataset = build_dataset("test")
    netG, text_encoder = load_models(run / "models" / "netG_002.pth", damsm, dataset, torch.device("cpu"))
    samples = tmp_path / "samples"
    (samples / "img").mkdir(parents=True)
    generate(list(es.jobs), es.noise, netG, text_encoder, torch.device("cpu"), 7, samples, dataset.ixtoword,
             masks="none")
    (samples / "DONE.json").write_text("{}")  # generate() is the sampler's loop; sample() writes this last
    assert IS.main(["--image_dir", str(samples), "--weights", "random", "--fid_ref", str(data), "--no_cache",
                    "--splits", "10", "--workers", "0", "--device", "cpu", "--r_precision", "--text_encoder",
                    str(damsm), "--captions_pickle", str(data / "captions.pickle"), "--colour_accuracy",
                    str(data)]) == 0
    on_files = json.loads((samples / "metrics.json").read_text())
    assert abs(on_files["fid"] - line["fid"]) <= 1e-4 * max(1.0, abs(line["fid"]))
    assert abs(on_files["inception_score"]["mean"] - line["inception_score"]["mean"]) <= 1e-4
    assert on_files["r_precision"]["mean"] == line["r_precision"]["mean"]
    assert on_files["colour_accuracy"] == line["colour_accuracy"]

    # The best epoch: a released-format generator that loads strictly, and its record.
    best = json.loads((run / "best.json").read_text())
    best_epoch = min(lines, key=lambda ln: ln["fid"])["epoch"]
    assert best["metric"] == "fid" and best["epoch"] == best_epoch and best["files"] == ["netG_best.pth"]
    assert best["note"] == te.RANDOM_NOTE
    kept = load_checkpoint(build_generator(), run / "models" / "netG_best.pth").state_dict()
    snapshot = load_checkpoint(build_generator(), run / "models" / f"netG_{best_epoch:03d}.pth").state_dict()
    assert all(torch.equal(kept[k], snapshot[k]) for k in snapshot)


@pytest.mark.slow
def test_epoch_grids_use_the_saved_display_set_and_evaluation_off_writes_no_metrics(tmp_path, birds8,
                                                                                    monkeypatch):
    seen = []
    real_generate = te.generate

    def recording(netG, text_encoder, jobs, noise, device):
        seen.append((list(jobs), noise.clone(), netG.training, text_encoder.training))
        return real_generate(netG, text_encoder, jobs, noise, device)
    monkeypatch.setattr(te, "generate", recording)
    data, damsm = birds8
    configure(tmp_path, data, damsm, **{"TRAIN.MAX_EPOCH": 2, "EVAL.DISPLAY_CAPTIONS": 3,
                                        "EVAL.DISPLAY_NOISES": 2, "PROGRESS": "off"})
    trainer = GANTrainer("finetune")
    run = trainer.train()
    es = _saved_set(run)
    assert len(seen) == 2 and not es.jobs  # one grid per epoch, no evaluation
    for jobs, noise, g_training, t_training in seen:
        assert jobs == [j for j in es.display for _ in range(2)] and len(es.display) == 3
        assert torch.equal(noise, es.display_noise.repeat(3, 1))
        assert not g_training and not t_training  # generated in eval mode ...
    # ... and the modules are back in the modes training left them in (fine-tuning: train mode).
    assert trainer.netG.training and trainer.text_encoder.training and trainer.image_encoder.training
    for epoch in (1, 2):
        assert (run / "images" / f"epoch_{epoch:03d}.png").is_file()
    assert not (run / "metrics.jsonl").exists() and not (run / "best.json").exists()
    assert not [tag for tag in _scalars(run) if tag.startswith("eval/")]


@pytest.mark.slow
def test_evaluating_changes_nothing_training_computes(tmp_path, birds8):
    weights = []
    for name, interval in (("off", 0), ("on", 1)):
        data, damsm = birds8
        configure(tmp_path / name, data, damsm, **{"TRAIN.EVAL_INTERVAL": interval, "TRAIN.MAX_EPOCH": 2,
                                                   "EVAL.FID_NUM_IMAGES": 20, "EVAL.BEST_METRIC": "r_precision",
                                                   "EVAL.METRICS": "r_precision,colour_accuracy", "PROGRESS": "off"})
        trainer = GANTrainer("finetune")  # encoders in train mode: dropout draws from the global stream
        trainer.train()
        weights.append({f"{i}.{k}": v.clone() for i, m in enumerate((trainer.netG, trainer.netD, trainer.text_encoder))
                        for k, v in m.state_dict().items()})
    assert len(_lines(tmp_path / "on" / "output" / "tiny")) == 2
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["during_evaluation", "after_evaluation", "before_best_files"])
def test_a_kill_around_an_evaluation_then_resume_logs_every_epoch_once(tmp_path, birds8, monkeypatch, kill):
    opts = {"TRAIN.EVAL_INTERVAL": 1, "TRAIN.MAX_EPOCH": 3, "EVAL.FID_NUM_IMAGES": 20,
            "EVAL.METRICS": "r_precision,colour_accuracy", "EVAL.BEST_METRIC": "r_precision"}
    # Every evaluation counts as the best so far, so that epoch 2 has best files to write.
    monkeypatch.setattr(te.MetricsHistory, "better", lambda self, a, b: True)

    class Killed(Exception):
        pass
    hooks = {"during_evaluation": (te.TrainingWatch, "_compute"), "after_evaluation": (GANTrainer, "save"),
             "before_best_files": (GANTrainer, "write_best")}
    cls, name = hooks[kill]
    original = getattr(cls, name)

    def dies_at_epoch_2(self, *args, **kwargs):
        epoch = {"_compute": lambda: len(self.history.lines) + 1, "save": lambda: args[0],
                 "write_best": lambda: args[0]["epoch"]}[name]()
        if epoch == 2:
            raise Killed(kill)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(cls, name, dies_at_epoch_2)
    with pytest.raises(Killed):
        _run(tmp_path, birds8, **opts)
    monkeypatch.setattr(cls, name, original)
    written = []
    write_best = GANTrainer.write_best

    def recording(self, record):
        # The weights kept for an epoch are that epoch's, also when written from a loaded state.
        snapshot = load_checkpoint(build_generator(), self.layout.gan_snapshot("netG", record["epoch"]))
        same = all(torch.equal(a, b) for a, b in zip(snapshot.state_dict().values(), self.netG.state_dict().values()))
        written.append((record["epoch"], same))
        write_best(self, record)
    monkeypatch.setattr(GANTrainer, "write_best", recording)
    cfg_from_list(["RESTORE", "True"])
    run = GANTrainer("main").train()

    assert [line["epoch"] for line in _lines(run)] == [1, 2, 3]
    assert written == [(2, True), (3, True)]
    best = json.loads((run / "best.json").read_text())
    assert best["epoch"] == 3 and best["metric"] == "r_precision"
    assert [step for step, _ in _scalars(run)["eval/R_precision"]] == [1, 2, 3]


@pytest.mark.slow
def test_without_inception_weights_training_continues_with_the_metrics_that_need_none(
        tmp_path, birds8, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no weights file anywhere
    run = _run(tmp_path, birds8, **{"TRAIN.EVAL_INTERVAL": 1, "TRAIN.MAX_EPOCH": 2, "EVAL.FID_NUM_IMAGES": 20,
                                    "EVAL.INCEPTION_WEIGHTS": "", "EVAL.BEST_METRIC": "r_precision"})
    out = capsys.readouterr().out
    assert out.count("IS and FID are skipped") == 1  # said once, at the first evaluation
    message = out[out.index("IS and FID are skipped"):].split("\n")[0]
    assert "weights-inception-2015-12-05-6726825d.pth" in message and "EVAL.INCEPTION_WEIGHTS" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    for line in _lines(run):
        assert set(line["values"]) == {"r_precision", "colour_accuracy"} and line["protocol"]["inception"] is None
    assert json.loads((run / "best.json").read_text())["metric"] == "r_precision"


# --- two processes -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_torchrun_two_processes_give_the_single_process_values(tmp_path, birds8):
    data, damsm = birds8
    opts = tiny_opts(**{"OUTPUT_DIR": tmp_path / "output", "CONFIG_NAME": "ddp", "TEXT.DAMSM_NAME": damsm,
                        "TRAIN.BATCH_SIZE": 3, "TRAIN.EVAL_INTERVAL": 1, "EVAL.INCEPTION_WEIGHTS": "random",
                        "EVAL.FID_NUM_IMAGES": 25, "EVAL.BATCH_SIZE": 8, "EVAL.METRICS": ALL_METRICS,
                        "PROGRESS": "off"})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "main.py",
           "--cfg", "cfg/bird.yml", "--gpu", "-1", "--data_dir", str(data), "--opts", *opts]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSAGAN_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "output" / "ddp"
    (line,) = _lines(run)  # rank 0 alone writes
    assert line["protocol"]["processes"] == 2 and proc.stdout.count("[eval 1] FID") == 1

    # One process evaluates the generator the two processes trained, with the same set.
    cfg_from_list(["DATA_DIR", str(data), *opts])
    dataset = TextDataset(data, "test")
    netG, text_encoder = load_models(run / "models" / "netG_001.pth", damsm, dataset, torch.device("cpu"))
    image_encoder = load_checkpoint(CNN_ENCODER(256, pretrained=False, input_size=75), damsm.parent /
                                    "image_encoder200.pth")
    from miscc.train.gan import eval_settings
    settings = te.EvalSettings(**{**eval_settings().__dict__, "cache_dir": tmp_path / "cache"})
    layout = RunLayout(tmp_path / "single")
    layout.root.mkdir()
    (layout.root / "eval_set.pt").write_bytes((run / "eval_set.pt").read_bytes())
    watch = te.TrainingWatch(settings, layout, torch.device("cpu"), 64, lambda: build_dataset(
        "test", transform=build_transform(64, train=False), every_caption=True))
    watch.start(1)
    watch.evaluate(1, line["step"], 0.0, None, te.EvalModels(netG, "netG", text_encoder, image_encoder, "t", "i"))
    (single,) = _lines(layout.root)
    assert single["protocol"]["eval_set"]["sha256"] == line["protocol"]["eval_set"]["sha256"]
    for name, value in single["values"].items():
        assert abs(value - line["values"][name]) <= 1e-4 * max(1.0, abs(value)), (name, value, line["values"])

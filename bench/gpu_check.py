"""Prove it on a GPU: every CUDA path tested and the GPU figures of bench/RESULTS.md measured, in one command.

    python bench/gpu_check.py OUT_DIR [--budget-s 480] [--peak-tflops T] [--parts a,b,...] [--dry-run]

Writes ``OUT_DIR/gpu_check.log`` (every part's full output) and ``OUT_DIR/gpu_check.json`` (each part's
status ok / failed / timeout / skipped, its figures and the end of its output on failure; rewritten
after every part, so a run cut short keeps what it measured). Parts, in this order:

  cuda_tests        ``pytest -m cuda``: tests/test_cuda.py (CPU vs CUDA steps, AMP, channels_last,
                    compile, EMA, sampling, IS.py, kill-and-resume on CUDA)
  train_*           one training step at the paper's size (NF 64, batch 24, 256 px, DAMSM input 299):
                    fp32 (IEEE), bf16, TF32, bf16 + channels_last, bf16 + channels_last + compile;
                    s/step, images/s, peak CUDA memory, FLOPs of a step (torch's FLOP counter) and the
                    fraction of the GPU's bf16 peak reached (bench/bench_train_step.py)
  words_loss        vectorised words_loss vs the per-caption loop (bench/bench_words_loss.py)
  sampling          images/s incl. PNG writing, released-size generator (bench/bench_sampling.py)
  ddp_smoke         torchrun --nproc_per_node=2 main.py on the one GPU (bench/ddp_smoke.py)

Each part is a child process with its own time limit (a share of ``--budget-s``; time a part leaves
unused goes to the later ones), killed with its process group when the limit passes; a crash or hang in
one part never stops the others. The bf16 variants run with TF32 for what stays fp32. ``--dry-run``
runs every part for real at toy sizes on the CPU (compile with the graph-capture-only 'eager'
backend; the CUDA tests skip themselves), so that tests/test_gpu_check.py keeps this script working.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
CUB_TRAIN_IMAGES = 8855  # CUB-200-2011 train split of the AttnGAN layout
PAPER_EPOCHS = 600
# Dense bf16 tensor-core peak in TFLOP/s by device name (vendor datasheets; --peak-tflops overrides).
BF16_PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0))
TARGETS = {"bf16_speedup": 2.0, "peak_fraction": 0.40, "words_loss_speedup": 10.0}
MIN_PART_S = 5.0  # a part is not started with less time than this


@dataclass
class Part:
    name: str
    argv: list[str]  # after the python executable
    share: float  # of the budget
    json_out: bool = True  # the child writes its figures with --json
    attempts: int = 0  # > 0: the child takes --timeout, seconds per attempt, out of the part's limit


def train_variants(dry: bool) -> dict[str, list[str]]:
    """The training-step variants, as bench_train_step.py flags."""
    return {"train_fp32": ["--precision", "ieee"],
            "train_bf16": ["--amp", "bf16", "--precision", "tf32"],
            "train_tf32": ["--precision", "tf32"],
            "train_bf16_cl": ["--amp", "bf16", "--precision", "tf32", "--channels_last"],
            "train_bf16_cl_compile": ["--amp", "bf16", "--precision", "tf32", "--channels_last", "--compile",
                                      *(["--compile_backend", "eager"] if dry else [])]}


def plan(dry: bool) -> list[Part]:
    cpu = ["--gpu", "-1"] if dry else []
    size = ["--nf", "4", "--batch", "2", "--size", "64", "--damsm_size", "75", "--steps", "1"] if dry else \
        ["--nf", "64", "--batch", "24", "--size", "256", "--damsm_size", "299", "--steps", "3"]
    # -v: each test's result reaches the log as it ends, even if a later one hangs; with pytest-timeout
    # (on the GPU image) a hanging test fails alone and the report is still written.
    per_test = ["--timeout", "90"] if importlib.util.find_spec("pytest_timeout") else []
    parts = [Part("cuda_tests", ["-m", "pytest", "-m", "cuda", "-v", "-rs", *per_test], 0.3, json_out=False)]
    shares = {"train_tf32": 0.05, "train_bf16_cl": 0.05, "train_bf16_cl_compile": 0.2}
    variants = train_variants(dry)
    for name in ("train_fp32", "train_bf16"):
        parts.append(Part(name, [str(BENCH / "bench_train_step.py"), *size, "--rounds", "1", "--no_baseline",
                                 "--flops", *variants[name], *cpu], 0.06))
    parts.append(Part("words_loss", [str(BENCH / "bench_words_loss.py"), *cpu,
                                     *(["--batch", "4", "--words", "5", "--regions", "5", "--repeats", "1"] if dry
                                       else ["--batch", "24", "--repeats", "20"])], 0.04))
    parts.append(Part("sampling", [str(BENCH / "bench_sampling.py"), *cpu,
                                   *(["--nf", "4", "--images", "4", "--batch", "2", "--rounds", "1", "--writers", "1"]
                                     if dry else ["--nf", "64", "--images", "96", "--batch", "24", "--rounds", "2"])],
                      0.06))
    parts.append(Part("ddp_smoke", [str(BENCH / "ddp_smoke.py"), *cpu, "--nf", "4" if dry else "16"], 0.12,
                      attempts=1 if dry else 2))  # NCCL, then gloo with CUDA tensors
    for name in ("train_tf32", "train_bf16_cl", "train_bf16_cl_compile"):
        flops = [] if "compile" in name else ["--flops"]  # the counter does not see inside compiled graphs
        parts.append(Part(name, [str(BENCH / "bench_train_step.py"), *size, "--rounds", "1", "--no_baseline",
                                 *flops, *variants[name], *cpu], shares.get(name, 0.06)))
    return parts


class Log:
    """The log file and the console: part headers and results go to both, child output to the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "a", buffering=1)

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.file.write(text + "\n")

    def tail(self, offset: int, chars: int = 4000) -> str:
        self.file.flush()
        with open(self.path, errors="replace") as f:
            f.seek(offset)
            return f.read()[-chars:]


def run_part(part: Part, log: Log, work: Path, timeout: float, env: dict) -> dict:
    """Run one part's child process under ``timeout``; its record for the JSON."""
    cmd = [sys.executable, *part.argv]
    if part.attempts:
        cmd += ["--timeout", f"{max(10.0, (timeout - 15) / part.attempts):.0f}"]  # 15 s: the part's set-up
    if part.json_out:
        cmd += ["--json", str(work / f"{part.name}.json")]
    else:
        cmd += ["--junitxml", str(work / f"{part.name}.xml")]
    log.say(f"\n=== {part.name} (limit {timeout:.0f} s): {' '.join(cmd)}")
    offset = log.path.stat().st_size
    start = time.perf_counter()
    # Own session: on timeout the whole group goes (torchrun's ranks, DataLoader workers, compilers).
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.file, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        rc: Optional[int] = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        rc = None
    record: dict = {"wall_s": round(time.perf_counter() - start, 1), "command": " ".join(cmd)}
    try:
        record["figures"] = read_figures(part, work)
    except (OSError, ValueError, ET.ParseError) as e:
        record["figures"] = {}
        if rc == 0:
            rc = -1
            log.say(f"{part.name}: exit 0 but no figures ({type(e).__name__}: {e})")
    record["status"] = "timeout" if rc is None else "ok" if rc == 0 else "failed"
    record["rc"] = rc
    if rc != 0:
        record["error_tail"] = log.tail(offset)
    log.say(f"=== {part.name}: {record['status']} in {record['wall_s']} s")
    return record


def read_figures(part: Part, work: Path) -> dict:
    if part.json_out:
        return json.loads((work / f"{part.name}.json").read_text())
    suite = ET.parse(work / f"{part.name}.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    reasons = sorted({(case.find("skipped").get("message") or "")[:200] for case in suite.iter("testcase")
                      if case.find("skipped") is not None})
    return {**counts, "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed_tests": failed, "skip_reasons": reasons}


def bf16_peak(device_name: Optional[str], override: Optional[float]) -> Optional[float]:
    if override:
        return override
    for key, tflops in BF16_PEAK_TFLOPS:
        if device_name and key in device_name:
            return tflops
    return None


def driver_version() -> Optional[str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def summarise(results: dict, peak_override: Optional[float], nvidia_smi: Optional[str] = None) -> dict:
    """Training table with the FLOP rate, and each target: measured, reached or not."""
    ok = {name: r["figures"] for name, r in results.items() if r["status"] == "ok"}
    about = next((f for f in ok.values() if "torch" in f), {})
    peak = bf16_peak(about.get("device_name"), peak_override)
    flops = next((f["flops_per_step"] for n in ("train_fp32", "train_bf16") if (f := ok.get(n))
                  and f.get("flops_per_step")), None)
    train = {}
    for name, f in ok.items():
        if not name.startswith("train_"):
            continue
        step_flops = f.get("flops_per_step") or flops
        rate = step_flops / f["s_per_step"] / 1e12 if step_flops else None
        train[name] = {"s_per_step": f["s_per_step"], "images_per_s": f["images_per_s"],
                       "peak_cuda_mib": f["peak_cuda_mib"], "tflops_per_s": rate,
                       "fraction_of_bf16_peak": rate / peak if rate and peak else None,
                       "losses_finite": f["losses_finite"]}
    targets: dict = {}
    fp32 = train.get("train_fp32")
    bf16 = {n: t for n, t in train.items() if "bf16" in n}
    if fp32 and bf16:
        best = min(bf16, key=lambda n: bf16[n]["s_per_step"])
        speedup = fp32["s_per_step"] / bf16[best]["s_per_step"]
        plain = fp32["s_per_step"] / bf16["train_bf16"]["s_per_step"] if "train_bf16" in bf16 else None
        targets["bf16_speedup"] = {"measured": speedup, "variant": best, "plain": plain,
                                   "target": TARGETS["bf16_speedup"], "reached": speedup >= TARGETS["bf16_speedup"]}
    fractions = {n: t["fraction_of_bf16_peak"] for n, t in train.items() if t["fraction_of_bf16_peak"]}
    if fractions:
        best = max(fractions, key=fractions.get)
        targets["peak_fraction"] = {"measured": fractions[best], "variant": best, "target": TARGETS["peak_fraction"],
                                    "reached": fractions[best] >= TARGETS["peak_fraction"]}
    if "words_loss" in ok:
        speedup = ok["words_loss"]["speedup"]
        targets["words_loss_speedup"] = {"measured": speedup, "target": TARGETS["words_loss_speedup"],
                                         "reached": speedup >= TARGETS["words_loss_speedup"]}
    if train:
        fastest = min(train, key=lambda n: train[n]["s_per_step"])
        batch = ok[fastest]["batch"]
        epoch_s = (CUB_TRAIN_IMAGES // batch) * train[fastest]["s_per_step"]  # last partial batch dropped
        targets["cub_epoch"] = {"variant": fastest, "epoch_s": epoch_s, "epochs_600_h": epoch_s * PAPER_EPOCHS / 3600,
                                "batch": batch, "at_paper_size": ok[fastest]["nf"] == 64 and ok[fastest]["size"] == 256}
    return {"bf16_peak_tflops": peak, "flops_per_step": flops, "train": train, "targets": targets,
            "machine": about.get("machine"), "torch": about.get("torch"), "cuda": about.get("cuda"),
            "device_name": about.get("device_name"), "nvidia_smi": nvidia_smi}


def fmt(value, spec: str = ".3g", none: str = "n/a") -> str:
    return none if value is None else format(value, spec)


def part_brief(name: str, f: dict, summary: dict) -> str:
    """One table cell of a part's figures."""
    if name == "cuda_tests":
        return f"{f['passed']} passed, {f['failures'] + f['errors']} failed, {f['skipped']} skipped"
    if name == "words_loss":
        return f"{f['speedup']:.1f}x ({f['loop_ms']:.1f} -> {f['vectorised_ms']:.1f} ms)"
    if name == "sampling":
        return f"{f['images_per_s']:.1f} images/s incl. PNG (generation alone {f['generation_images_per_s']:.1f})"
    if name == "ddp_smoke":
        return f"works with {f['backend']}" if f["backend"] else f"does not work: {f['why_not']}"
    t = summary["train"].get(name)
    if t is None:
        return "figures written, but the part failed"
    fp32 = summary["train"].get("train_fp32")
    speedup = f" ({fp32['s_per_step'] / t['s_per_step']:.2f}x fp32)" if fp32 else ""
    return (f"{t['s_per_step']:.3f} s/step, {t['images_per_s']:.1f} images/s{speedup}, "
            f"peak {fmt(t['peak_cuda_mib'], '.0f')} MiB, {fmt(t['tflops_per_s'])} TFLOP/s = "
            f"{fmt(t['fraction_of_bf16_peak'] and 100 * t['fraction_of_bf16_peak'], '.1f')} % of bf16 peak")


def report(results: dict, summary: dict, log: Log, dry: bool) -> None:
    log.say("\n## Summary\n")
    if dry:
        log.say("DRY RUN: toy sizes on the CPU; it checks this script, none of the figures is a measurement.\n")
    flops = summary["flops_per_step"]
    log.say(f"device: {summary['device_name'] or 'CPU'} ({summary.get('nvidia_smi') or 'no nvidia-smi'}); "
            f"torch {summary['torch']}, CUDA {summary['cuda']}; bf16 peak used: "
            f"{fmt(summary['bf16_peak_tflops'], '.0f')} TFLOP/s; one step: {fmt(flops and flops / 1e9, '.1f')} GFLOP "
            f"(torch.utils.flop_counter)\n")
    log.say("| part | status | s | figures |\n|---|---|---:|---|")
    for name, r in results.items():
        try:
            text = part_brief(name, r["figures"], summary) if r["figures"] else r.get("reason", "")
        except (KeyError, TypeError) as e:  # a figure missing must not cost the rest of the report
            text = f"(figures incomplete: {type(e).__name__} {e})"
        log.say(f"| {name} | {r['status']} | {r.get('wall_s', '')} | {text} |")
    failed_tests = results.get("cuda_tests", {}).get("figures", {}).get("failed_tests")
    if failed_tests:
        log.say("\nfailed CUDA tests (their output is in the log above): " + ", ".join(failed_tests))
    log.say("\n| target | measured | reached |\n|---|---|---|")
    t = summary["targets"]
    rows = {"bf16_speedup": ("bf16 step >= 2x the fp32 step",
                             lambda v: f"{v['measured']:.2f}x ({v['variant']}); plain bf16 {fmt(v['plain'], '.2f')}x"),
            "peak_fraction": (">= 40 % of the bf16 peak", lambda v: f"{100 * v['measured']:.1f} % ({v['variant']})"),
            "words_loss_speedup": ("words_loss >= 10x the loop", lambda v: f"{v['measured']:.1f}x")}
    for key, (label, show) in rows.items():
        log.say(f"| {label} | {show(t[key]) if key in t else 'not measured'} | "
                f"{('yes' if t[key]['reached'] else 'no') if key in t else 'n/a'} |")
    if "cub_epoch" in t:
        e = t["cub_epoch"]
        size = "at the paper's size" if e["at_paper_size"] else "at the dry run's toy size"
        log.say(f"| one CUB epoch (8,855 images, batch {e['batch']}), {size} | {e['epoch_s'] / 60:.1f} min "
                f"({e['variant']}); 600 epochs: {e['epochs_600_h']:.1f} h | estimate |")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir", help="folder for gpu_check.log and gpu_check.json")
    p.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU: checks this script, measures nothing")
    p.add_argument("--budget-s", type=float, default=480, help="seconds for all parts together")
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak (default: by name)")
    p.add_argument("--parts", default=None, help="comma-separated subset of the parts (default: all)")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = plan(args.dry_run)
    if args.parts:
        wanted = args.parts.split(",")
        unknown = set(wanted) - {p.name for p in parts}
        if unknown:
            raise SystemExit(f"--parts: unknown {sorted(unknown)}; parts are {[p.name for p in parts]}")
        parts = [p for p in parts if p.name in wanted]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.dry_run:
        env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")  # the CPU even where a GPU is present
    (out / "gpu_check.log").unlink(missing_ok=True)
    log = Log(out / "gpu_check.log")
    log.say(f"gpu_check {'dry run ' if args.dry_run else ''}started {time.strftime('%Y-%m-%d %H:%M:%S')}, "
            f"budget {args.budget_s:.0f} s, parts: {', '.join(p.name for p in parts)}")
    results: dict = {}
    document = {"dry_run": args.dry_run, "budget_s": args.budget_s, "nvidia_smi": driver_version(),
                "parts": results}
    deadline = time.perf_counter() + args.budget_s
    with tempfile.TemporaryDirectory() as work:
        for i, part in enumerate(parts):
            left = deadline - time.perf_counter()
            later = sum(p.share for p in parts[i:])
            limit = left * part.share / later  # unused time of earlier parts flows to the later ones
            if limit < MIN_PART_S:
                results[part.name] = {"status": "skipped", "figures": {}, "reason": "budget spent"}
                log.say(f"=== {part.name}: skipped (budget spent)")
            else:
                results[part.name] = run_part(part, log, Path(work), limit, env)
            document["summary"] = summarise(results, args.peak_tflops, document["nvidia_smi"])
            (out / "gpu_check.json").write_text(json.dumps(document, indent=1))
    report(results, document["summary"], log, args.dry_run)
    log.say(f"\nwritten: {out / 'gpu_check.log'}, {out / 'gpu_check.json'}")
    return 0 if all(r["status"] == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

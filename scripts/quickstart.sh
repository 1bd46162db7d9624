#!/usr/bin/env bash
# The whole pipeline on a CPU, from nothing to scored samples (about 8 minutes on 2 idle cores):
# install -> synthetic CUB-like birds -> DAMSM pretraining -> SSA-GAN training -> sampling -> results.
# Everything lands in data/birds_demo and output/ ; re-running starts the demo over.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads cost 5-10x.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# Stages that have the machine to themselves (the bird network, DAMSM pretraining, GAN training) run
# with two spinning threads on idle cores: per GAN epoch 13-15 s with cfg/demo.yml's channels-last
# convolutions, against 18-20 s with one thread and 38 s with two sleeping threads (every one of the
# step's many small operations wakes them); per DAMSM epoch 4.3 s against 6.3 s. On a busy machine they
# run with one sleeping thread. Stages of two processes side by side (samplers, evaluations) run one
# thread each. Override with THREADS=1 or THREADS=2.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Idle cores now: from two reads of /proc/stat a second apart (the load average lags by minutes, and
# would still count the stage that just ended); elsewhere from the load average.
idle_cores() { python - <<'PY'
import os, time
def busy_idle():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], v[3] + v[4]
try:
    (b0, i0), _ = busy_idle(), time.sleep(1)
    b1, i1 = busy_idle()
    print(round(os.cpu_count() * (i1 - i0) / max(1, (b1 - b0) + (i1 - i0))))
except OSError:
    print(max(0, round(os.cpu_count() - os.getloadavg()[0])))
PY
}
alone() {
    local n=${THREADS:-$(( $(idle_cores) >= 2 ? 2 : 1 ))}
    echo "($n thread(s))"
    OMP_NUM_THREADS=$n OMP_WAIT_POLICY=$([ "$n" -ge 2 ] && echo ACTIVE || echo PASSIVE) "$@"
}

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }
# Two cores, one thread per process: independent stages run side by side. `in_background CMD` starts one,
# `wait_all` waits for all of them and fails if any did (set -e does not see a background job fail).
bg_pids=()
in_background() { "$@" & bg_pids+=($!); }
wait_all() { local status=0; for pid in "${bg_pids[@]}"; do wait "$pid" || status=1; done; bg_pids=(); return $status; }
# A failing step ends the script (set -e): its background partners end with it, not write on alone.
probe_pid=
trap 'kill ${bg_pids[@]+"${bg_pids[@]}"} $probe_pid 2>/dev/null || true' EXIT

step "install"
python -m pip install -q -r requirements.txt

step "synthetic CUB-like birds -> data/birds_demo (20 species x 30 images, 5 body colours, crown and wing colours per image, facing right)"
python -m tools.birds.make_birds data/birds_demo --facing right --parts image
rm -rf output/DAMSM_demo output/demo

step "the bird feature network, then DAMSM pretraining (cfg/DAMSM/demo.yml)"
# The bird feature network FD/IS/diversity are computed with (the offline stand-in for Inception).
alone python -m tools.bird_features data/birds_demo
alone python DAMSM.py --cfg cfg/DAMSM/demo.yml --gpu -1

step "SSA-GAN training (cfg/demo.yml)"
alone python main.py --cfg cfg/demo.yml --gpu -1

step "sampling: every test caption (1,500), one caption per test image (150), captions differing in one colour word"
# How much of each part's colour the sentence embeddings carry (what the generator's blocks see of a caption):
# it needs only the text encoder, so it runs through sampling and evaluation, waited for before the report.
mkdir -p output/demo/results
python -m tools.text_probe --cfg cfg/demo.yml --out output/demo/results/text_probe.json > output/demo/results/text_probe.txt &
probe_pid=$!
in_background python main.py --cfg cfg/demo.yml --gpu -1 --sample --out_dir output/demo/samples/every_caption
python main.py --cfg cfg/demo.yml --gpu -1 --sample --caption_mode random --masks all \
    --out_dir output/demo/samples/one_per_image
python -m tools.demo_report --data_dir data/birds_demo --write_swap_captions output/demo/swap_captions.txt
python main.py --cfg cfg/demo.yml --gpu -1 --sample --captions output/demo/swap_captions.txt --per_caption 4 \
    --out_dir output/demo/samples/swap
wait_all

step "evaluation"
# No Inception: its weights cannot be downloaded offline and a random one's IS means nothing. The scores
# are read against real images instead (docs/DEMO.md). One caption per test image (150 samples, as many as
# the real test images the references use): FD and IS on the bird feature network, mask coverage of every
# stage, body/crown/wing colour and R-precision (the demo's own DAMSM encoders), what training evaluates.
in_background python IS.py --image_dir output/demo/samples/one_per_image --no_inception --bird_net data/birds_demo \
    --mask_coverage data/birds_demo --colour_accuracy data/birds_demo --r_precision --cfg cfg/demo.yml \
    --captions_pickle data/birds_demo/captions.pickle --out output/demo/results/metrics.json
# Noise diversity needs several samples per caption: the swap captions' 4 noises each.
python IS.py --image_dir output/demo/samples/swap --no_inception --bird_net data/birds_demo --bird_diversity \
    --out output/demo/results/metrics_swap.json
wait_all
wait "$probe_pid"; cat output/demo/results/text_probe.txt
python -m tools.demo_report --samples output/demo/samples/every_caption --data_dir data/birds_demo \
    --swap_samples output/demo/samples/swap --swap_captions output/demo/swap_captions.txt \
    --out output/demo/results --metrics_json output/demo/results/metrics.json output/demo/results/metrics_swap.json
# The in-training evaluation curves (cfg/demo.yml evaluates every 2 epochs; best epoch in best.json).
cp output/demo/metrics.png output/demo/metrics.jsonl output/demo/best.json output/demo/results/
step "done: output/demo/results/{results.json,results_grid.png,results_swap.png,metrics.png}"

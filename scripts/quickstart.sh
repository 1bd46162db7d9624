#!/usr/bin/env bash
# The whole pipeline on a CPU, from nothing to scored samples (under 10 minutes on 2 idle cores):
# install -> synthetic CUB-like birds -> DAMSM pretraining -> SSA-GAN training -> sampling -> results.
# Everything lands in data/birds_demo and output/ ; re-running starts the demo over.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads cost 5-10x.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# One thread per process: the demo's models are so narrow (NF 8) that a second thread only adds
# synchronisation (measured on 2 cores: 0.26 s per GAN step with one thread, 0.35-0.42 s with two;
# DAMSM pretraining and evaluation are about as fast either way). Override by exporting it.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }
# Two cores, one thread per process: independent stages run side by side. `in_background CMD` starts one,
# `wait_all` waits for all of them and fails if any did (set -e does not see a background job fail).
bg_pids=()
in_background() { "$@" & bg_pids+=($!); }
wait_all() { local status=0; for pid in "${bg_pids[@]}"; do wait "$pid" || status=1; done; bg_pids=(); return $status; }
# A failing step ends the script (set -e): its background partners end with it, not write on alone.
trap 'kill ${bg_pids[@]+"${bg_pids[@]}"} 2>/dev/null || true' EXIT

step "install"
python -m pip install -q -r requirements.txt

step "synthetic CUB-like birds -> data/birds_demo (20 species x 30 images, 5 body colours, facing right)"
python -m tools.birds.make_birds data/birds_demo --facing right
rm -rf output/DAMSM_demo output/demo

step "DAMSM pretraining (cfg/DAMSM/demo.yml), beside it the bird feature network"
# The bird feature network FD/IS/diversity are computed with (the offline stand-in for Inception).
in_background python -m tools.bird_features data/birds_demo
python DAMSM.py --cfg cfg/DAMSM/demo.yml --gpu -1
wait_all

step "SSA-GAN training (cfg/demo.yml)"
python main.py --cfg cfg/demo.yml --gpu -1

step "sampling: every test caption (1,500), one caption per test image (150), captions differing in one colour word"
in_background python main.py --cfg cfg/demo.yml --gpu -1 --sample --masks all --out_dir output/demo/samples/every_caption
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
python -m tools.demo_report --samples output/demo/samples/every_caption --data_dir data/birds_demo \
    --swap_samples output/demo/samples/swap --swap_captions output/demo/swap_captions.txt \
    --out output/demo/results --metrics_json output/demo/results/metrics.json output/demo/results/metrics_swap.json
# The in-training evaluation curves (cfg/demo.yml evaluates every 2 epochs; best epoch in best.json).
cp output/demo/metrics.png output/demo/metrics.jsonl output/demo/best.json output/demo/results/
step "done: output/demo/results/{results.json,results_grid.png,results_swap.png,metrics.png}"

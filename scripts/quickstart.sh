#!/usr/bin/env bash
# The whole pipeline on a CPU, from nothing to scored samples (about 15 minutes on 2 cores):
# install -> synthetic birds -> DAMSM pretraining -> SSA-GAN training -> sampling -> results.
# Everything lands in data/birds_demo and output/ ; re-running starts the demo over.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads cost 5-10x.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "install"
python -m pip install -q -r requirements.txt

step "synthetic bird set -> data/birds_demo"
python -m tools.make_birds data/birds_demo --classes 20 --per-class 30 --seed 0
rm -rf output/DAMSM_demo output/demo

step "DAMSM pretraining (cfg/DAMSM/demo.yml)"
python DAMSM.py --cfg cfg/DAMSM/demo.yml --gpu -1

step "SSA-GAN training (cfg/demo.yml)"
python main.py --cfg cfg/demo.yml --gpu -1

step "sampling every test caption (1,500 images) and one caption per test image (150)"
python main.py --cfg cfg/demo.yml --gpu -1 --sample --out_dir output/demo/samples/every_caption
python main.py --cfg cfg/demo.yml --gpu -1 --sample --caption_mode random --out_dir output/demo/samples/one_per_image

step "evaluation"
# The Inception weights cannot be downloaded offline, so IS/FID here use a randomly initialised
# Inception: a check that the pipeline runs, NOT numbers comparable with papers (docs/EVALUATION.md).
# R-precision uses the demo's own DAMSM encoders and is meaningful.
python IS.py --image_dir output/demo/samples/one_per_image --weights random --splits 2 \
    --fid_ref data/birds_demo --r_precision --cfg cfg/demo.yml \
    --captions_pickle data/birds_demo/captions.pickle --out output/demo/results/metrics.json
python -m tools.demo_report --samples output/demo/samples/every_caption --data_dir data/birds_demo \
    --out output/demo/results --extra_json output/demo/results/metrics.json
# The in-training evaluation curves (cfg/demo.yml evaluates every 2 epochs; best epoch in best.json).
cp output/demo/metrics.png output/demo/metrics.jsonl output/demo/best.json output/demo/results/
step "done: output/demo/results/results_grid.png, results.json and metrics.png (curves per epoch)"

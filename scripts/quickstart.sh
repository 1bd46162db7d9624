#!/usr/bin/env bash
# The whole pipeline on a CPU, from nothing to scored samples (about 15 minutes on 2 cores):
# install -> synthetic birds -> DAMSM pretraining -> SSA-GAN training -> sampling -> results.
# Everything lands in data/birds_demo and output/ ; re-running starts the demo over.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
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

step "sampling every test caption"
python main.py --cfg cfg/demo.yml --gpu -1 --sample
samples=$(ls -d output/demo/samples/*_main | tail -n 1)

step "evaluation"
# Inception weights cannot be downloaded offline: IS/FID here use a randomly initialised
# Inception (pipeline check only, not comparable with published numbers; see docs/EVALUATION.md).
# R-precision uses the demo's own DAMSM encoders and is meaningful.
python IS.py --image_dir "$samples" --weights random --splits 2 --fid_ref data/birds_demo \
    --ref_size 64 --r_precision --text_encoder output/DAMSM_demo/models/text_encoder9.pth \
    --captions_pickle data/birds_demo/captions.pickle --cfg cfg/demo.yml --out output/demo/results/metrics.json
python -m tools.demo_report --samples "$samples" --data_dir data/birds_demo --out output/demo/results \
    --extra_json output/demo/results/metrics.json
step "done: output/demo/results/results_grid.png and results.json"

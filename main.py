"""Train SSA-GAN from scratch with the DAMSM encoders frozen, or sample (B_VALIDATION / --sample).

    python main.py --cfg cfg/bird.yml [--gpu -1] [--resume] [--opts KEY VALUE ...]
    python main.py --cfg cfg/bird.yml --sample --opts TRAIN.NET_G models/netG_590.pth
"""
from miscc.train.gan import cli_main

if __name__ == "__main__":
    cli_main("main")

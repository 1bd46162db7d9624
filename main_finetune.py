"""Fine-tune SSA-GAN together with the DAMSM text/image encoders (released main_finetune.py).

    python main_finetune.py --cfg cfg/bird.yml --opts TRAIN.NET_G models/netG_550.pth
    python main_finetune.py --cfg cfg/bird.yml --sample --opts TRAIN.NET_G output/.../netG_600.pth
"""
from main import cli_main

if __name__ == "__main__":
    cli_main("finetune")

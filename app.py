"""The interactive page (issue #14): type captions, see the images and the masks of every stage.

    python app.py                                   # demo model: cfg/demo.yml, newest netG in output/demo/models
    python app.py --cfg cfg/bird.yml --netG models/bird/netG_550.pth [--text_encoder FILE]
                  [--mode finetune] [--port 8000] [--host 127.0.0.1] [--gpu -1] [--opts KEY VALUE ...]

then open the printed address. Only the standard library serves it (README: "Interactive page").
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from miscc.config.cli import base_parser, run_main
from miscc.errors import SSAGANError


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("Serve a page to generate images from your captions.", default_cfg="cfg/demo.yml")
    for action in parser._actions:
        if action.dest == "resume":  # a training flag of the shared parser; meaningless here
            action.help = argparse.SUPPRESS
    parser.add_argument("--netG", default=None,
                        help="generator checkpoint (default: TRAIN.NET_G, else the newest netG_<epoch>.pth of the run)")
    parser.add_argument("--text_encoder", default=None,
                        help="text encoder (default: TEXT.DAMSM_NAME for --mode main, text_encoder_<epoch>.pth "
                             "beside netG for --mode finetune)")
    parser.add_argument("--mode", choices=("main", "finetune"), default="main",
                        help="which text encoder the generator was trained with (as main.py / main_finetune.py)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0 = any free port)")
    return parser


def serve(args: argparse.Namespace) -> None:
    from miscc.page.model import PageModel
    from miscc.page.server import PageServer

    try:
        model = PageModel.from_config(args.mode, args.netG, args.text_encoder)
    except SSAGANError as e:
        raise SSAGANError(f"{e}\n(The default is the demo model: scripts/quickstart.sh trains it; or pass "
                          "--cfg and --netG for another one.)") from e
    try:
        server = PageServer(model, args.host, args.port)
    except OSError as e:
        raise SSAGANError(f"cannot listen on {args.host}:{args.port} ({e}); choose another --port.") from e
    print(f"model loaded on {model.device}; serving {server.url}  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: Optional[Sequence[str]] = None) -> None:
    run_main(serve, build_parser(), argv)


if __name__ == "__main__":
    main()

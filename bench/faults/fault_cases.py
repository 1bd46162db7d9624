"""Bad inputs, part 1: config values, command lines, data, checkpoints and encoders (``bench/faults/fault_fixture.py``)."""
from __future__ import annotations

import pickle
import shutil

from bench.faults.fault_fixture import Fixture, Plan, bad_opt, case


# --- keys, types and values -------------------------------------------------------------------------

bad_opt("TRAIN.FOO", "1", "TRAIN.FOO is not a valid config key", quick=True, group="config key")
bad_opt("TRAIN.BATCHSIZE", "8", "TRAIN.BATCHSIZE", group="config key")
bad_opt("TRAIN.BATCH_SIZE", "six", "TRAIN.BATCH_SIZE must be int", quick=True, group="config type")
bad_opt("TRAIN.GENERATOR_LR", "fast", "TRAIN.GENERATOR_LR must be float", group="config type")
bad_opt("CUDA", "maybe", "CUDA must be bool", group="config type")
bad_opt("TRAIN.AMP", "fp8", "TRAIN.AMP = 'fp8' is not one of", group="config type")
bad_opt("TRAIN.BATCH_SIZE", "0", "TRAIN.BATCH_SIZE = 0", quick=True)
bad_opt("TRAIN.BATCH_SIZE", "-3", "TRAIN.BATCH_SIZE = -3")
bad_opt("TRAIN.NF", "0", "TRAIN.NF = 0", quick=True)
bad_opt("TRAIN.GSAVE_INTERVAL", "0", "TRAIN.GSAVE_INTERVAL = 0", quick=True)
bad_opt("TRAIN.DSAVE_INTERVAL", "0", "TRAIN.DSAVE_INTERVAL = 0")
bad_opt("TEXT.WORDS_NUM", "0", "TEXT.WORDS_NUM = 0")
bad_opt("TREE.BASE_SIZE", "100", "TREE.BASE_SIZE = 100", quick=True)
bad_opt("TRAIN.DAMSM_INPUT_SIZE", "50", "TRAIN.DAMSM_INPUT_SIZE = 50")
bad_opt("TRAIN.MAX_EPOCH", "0", "TRAIN.MAX_EPOCH = 0", quick=True)
bad_opt("TRAIN.MAX_EPOCH", "-2", "TRAIN.MAX_EPOCH = -2")
bad_opt("TRAIN.EMA_DECAY", "1.5", "TRAIN.EMA_DECAY = 1.5")
bad_opt("TRAIN.EVAL_INTERVAL", "-1", "TRAIN.EVAL_INTERVAL = -1", quick=True)
bad_opt("WORKERS", "-1", "WORKERS = -1")
bad_opt("TRAIN.BATCH_SIZE", "50", "TRAIN.BATCH_SIZE 50", group="config vs data")


@case("command line")
def _odd_opts(f: Fixture) -> Plan:
    """--opts with an odd number of items"""
    return Plan(f.gan("TRAIN.NF"), [f.out], "odd number")


@case("command line", quick=True)
def _resume_after_opts(f: Fixture) -> Plan:
    """--resume placed after --opts"""
    return Plan(f.gan("--resume"), [f.out], "before --opts")


@case("command line", quick=True)
def _seed_range(f: Fixture) -> Plan:
    """--manualSeed -1"""
    return Plan(f.gan(flags=("--manualSeed", "-1")), [f.out], "SEED = -1")


@case("command line")
def _seed_big(f: Fixture) -> Plan:
    """--manualSeed 2**33"""
    return Plan(f.gan(flags=("--manualSeed", str(2 ** 33))), [f.out], "SEED = 8589934592")


@case("command line")
def _progress_choice(f: Fixture) -> Plan:
    """--progress fancy"""
    return Plan(f.gan(flags=("--progress", "fancy")), [f.out], "--progress")


@case("command line")
def _seed_text(f: Fixture) -> Plan:
    """--manualSeed abc"""
    return Plan(f.gan(flags=("--manualSeed", "abc")), [f.out], "--manualSeed")


@case("command line", quick=True)
def _gpu_absent(f: Fixture) -> Plan:
    """--gpu 99 (no such CUDA device)"""
    argv = f.gan()
    argv[argv.index("--gpu") + 1] = "99"
    return Plan(argv, [f.out], "--gpu 99")


def _with_cfg(f: Fixture, text: str) -> list[str]:
    """The GAN command line with ``--cfg`` replaced by a file holding ``text``."""
    argv = f.gan()
    argv[argv.index("--cfg") + 1] = str(f.write("bad.yml", text))
    return argv


@case("config file", quick=True)
def _yaml_unknown_key(f: Fixture) -> Plan:
    """--cfg file with an unknown key"""
    argv = _with_cfg(f, "TRAIN:\n  BATCHSIZE: 3\n")
    return Plan(argv, [f.out], "TRAIN.BATCHSIZE is not a valid config key")


@case("config file")
def _yaml_string_float(f: Fixture) -> Plan:
    """--cfg file with GENERATOR_LR: 2e-4 (YAML reads text)"""
    argv = _with_cfg(f, "TRAIN:\n  GENERATOR_LR: 2e-4\n")
    return Plan(argv, [f.out], "0.0002")


@case("config file")
def _yaml_broken(f: Fixture) -> Plan:
    """--cfg file that is not YAML"""
    argv = _with_cfg(f, "TRAIN: [unclosed\n")
    return Plan(argv, [f.out], "not valid YAML")


@case("config file")
def _yaml_missing(f: Fixture) -> Plan:
    """--cfg file that does not exist"""
    argv = f.gan()
    argv[argv.index("--cfg") + 1] = str(f.dir / "nope.yml")
    return Plan(argv, [f.out], "nope.yml")


# --- data ------------------------------------------------------------------------------------------

@case("data", quick=True)
def _data_missing(f: Fixture) -> Plan:
    """--data_dir that does not exist"""
    return Plan(f.gan(data=f.dir / "no_birds"), [f.out, f.dir / "no_birds"], "no_birds")


@case("data")
def _data_empty(f: Fixture) -> Plan:
    """--data_dir an empty folder"""
    (f.dir / "empty_birds").mkdir()
    return Plan(f.gan(data=f.dir / "empty_birds"), [f.out, f.dir / "empty_birds"], "empty_birds")


@case("data")
def _data_file(f: Fixture) -> Plan:
    """--data_dir a file"""
    path = f.write("birds.txt", "not a folder")
    return Plan(f.gan(data=path), [f.out, path], "birds.txt")


@case("data", quick=True)
def _empty_caption_file(f: Fixture) -> Plan:
    """an empty caption file (captions.pickle to be rebuilt)"""
    data = f.copy_birds()
    (data / "captions.pickle").unlink()
    victim = sorted((data / "text").rglob("*.txt"))[0]
    victim.write_text("")
    return Plan(f.gan(data=data), [f.out, data], victim.name)


@case("data", quick=True)
def _wordless_captions(f: Fixture) -> Plan:
    """a caption file whose lines have no ASCII word"""
    data = f.copy_birds()
    (data / "captions.pickle").unlink()
    victim = sorted((data / "text").rglob("*.txt"))[0]
    victim.write_text("¡¿ ¡¿ ¡¿\n\u00e9\u00e8\u00ea \u00fc\u00f6\n" * 5)
    return Plan(f.gan(data=data), [f.out, data], victim.name)


@case("data")
def _corrupt_captions_pickle(f: Fixture) -> Plan:
    """captions.pickle that is garbage"""
    data = f.copy_birds()
    (data / "captions.pickle").write_bytes(b"\x00garbage")
    return Plan(f.gan(data=data), [f.out, data], "captions.pickle")


@case("data")
def _foreign_captions_pickle(f: Fixture) -> Plan:
    """captions.pickle of another data set (fewer captions)"""
    data = f.copy_birds()
    train, test, ixtoword, wordtoix = pickle.loads((data / "captions.pickle").read_bytes())
    (data / "captions.pickle").write_bytes(pickle.dumps([train[:-10], test, ixtoword, wordtoix], protocol=2))
    return Plan(f.gan(data=data), [f.out, data], "does not belong to this data set")


def _broken_images(f: Fixture, workers: str) -> Plan:
    data = f.copy_birds()
    for jpg in (data / "CUB_200_2011" / "images").rglob("*.jpg"):
        jpg.write_bytes(b"not a jpeg")
    return Plan(f.gan("WORKERS", workers, data=data), [data], "cannot be read")


@case("data")
def _broken_images_no_workers(f: Fixture) -> Plan:
    """images that are not JPEGs, WORKERS 0"""
    return _broken_images(f, "0")


@case("data", quick=True)
def _broken_images_worker(f: Fixture) -> Plan:
    """images that are not JPEGs, WORKERS 1 (error inside a DataLoader worker)"""
    return _broken_images(f, "1")


# --- checkpoints and encoders ------------------------------------------------------------------------

@case("checkpoint", quick=True)
def _netd_as_netg(f: Fixture) -> Plan:
    """a netD file as TRAIN.NET_G"""
    path = f.dir / "weights" / f"netG_{f.epochs:03d}.pth"
    path.parent.mkdir()
    shutil.copy(f.netd(), path)
    return Plan(f.gan("TRAIN.NET_G", str(path), epochs=f.epochs + 1), [f.out, path.parent],
                "looks like a discriminator")


@case("checkpoint", quick=True)
def _text_as_netg(f: Fixture) -> Plan:
    """a text file as TRAIN.NET_G"""
    path = f.write("weights/netG_005.pth", "these are not weights\n")
    return Plan(f.gan("TRAIN.NET_G", str(path), epochs=9), [f.out, path.parent], "netG_005.pth")


@case("checkpoint")
def _netg_missing(f: Fixture) -> Plan:
    """TRAIN.NET_G that does not exist"""
    path = f.dir / "weights" / "netG_005.pth"
    return Plan(f.gan("TRAIN.NET_G", str(path), epochs=9), [f.out], "netG_005.pth")


@case("checkpoint")
def _netg_no_epoch(f: Fixture) -> Plan:
    """TRAIN.NET_G without an epoch in its name"""
    path = f.dir / "weights" / "generator.pth"
    path.parent.mkdir()
    shutil.copy(f.netg(), path)
    return Plan(f.gan("TRAIN.NET_G", str(path), epochs=9), [f.out, path.parent], "generator.pth")


@case("checkpoint")
def _netg_folder(f: Fixture) -> Plan:
    """TRAIN.NET_G a folder"""
    path = f.dir / "netG_003.pth"
    path.mkdir()
    return Plan(f.gan("TRAIN.NET_G", str(path), epochs=9), [f.out, path], "netG_003.pth")


@case("checkpoint")
def _training_state_as_netg(f: Fixture) -> Plan:
    """a training state (latest.pth) as TRAIN.NET_G"""
    return Plan(f.gan("TRAIN.NET_G", str(f.run / "models" / "latest.pth"), epochs=9), [f.out, f.run], "latest.pth")


@case("encoder")
def _training_state_as_text_encoder(f: Fixture) -> Plan:
    """a training state (latest.pth) as TEXT.DAMSM_NAME"""
    return Plan(f.gan(encoder=f.run / "models" / "latest.pth"), [f.out, f.run], "latest.pth")


@case("checkpoint", quick=True)
def _netg_other_width(f: Fixture) -> Plan:
    """TRAIN.NET_G saved with NF 4, the config says NF 8"""
    return Plan(f.gan("TRAIN.NET_G", str(f.netg()), "TRAIN.NF", "8", epochs=9), [f.out, f.run],
                "saved with TRAIN.NF 4, the config says 8")


@case("encoder")
def _image_encoder_as_text(f: Fixture) -> Plan:
    """TEXT.DAMSM_NAME an image encoder file"""
    image = f.text_encoder.with_name(f.text_encoder.name.replace("text_encoder", "image_encoder"))
    return Plan(f.gan(encoder=image), [f.out], "not a DAMSM text-encoder")


@case("encoder")
def _text_encoder_missing(f: Fixture) -> Plan:
    """TEXT.DAMSM_NAME that does not exist"""
    return Plan(f.gan(encoder=f.dir / "text_encoder200.pth"), [f.out], "text_encoder200.pth")


@case("encoder")
def _image_encoder_missing(f: Fixture) -> Plan:
    """the image encoder beside TEXT.DAMSM_NAME is missing"""
    lonely = f.dir / "enc" / "text_encoder200.pth"
    lonely.parent.mkdir()
    shutil.copy(f.text_encoder, lonely)
    return Plan(f.gan(encoder=lonely), [f.out, lonely.parent], "image_encoder200.pth")


@case("encoder", quick=True)
def _encoder_other_vocabulary(f: Fixture) -> Plan:
    """a text encoder trained on another vocabulary size"""
    import torch
    from DAMSM import RNN_ENCODER
    from miscc.run.checkpoint import save_released, text_encoder_rows
    folder = f.dir / "enc"
    folder.mkdir()
    save_released(RNN_ENCODER(text_encoder_rows(f.text_encoder) + 7, nhidden=256), folder / "text_encoder200.pth")
    torch.save({}, folder / "image_encoder200.pth")
    return Plan(f.gan(encoder=folder / "text_encoder200.pth"), [f.out, folder], "vocabulary mismatch")


@case("encoder")
def _finetune_half_pair(f: Fixture) -> Plan:
    """main_finetune.py: NET_G with a text_encoder beside it but no image_encoder"""
    folder = f.dir / "weights"
    folder.mkdir()
    shutil.copy(f.netg(), folder / f.netg().name)
    shutil.copy(f.text_encoder, folder / f"text_encoder_{f.epochs:03d}.pth")
    return Plan(f.gan("TRAIN.NET_G", str(folder / f.netg().name), script="main_finetune.py", epochs=f.epochs + 1),
                [f.out, folder], "come as a pair")

"""Sample folders cut short (issue 23): atomic PNGs, IS.py's interrupted-run message, the mixed-size refusal."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import IS
from miscc.errors import SSAGANError
from miscc.sample.protocol import DONE_FILE, PLAN_FILE, SAMPLES_FILE
from miscc.sample.png import _save_pngs, save_png_atomic
from tests.helpers import write_sample_folder


def test_a_png_write_that_fails_leaves_no_file_and_no_temp(tmp_path, monkeypatch):
    image = np.zeros((4, 4, 3), np.uint8)
    save_png_atomic(tmp_path / "a.png", image)
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == (4, 4)

    def disk_full(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n")  # part of the file, then the disk is full
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(SSAGANError, match=r"could not write .*b\.png \(No space left on device\).*incomplete"):
        _save_pngs([(str(tmp_path / "b.png"), image)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no 0-byte or torn b.png, no temp


def _cut_folder(tmp_path):
    """A sampling run cut by a full disk before the atomic writes: its last image is 0 bytes."""
    folder = write_sample_folder(tmp_path / "samples", done=False)
    (folder / "img" / "000003.png").write_bytes(b"")
    return folder


def test_is_py_reports_an_interrupted_folder_before_opening_its_images(tmp_path, capsys):
    folder = _cut_folder(tmp_path)
    assert IS.main(["--image_dir", str(folder), "--weights", "random", "--workers", "0", "--device", "cpu",
                    "--splits", "1"]) == 2
    err = capsys.readouterr().err
    assert "interrupted sampling run" in err and f"no {DONE_FILE}" in err and "4 images of 10 planned" in err
    assert "not a readable image" not in err


def test_a_torchrun_folder_cut_before_its_records_merged_is_interrupted_too(tmp_path, capsys):
    folder = write_sample_folder(tmp_path / "samples", done=False)
    (folder / SAMPLES_FILE).rename(folder / f".{SAMPLES_FILE}.rank0")
    assert IS.main(["--image_dir", str(folder), "--weights", "random", "--workers", "0", "--device", "cpu",
                    "--splits", "1"]) == 2
    assert "interrupted sampling run" in capsys.readouterr().err
    assert json.loads((folder / PLAN_FILE).read_text())["count"] == 10


def test_mixed_sizes_with_image_size_name_that_flag(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.new("RGB", (16, 16)).save(folder / "a.png")
    Image.new("RGB", (12, 12)).save(folder / "b.png")
    argv = ["--image_dir", str(folder), "--weights", "random", "--workers", "0", "--device", "cpu", "--splits", "1"]
    assert IS.main(argv + ["--image_size", "128"]) == 2
    err = capsys.readouterr().err
    assert "images differ in size" in err and "--image_size 128 resizes a folder of one size" in err
    assert "only reference sets are resized" not in err
    assert IS.main(argv) == 2
    assert "only reference sets are resized, with --ref_size" in capsys.readouterr().err

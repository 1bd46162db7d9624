"""miscc/sample/protocol.py: the samples.jsonl record, its reader, and the pixel conversion are a frozen format."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from miscc.errors import SSAGANError
from miscc.sample.protocol import (SAMPLES_FILE, SampleRecord, image_file, images_to_uint8, mask_file, read_samples,
                                   write_records)


def _folder_with(tmp_path, lines: list[str], images: int = 1):
    for i in range(images):
        (tmp_path / image_file(i)).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / image_file(i))
    (tmp_path / SAMPLES_FILE).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return tmp_path


def test_a_record_is_one_json_line_with_the_documented_fields_in_order():
    rec = SampleRecord.numbered(7, "001.A/a_1", 3, "a bird", (4, 5), 1)
    assert (rec.file, rec.mask) == ("img/000007.png", "mask/000007.png") == (image_file(7), mask_file(7))
    assert rec.to_json() == ('{"file": "img/000007.png", "mask": "mask/000007.png", "key": "001.A/a_1", '
                             '"caption_idx": 3, "text": "a bird", "tokens": [4, 5], "repeat": 1}')
    assert SampleRecord.from_json(rec.to_json()) == rec


def test_written_records_read_back_equal(tmp_path):
    records = [SampleRecord.numbered(i, f"k{i}", i, "w", [1, 2 + i], 0) for i in range(3)]
    _folder_with(tmp_path, [], images=3)
    with open(tmp_path / SAMPLES_FILE, "w", encoding="utf-8") as f:
        write_records(f, records)
    assert read_samples(tmp_path) == records


def test_hand_written_records_need_only_file_key_caption_and_tokens(tmp_path):
    _folder_with(tmp_path, ['{"file": "img/000000.png", "key": 12, "caption_idx": "2", "tokens": [3]}'])
    (rec,) = read_samples(tmp_path)
    assert rec == SampleRecord("img/000000.png", None, "12", 2, "", (3,), 0)


@pytest.mark.parametrize("line, message", [
    ('{"file": "img/000000.png", "key": "k"}', r"samples.jsonl:2: not a sample record .*KeyError"),
    ("not json", r"samples.jsonl:2: not a sample record .*JSONDecodeError"),
    ('{"file": "img/000000.png", "key": "k", "caption_idx": 0, "tokens": []}', r"samples.jsonl:2: tokens must"),
    ('{"file": "img/000000.png", "key": "k", "caption_idx": 0, "tokens": [-1]}', r"samples.jsonl:2: tokens must"),
    ('{"file": "img/000009.png", "key": "k", "caption_idx": 0, "tokens": [1]}', r"img/000009.png does not exist"),
])
def test_bad_lines_are_refused_with_file_and_line(tmp_path, line, message):
    good = SampleRecord.numbered(0, "k", 0, "", [1], 0).to_json()
    _folder_with(tmp_path, [good, line])
    with pytest.raises(SSAGANError, match=message):
        read_samples(tmp_path)


def test_missing_or_empty_records_file(tmp_path):
    with pytest.raises(SSAGANError, match=r"samples.jsonl does not exist: pass a folder written by the sampler"):
        read_samples(tmp_path)
    _folder_with(tmp_path, ["", "  "])
    with pytest.raises(SSAGANError, match="samples.jsonl is empty"):
        read_samples(tmp_path)


def test_images_to_uint8_truncates_and_clamps_like_the_original_png_writer():
    x = torch.tensor([-1.5, -1.0, -0.999, 0.0, 0.999, 1.0, 2.0])
    # (x + 1) * 127.5: 0.1275 -> 0, 127.5 -> 127, 254.87 -> 254 (truncation, not rounding).
    assert images_to_uint8(x).tolist() == [0, 0, 0, 127, 254, 255, 255]
    assert images_to_uint8(x).dtype == torch.uint8

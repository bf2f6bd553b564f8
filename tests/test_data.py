"""The data catalogue: real files in each source's genuine on-disk format, read by dlx."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from dlx.data import build_data, catalogue
from dlx.data.base import channel_stats, split_indices

CPU = torch.device("cpu")
SRC = Path(__file__).resolve().parents[1] / "src"


def test_no_download_true_literal_in_src():
    pattern = re.compile(r"download\s*=\s*True")
    offenders = [p for p in SRC.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


CONF = SRC / "dlx" / "conf" / "data"


def test_every_dataset_has_a_yaml():
    assert {p.stem for p in CONF.glob("*.yaml")} == set(catalogue().names())


# --- digits --------------------------------------------------------------------------------
def test_digits_splits():
    data = build_data({"name": "digits"}, CPU)
    assert data.info.sizes == {"train": 1347, "val": 180, "test": 270}
    assert data.info.image_size == 32 and data.info.input_shape == (1, 32, 32)
    x, y = data.splits["train"]
    assert x.dtype == torch.uint8 and x.shape == (1347, 1, 32, 32) and int(x.max()) > 200
    assert set(y.unique().tolist()) == set(range(10))
    again = build_data({"name": "digits"}, CPU)
    other = build_data({"name": "digits", "split_seed": 1}, CPU)
    assert torch.equal(again.splits["val"][0], data.splits["val"][0])
    assert not torch.equal(other.splits["val"][0], data.splits["val"][0])
    native = build_data({"name": "digits", "image_size": None}, CPU)
    assert native.splits["test"][0].shape[-2:] == (8, 8)
    train, val, test = split_indices(1797, (0.1, 0.15), 0)
    everything = torch.cat([train, val, test])
    assert torch.equal(everything.sort().values, torch.arange(1797))


def test_channel_stats_match_float_statistics():
    x = torch.randint(0, 256, (50, 3, 6, 6), dtype=torch.uint8)
    x[:, 2] //= 4
    mean, std = channel_stats(x)
    f = x.double().div(255).transpose(0, 1).flatten(1)
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), f.mean(1))
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), f.std(1, correction=0))

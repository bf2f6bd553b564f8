"""The data catalogue: real files in each source's genuine on-disk format, read by dlx."""

from __future__ import annotations

import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from dlx.data import DATASETS, build_data
from dlx.data.base import channel_stats, split_indices
from dlx.data.mnist10k import IMAGES, LABELS, read_idx
from dlx.data.vision import SPECS
from dlx.errors import UsageError

CPU = torch.device("cpu")
SRC = Path(__file__).resolve().parents[1] / "src"


def all_batches(data, split: str, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*data.batches(split, **kw), strict=True)
    return torch.cat(xs), torch.cat(ys)


# --- MNIST family: slices of the genuine t10k set re-encoded as IDX files ----------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(f">I{array.ndim}I", 0x0800 + array.ndim, *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.fixture(scope="module")
def t10k() -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(IMAGES), read_idx(LABELS)  # shipped with dlx (data=mnist10k)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    return images, labels


N_TRAIN, N_TEST = 300, 100


def write_mnist_layout(root: Path, folder: str, t10k, test_files: bool = True) -> None:
    """torchvision's ``ROOT/<folder>/raw/`` with train = t10k[:300], test = t10k[300:400]."""
    images, labels = t10k
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", images[:N_TRAIN])
    write_idx(raw / "train-labels-idx1-ubyte", labels[:N_TRAIN])
    if test_files:
        write_idx(raw / "t10k-images-idx3-ubyte", images[N_TRAIN : N_TRAIN + N_TEST])
        write_idx(raw / "t10k-labels-idx1-ubyte", labels[N_TRAIN : N_TRAIN + N_TEST])


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "kmnist"])
def test_mnist_family_reads_genuine_idx_files(tmp_path, t10k, name):
    write_mnist_layout(tmp_path, SPECS[name].cls, t10k)
    cfg = {"name": name, "root": str(tmp_path), "val_fraction": 0.2, "batch_size": 64}
    data = build_data(cfg, CPU)
    info = data.info
    assert (info.num_classes, info.channels, info.image_size) == (10, 1, 28)
    assert info.sizes == {"train": 240, "val": 60, "test": N_TEST}
    x, y = data.splits["test"]
    assert x.dtype == torch.uint8 and x.shape == (N_TEST, 1, 28, 28)
    # test is the official test split, in file order, pixel for pixel
    images, labels = t10k
    assert torch.equal(x[:, 0], torch.from_numpy(images[N_TRAIN : N_TRAIN + N_TEST]))
    assert torch.equal(y, torch.from_numpy(labels[N_TRAIN : N_TRAIN + N_TEST].astype(np.int64)))
    xb, yb = all_batches(data, "train")
    assert xb.shape == (240, 1, 28, 28) and yb.dtype == torch.int64
    assert int(yb.min()) >= 0 and int(yb.max()) <= 9 and len(yb.unique()) == 10
    # train + val are exactly the train file, split by the seed
    train_val = torch.cat([data.splits["train"][1], data.splits["val"][1]])
    assert torch.equal(train_val.sort().values, torch.from_numpy(labels[:N_TRAIN]).long().sort()[0])
    assert 0.05 < info.mean[0] < 0.3 and 0.2 < info.std[0] < 0.45  # MNIST: 0.13, 0.31


def test_mnist_split_is_seeded_and_resize_applies(tmp_path, t10k):
    write_mnist_layout(tmp_path, "MNIST", t10k)
    cfg = {"name": "mnist", "root": str(tmp_path)}
    a, b = build_data(cfg, CPU), build_data(cfg, CPU)
    c = build_data({**cfg, "split_seed": 1}, CPU)
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])
    assert not torch.equal(a.splits["val"][0], c.splits["val"][0])
    big = build_data({**cfg, "image_size": 32}, CPU)
    x = big.splits["test"][0]
    assert big.info.image_size == 32 and x.shape == (N_TEST, 1, 32, 32) and x.dtype == torch.uint8
    # same digits, only larger: the mean brightness barely moves
    small = a.splits["test"][0].float().mean()
    assert abs(x.float().mean() - small) < 0.05 * small


def test_incomplete_mnist_folder_is_a_usage_error(tmp_path, t10k):
    write_mnist_layout(tmp_path, "MNIST", t10k, test_files=False)
    with pytest.raises(UsageError, match=r"data\.download=true") as e:
        build_data({"name": "mnist", "root": str(tmp_path)}, CPU)
    assert str(tmp_path / "MNIST" / "raw") in str(e.value)


# --- CIFAR: pickles in the format of the published python versions ----------------------------
def images_rgb(n: int, seed: int) -> np.ndarray:
    """(n, 3072) uint8 rows: the red plane, then green, then blue (CIFAR's row layout)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, per_batch: int = 20, n_test: int = 30) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        dump(
            folder / f"data_batch_{i}",
            {
                "batch_label": f"training batch {i} of 5",
                "labels": [int(v) for v in np.arange(per_batch) % 10],
                "data": images_rgb(per_batch, i),
                "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)],
            },
        )
    test = images_rgb(n_test, 0)
    dump(
        folder / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": [int(v) for v in np.arange(n_test) % 10],
            "data": test,
            "filenames": [f"test_{j}.png" for j in range(n_test)],
        },
    )
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
    dump(
        folder / "batches.meta",
        {"num_cases_per_batch": per_batch, "label_names": [*names, "truck"], "num_vis": 3072},
    )
    return test


def write_cifar100(root: Path, n_train: int = 200, n_test: int = 100) -> np.ndarray:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    test = images_rgb(n_test, 0)
    for split, n, data in (("train", n_train, images_rgb(n_train, 1)), ("test", n_test, test)):
        dump(
            folder / split,
            {
                "filenames": [f"{split}_{j}.png" for j in range(n)],
                "batch_label": f"{split} batch 1 of 1",
                "fine_labels": [int(v) for v in np.arange(n) % 100],
                "coarse_labels": [int(v) for v in np.arange(n) % 20],
                "data": data,
            },
        )
    dump(
        folder / "meta",
        {
            "fine_label_names": [f"fine_{k}" for k in range(100)],
            "coarse_label_names": [f"coarse_{k}" for k in range(20)],
        },
    )
    return test


@pytest.fixture
def no_md5(monkeypatch):
    """Skip only the md5 comparison with the official files: existence is still checked."""
    import torchvision.datasets.cifar
    import torchvision.datasets.svhn

    def exists(fpath, md5=None):
        return os.path.isfile(fpath)

    for module in (torchvision.datasets.cifar, torchvision.datasets.svhn):
        monkeypatch.setattr(module, "check_integrity", exists)


@pytest.mark.parametrize(
    ("name", "writer", "num_classes", "sizes"),
    [
        ("cifar10", write_cifar10, 10, {"train": 90, "val": 10, "test": 30}),
        ("cifar100", write_cifar100, 100, {"train": 180, "val": 20, "test": 100}),
    ],
)
def test_cifar_reads_genuine_pickles(tmp_path, no_md5, name, writer, num_classes, sizes):
    test = writer(tmp_path)
    data = build_data({"name": name, "root": str(tmp_path), "batch_size": 32}, CPU)
    assert data.info.sizes == sizes
    assert (data.info.num_classes, data.info.channels, data.info.image_size) == (num_classes, 3, 32)
    x, y = data.splits["test"]
    assert x.dtype == torch.uint8 and x.shape == (len(test), 3, 32, 32)
    # the HWC arrays torchvision builds come back as CHW with the channel planes intact
    assert torch.equal(x, torch.from_numpy(test.reshape(-1, 3, 32, 32)))
    assert torch.equal(y, torch.arange(len(test)) % num_classes)
    assert len(data.info.mean) == 3 and all(0.4 < m < 0.6 for m in data.info.mean)
    xb, yb = next(data.batches("train", shuffle=True, seed=3))
    assert xb.shape == (32, 3, 32, 32) and int(yb.max()) < num_classes


def test_svhn_reads_mat_files(tmp_path, no_md5):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    written = {}
    for split, n in (("train", 40), ("test", 12)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # H x W x C x N
        y = (np.arange(n, dtype=np.uint8) % 10 + 1).reshape(n, 1)  # 1..10, 10 for digit 0
        savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
        written[split] = (x, y)
    data = build_data({"name": "svhn", "root": str(tmp_path), "image_size": 16}, CPU)
    assert data.info.sizes == {"train": 36, "val": 4, "test": 12}
    x, y = data.splits["test"]
    assert x.dtype == torch.uint8 and x.shape == (12, 3, 16, 16)
    assert torch.equal(y, torch.from_numpy(written["test"][1][:, 0] % 10).long())
    full = build_data({"name": "svhn", "root": str(tmp_path)}, CPU).splits["test"][0]
    assert torch.equal(full, torch.from_numpy(written["test"][0].transpose(3, 2, 0, 1)))


# --- errors and config ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SPECS))
def test_missing_root_names_path_and_download(tmp_path, name):
    root = tmp_path / "nowhere"
    with pytest.raises(UsageError) as e:
        build_data({"name": name, "root": str(root)}, CPU)
    msg = str(e.value)
    assert "\n" not in msg and str(root) in msg and "data.download=true" in msg


@pytest.mark.parametrize(("key", "value", "true"), [("num_classes", 100, 10), ("channels", 3, 1)])
def test_dataset_facts_cannot_be_overridden(key, value, true):
    with pytest.raises(UsageError, match=rf"data\.{key}={value}: .*{key}={true}"):
        build_data({"name": "mnist", "root": "unused", key: value}, CPU)


def test_no_download_true_literal_in_src():
    pattern = re.compile(r"download\s*=\s*True")
    offenders = [p for p in SRC.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


CONF = SRC / "dlx" / "conf" / "data"


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_yaml_matches_schema_and_dataset(path):
    from omegaconf import OmegaConf

    node = OmegaConf.load(path)
    assert path.read_text().startswith("# ")
    assert node.name == path.stem
    cfg = DATASETS.parse(node)  # unknown keys, types and ranges raise
    if path.stem in SPECS:
        spec = SPECS[path.stem]
        assert not cfg.download
        assert (cfg.num_classes, cfg.channels) == (spec.num_classes, spec.channels)
        assert cfg.image_size == spec.image_size


def test_every_dataset_has_a_yaml():
    assert {p.stem for p in CONF.glob("*.yaml")} == set(DATASETS.names())


# --- imagefolder ---------------------------------------------------------------------------
def write_folder(root: Path, per_class: int = 6, classes=("cat", "dog", "owl")) -> None:
    """PNGs of mixed sizes whose colour encodes (class, index), so orders can be told apart;
    a black stripe on the left makes a horizontal flip visible."""
    from PIL import Image, ImageDraw

    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            value = 10 + 12 * (c * per_class + i)
            size = (20 + 2 * i, 24)
            img = Image.new("RGB", size, (value, 255 - value, value // 2))
            ImageDraw.Draw(img).rectangle((0, 0, size[0] // 4, size[1]), fill=(0, 0, 0))
            img.save(root / name / f"{i}.png")


def folder(root: Path, **kw):
    cfg = {"name": "imagefolder", "root": str(root), "image_size": 16, "num_workers": 0}
    return build_data(
        {**cfg, "batch_size": 4, "val_fraction": 0.2, "test_fraction": 0.2, **kw}, CPU
    )


def test_imagefolder_batches_are_uint8_and_sized(tmp_path):
    write_folder(tmp_path / "train")
    data = folder(tmp_path)
    assert data.info.num_classes == 3 and data.info.channels == 3
    assert data.info.sizes == {"train": 10, "val": 4, "test": 4}
    assert data.num_batches("train") == 3 and data.num_batches("train", drop_last=True) == 2
    batches = list(data.batches("train"))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert x.dtype == torch.uint8 and x.shape == (10, 3, 16, 16)
    assert y.dtype == torch.int64 and set(y.tolist()) <= {0, 1, 2}
    assert [len(y) for _, y in data.batches("train", drop_last=True)] == [4, 4]
    # the carved splits are disjoint: every image's brightness is unique
    keys = {s: set(all_batches(data, s)[0][:, 0, 8, 8].tolist()) for s in ("train", "val", "test")}
    assert sum(len(k) for k in keys.values()) == len(set().union(*keys.values())) == 18
    gray = folder(tmp_path, channels=1)
    assert gray.info.channels == 1 and next(gray.batches("val"))[0].shape == (4, 1, 16, 16)


def test_imagefolder_shuffle_is_seeded_and_start_skips(tmp_path):
    write_folder(tmp_path / "train")
    data = folder(tmp_path)
    a, _ = all_batches(data, "train", shuffle=True, seed=1)
    b, _ = all_batches(data, "train", shuffle=True, seed=1)
    c, _ = all_batches(data, "train", shuffle=True, seed=2)
    plain, _ = all_batches(data, "train")
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, plain)
    resumed, _ = all_batches(data, "train", shuffle=True, seed=1, start=1)
    assert torch.equal(resumed, a[4:])
    assert list(data.batches("train", shuffle=True, seed=1, start=3)) == []
    workers = folder(tmp_path, num_workers=1)  # a persistent worker gives the same batches
    for _ in range(2):
        assert torch.equal(all_batches(workers, "train", shuffle=True, seed=1)[0], a)


def test_imagefolder_uses_given_splits_and_train_hook(tmp_path):
    from torchvision.transforms import v2

    write_folder(tmp_path / "train")
    write_folder(tmp_path / "val", per_class=2)
    data = folder(tmp_path)
    assert data.info.sizes == {"train": 14, "val": 6, "test": 4}
    plain, _ = all_batches(data, "train")
    data.train_transform = v2.RandomHorizontalFlip(p=1.0)
    flipped, _ = all_batches(data, "train")
    assert torch.equal(flipped, plain.flip(-1)) and not torch.equal(flipped, plain)
    assert torch.equal(all_batches(data, "val")[0], all_batches(folder(tmp_path), "val")[0])


def test_imagefolder_augmentation_is_per_image_and_epoch_whatever_the_workers(tmp_path):
    from torchvision.transforms import v2

    write_folder(tmp_path / "train")
    aug = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomResizedCrop(16, antialias=True)])
    runs = {}
    for workers in (0, 2):
        data = folder(tmp_path, num_workers=workers)
        data.train_transform = aug
        state = torch.get_rng_state()
        runs[workers] = [all_batches(data, "train", shuffle=True, seed=s)[0] for s in (1, 1, 2)]
        assert torch.equal(torch.get_rng_state(), state)  # the process's stream is untouched
        resumed, _ = all_batches(data, "train", shuffle=True, seed=1, start=1)
        assert torch.equal(resumed, runs[workers][0][4:])  # a resume draws the same
    first, again, other = runs[0]
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))
    plain, _ = all_batches(folder(tmp_path), "train", shuffle=True, seed=1)
    assert not torch.equal(first, plain)  # it did augment


def test_imagefolder_errors(tmp_path):
    with pytest.raises(UsageError, match=re.escape(str(tmp_path / "train"))):
        folder(tmp_path)
    write_folder(tmp_path / "train")
    write_folder(tmp_path / "test", classes=("cat", "dog"))
    with pytest.raises(UsageError, match="owl"):
        folder(tmp_path)
    with pytest.raises(UsageError, match=r"data\.num_classes=5"):
        folder(tmp_path, num_classes=5)


# --- adding problem ------------------------------------------------------------------------
def test_adding_problem():
    cfg = {"name": "adding", "seq_len": 20, "num_train": 300, "num_val": 50, "num_test": 40}
    data = build_data(cfg, CPU)
    info = data.info
    assert (info.kind, info.task, info.num_classes) == ("sequence", "regression", 1)
    assert info.input_shape == (20, 2) and info.sizes == {"train": 300, "val": 50, "test": 40}
    x, y = data.splits["train"]
    assert x.dtype == y.dtype == torch.float32 and x.shape == (300, 20, 2) and y.shape == (300,)
    values, markers = x[..., 0], x[..., 1]
    assert values.min() >= 0 and values.max() < 1
    assert torch.equal(markers[:, :10].sum(1), torch.ones(300))  # one marker in each half
    assert torch.equal(markers[:, 10:].sum(1), torch.ones(300))
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    assert torch.allclose((values * markers).sum(1), y)
    assert 0.9 < y.mean() < 1.1  # the sum of two U[0, 1]
    again = build_data(cfg, CPU)
    other = build_data({**cfg, "split_seed": 1}, CPU)
    assert torch.equal(again.splits["test"][0], data.splits["test"][0])
    assert not torch.equal(other.splits["train"][0], x)
    assert not torch.equal(data.splits["val"][0], x[:50])
    xb, yb = next(data.batches("train", shuffle=True, seed=0))
    assert xb.shape == (128, 20, 2) and yb.shape == (128,)


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


def test_digits_read_from_sklearns_file_equal_load_digits():
    from sklearn.datasets import load_digits as sk_load_digits

    from dlx.data.digits import load_digits

    images, labels = load_digits()
    ref = sk_load_digits()
    assert (images == ref.data).all()
    assert (labels == ref.target).all()


def test_synthetic_images_have_the_configured_shape_and_classes():
    import torch

    from dlx.data import build_data

    cfg = {
        "name": "synthetic",
        "image_size": 16,
        "channels": 3,
        "num_classes": 7,
        "num_train": 40,
        "num_val": 8,
        "num_test": 8,
        "batch_size": 16,
    }
    data = build_data(cfg, torch.device("cpu"))
    x, y = next(iter(data.batches("train", shuffle=True, seed=1)))
    assert x.shape == (16, 3, 16, 16) and x.dtype == torch.uint8
    assert int(y.max()) < 7 and data.info.input_shape == (3, 16, 16)
    again = build_data(cfg, torch.device("cpu"))
    assert torch.equal(data.splits["train"][0], again.splits["train"][0])  # seeded

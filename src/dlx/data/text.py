"""A plain-text corpus for character-level language models (``data=text``).

The default corpus is H. G. Wells's *The Time Machine* (public domain), bundled with dlx as
``dlx/data/corpora/timemachine.txt``; ``data.path=FILE`` reads any UTF-8 text instead
(``data.lowercase=true`` folds case first).

Splits are by position: the text is cut into ``blocks`` equal contiguous blocks and a
permutation drawn from ``split_seed`` gives ``val_fraction`` of them to val, ``test_fraction``
to test and the rest, in their order, to train (disjoint: no character is in two splits).
The vocabulary is ``<unk>`` (index 0) then the sorted characters of the training text; a
character of val or test (or of a ``dlx sample`` prompt) unseen in training maps to ``<unk>``.

A sample is a window of ``seq_len`` characters x and the ``seq_len`` characters one step
ahead y, both int64 ids (truncated backpropagation through time at ``seq_len``: the model
starts every window from a zero state). The windows partition a split without overlap
(sequential partitioning); for training the partition starts at a random offset in
[0, seq_len), drawn afresh each epoch from the epoch's seed, and the windows come shuffled.
Val and test start at offset 0, in order. The ids stay on the training device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from dlx.data import DATASETS
from dlx.data.base import DataInfo, count_batches
from dlx.errors import UsageError
from dlx.registry import check

#: the vocabulary's entry for characters unseen in training
UNK = "<unk>"
#: the bundled corpus
TIME_MACHINE = Path(__file__).parent / "corpora" / "timemachine.txt"


@dataclass
class TextConfig:
    name: str = "text"
    path: str | None = None  # null: the bundled Time Machine
    lowercase: bool = False
    batch_size: int = field(default=64, metadata=check(ge=1))
    seq_len: int = field(default=100, metadata=check(ge=1))
    blocks: int = field(default=20, metadata=check(ge=3))
    # > 0: best.pt and the monitor follow val/* (0 would leave them nothing to follow)
    val_fraction: float = field(default=0.05, metadata=check(gt=0, lt=0.5))
    test_fraction: float = field(default=0.05, metadata=check(ge=0, lt=0.5))
    split_seed: int = field(default=0, metadata=check(ge=0))


def read_corpus(cfg: TextConfig) -> str:
    """The corpus text (case-folded with ``lowercase``)."""
    path = Path(cfg.path).expanduser() if cfg.path else TIME_MACHINE
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UsageError(f"data.path={cfg.path}: cannot read it ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(
            f"data.path={cfg.path}: not UTF-8 text (byte {raw[e.start]:#04x} at offset "
            f"{e.start}); data=text reads a plain-text corpus (convert it: iconv -t UTF-8)"
        ) from None
    if "\x00" in text:
        raise UsageError(f"data.path={cfg.path}: a binary file (NUL bytes); give a text file")
    return text.lower() if cfg.lowercase else text


def split_text(text: str, blocks: int, fractions: tuple[float, float], seed: int) -> list[str]:
    """train, val, test: contiguous blocks of ``text`` dealt out by a seeded permutation."""
    bounds = [len(text) * i // blocks for i in range(blocks + 1)]
    order = torch.randperm(blocks, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val, n_test = round(blocks * fractions[0]), round(blocks * fractions[1])
    parts = [order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]]
    return ["".join(text[bounds[b] : bounds[b + 1]] for b in sorted(part)) for part in parts]


def build_vocab(train: str) -> tuple[str, ...]:
    """``<unk>`` then the sorted characters of the training text."""
    return (UNK, *sorted(set(train)))


def encode(text: str, vocab: tuple[str, ...]) -> Tensor:
    """int64 ids of ``text``'s characters, ``<unk>`` (0) for those not in ``vocab``."""
    index = {c: i for i, c in enumerate(vocab)}
    return torch.tensor([index.get(c, 0) for c in text], dtype=torch.int64)


def decode(ids: list[int], vocab: tuple[str, ...]) -> str:
    return "".join(vocab[i] for i in ids)


class TextData:
    """A corpus split into id streams on the device, served as windows of ``seq_len``."""

    def __init__(
        self, info: DataInfo, ids: dict[str, Tensor], batch_size: int, device: torch.device
    ) -> None:
        self.info, self.batch_size, self.device = info, batch_size, device
        self.seq_len = info.seq_len
        self.ids = {split: t.to(device) for split, t in ids.items()}

    def windows(self, split: str) -> int:
        """Windows per epoch: the same for every training offset."""
        n, t = len(self.ids[split]), self.seq_len
        return max((n - t) // t if split == "train" else (n - 1) // t, 0)

    def __len__(self) -> int:
        return sum(self.windows(s) for s in self.ids)

    def num_batches(self, split: str, *, drop_last: bool = False) -> int:
        return count_batches(self.windows(split), self.batch_size, drop_last)

    def batches(
        self,
        split: str,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        start: int = 0,
        batch_size: int | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        ids, t, w = self.ids[split], self.seq_len, self.windows(split)
        bs = batch_size or self.batch_size
        g = torch.Generator().manual_seed(seed)
        offset = int(torch.randint(t, (1,), generator=g)) if shuffle else 0
        x = ids[offset : offset + w * t].view(w, t)
        y = ids[offset + 1 : offset + w * t + 1].view(w, t)
        order = torch.randperm(w, generator=g).to(self.device) if shuffle else None
        for i in range(start, count_batches(w, bs, drop_last)):
            idx = slice(i * bs, (i + 1) * bs) if order is None else order[i * bs : (i + 1) * bs]
            yield x[idx], y[idx]


@DATASETS.register("text", TextConfig, task="language_model")
def text(cfg: TextConfig, device: torch.device) -> TextData:
    """The corpus's train/val/test id streams and its character vocabulary."""
    fractions = {"val": cfg.val_fraction, "test": cfg.test_fraction}
    parts = split_text(read_corpus(cfg), cfg.blocks, tuple(fractions.values()), cfg.split_seed)
    texts = dict(zip(("train", "val", "test"), parts))
    for split, part in texts.items():  # at least one window (two for training)
        if fractions.get(split, 1.0) > 0 and len(part) <= cfg.seq_len * (
            2 if split == "train" else 1
        ):
            raise UsageError(
                f"data.seq_len={cfg.seq_len}: longer than the {split} text ({len(part)} "
                "characters); lower it, or give the corpus more text"
            )
    vocab = build_vocab(texts["train"])
    ids = {split: encode(part, vocab) for split, part in texts.items()}
    info = DataInfo(
        name="text",
        kind="text",
        task="language_model",
        num_classes=len(vocab),
        seq_len=cfg.seq_len,
        per_step=True,
        vocab=vocab,
    )
    data = TextData(info, ids, cfg.batch_size, device)
    data.info = replace(info, sizes={split: data.windows(split) for split in ids})
    return data

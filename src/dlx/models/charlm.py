"""A character-level language model (``model=charlm``): embedding (or one-hot) -> stacked
LSTM, GRU or Elman RNN (``cell``) -> dropout -> linear over the vocabulary, at every step.

Takes token ids (N, T) of ``data=text`` and returns next-character logits (N, T, V). Its task is
``language_model`` whatever the data says. The vocabulary travels with the weights as the
buffer ``vocab`` (the characters' code points; -1 for ``<unk>``): plain tensor data in every
checkpoint, so ``dlx sample`` needs no corpus to decode. ``step`` carries the recurrent state
from one call to the next (generation, one character at a time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.models import MODELS
from dlx.models.init import initialize
from dlx.models.layers import InitConfig
from dlx.models.lstm import CELLS
from dlx.registry import check

State = Tensor | tuple[Tensor, Tensor] | None


@dataclass
class CharLMConfig(InitConfig):
    name: str = "charlm"
    cell: str = field(default="lstm", metadata=check(choices=CELLS))
    embedding: int = field(default=64, metadata=check(ge=0))  # 0: one-hot inputs
    hidden_size: int = field(default=256, metadata=check(ge=1))
    num_layers: int = field(default=1, metadata=check(ge=1))
    dropout: float = field(default=0.0, metadata=check(ge=0, lt=1))  # between layers, on output


class OneHot(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        return F.one_hot(x, self.size).float()


def vocab_codes(vocab: tuple[str, ...]) -> Tensor:
    """The vocabulary as code points, -1 for the multi-character ``<unk>``."""
    return torch.tensor([ord(c) if len(c) == 1 else -1 for c in vocab], dtype=torch.int64)


def codes_vocab(codes: Tensor) -> tuple[str, ...]:
    """``vocab_codes`` undone."""
    from dlx.data.text import UNK

    return tuple(UNK if c < 0 else chr(c) for c in codes.tolist())


class CharLM(nn.Module):
    """ids (N, T) -> logits (N, T, V)."""

    def __init__(self, cfg: CharLMConfig, vocab: tuple[str, ...]) -> None:
        super().__init__()
        v = len(vocab)
        self.embed = nn.Embedding(v, cfg.embedding) if cfg.embedding else OneHot(v)
        self.rnn = CELLS[cfg.cell](
            cfg.embedding or v,
            cfg.hidden_size,
            cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size, v)
        self.register_buffer("vocab", vocab_codes(vocab))

    def step(self, x: Tensor, state: State = None) -> tuple[Tensor, State]:
        """Logits of ``x`` continuing from ``state``, and the state after it."""
        out, state = self.rnn(self.embed(x), state)
        return self.head(self.dropout(out)), state

    def forward(self, x: Tensor) -> Tensor:
        return self.step(x)[0]


@MODELS.register("charlm", CharLMConfig, task="language_model")
def charlm(cfg: CharLMConfig, info: DataInfo) -> nn.Module:
    """A character-level language model over ``info``'s vocabulary."""
    if info.kind != "text" or not info.vocab:
        raise UsageError(f"model=charlm needs text data (data=text); data={info.name} is not")
    return initialize(CharLM(cfg, info.vocab), cfg.init, cfg.init_std, "linear")

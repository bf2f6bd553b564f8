"""Character-level language modelling: data=text, model=charlm, val/ppl, dlx sample."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import read_summary, scalar_tags
from dlx.data import build_data
from dlx.data.text import TIME_MACHINE, UNK, decode, split_text
from dlx.engine.objective import build_objective, task_of
from dlx.errors import UsageError
from dlx.models import build_model

CPU = torch.device("cpu")
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.progress=false",
    "model.hidden_size=16",
    "model.embedding=8",
    "data.seq_len=16",
]


def test_the_bundled_corpus_is_the_time_machine():
    text = TIME_MACHINE.read_text()
    assert len(text) == 178_979 and text.startswith("The Time Machine, by H. G. Wells")


def test_splits_are_disjoint_contiguous_blocks_covering_the_text():
    text = "".join(chr(0x4E00 + i) for i in range(1000))  # every position its own character
    train, val, test = split_text(text, 20, (0.05, 0.1), seed=3)
    assert (len(train), len(val), len(test)) == (850, 50, 100)
    assert set(train) | set(val) | set(test) == set(text)
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert val in text  # one block: contiguous
    assert split_text(text, 20, (0.05, 0.1), seed=3) == [train, val, test]
    assert split_text(text, 20, (0.05, 0.1), seed=4)[1] != val


def test_vocab_from_train_and_unseen_characters_map_to_unk(tmp_path: Path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("".join(f"{'abcdefgh'[i % 8] * 9}{'#%'[i % 2]}" for i in range(20)))
    assert build_data({"name": "text", "path": str(corpus), "seq_len": 4, "lowercase": True}, CPU)
    node = {"name": "text", "path": str(corpus), "seq_len": 4, "batch_size": 2}
    node.update(val_fraction=0.25, test_fraction=0.25)
    data = build_data(node, CPU)
    info = data.info
    assert info.vocab[0] == UNK and list(info.vocab[1:]) == sorted(info.vocab[1:])
    train_text = decode(data.ids["train"].tolist(), info.vocab)
    assert set(info.vocab[1:]) == set(train_text)
    seen_elsewhere = torch.cat([data.ids["val"], data.ids["test"]])
    assert int(seen_elsewhere.max()) < len(info.vocab)
    x, y = next(data.batches("val"))
    assert x.dtype == torch.int64 and torch.equal(x[:, 1:], y[:, :-1])


def test_unseen_character_in_val_is_unk_for_a_chosen_seed(tmp_path: Path):
    corpus = tmp_path / "tiny.txt"
    blocks = ["abcdabcdab"] * 20
    order = torch.randperm(20, generator=torch.Generator().manual_seed(0)).tolist()
    blocks[order[0]] = "QQQQQQQQQQ"  # order[0] is val's block (val_fraction 0.05 of 20)
    corpus.write_text("".join(blocks))
    data = build_data({"name": "text", "path": str(corpus), "seq_len": 3}, CPU)
    assert "Q" not in data.info.vocab
    assert torch.equal(data.ids["val"], torch.zeros(10, dtype=torch.int64))
    model = build_model({"name": "charlm", "hidden_size": 8, "embedding": 4}, data.info)
    x, _ = next(data.batches("val"))
    assert model(x).shape == (*x.shape, len(data.info.vocab))


def test_training_windows_shift_by_epoch_and_cover_train_once():
    data = build_data({"name": "text", "seq_len": 50, "batch_size": 1000}, CPU)
    w = data.windows("train")
    a = torch.cat([x for x, _ in data.batches("train", shuffle=True, seed=1)])
    b = torch.cat([x for x, _ in data.batches("train", shuffle=True, seed=2)])
    again = torch.cat([x for x, _ in data.batches("train", shuffle=True, seed=1)])
    assert a.shape == b.shape == (w, 50) and torch.equal(a, again) and not torch.equal(a, b)
    assert data.num_batches("train") == math.ceil(w / 1000)


def test_perplexity_is_exp_of_the_loss_in_the_summary():
    data = build_data({"name": "text", "seq_len": 20}, CPU)
    model = build_model({"name": "charlm", "hidden_size": 16, "embedding": 8}, data.info)
    objective = build_objective(data.info, task_of(model, data.info))
    assert objective.monitor == "val/ppl" and "val/ppl" in objective.metric_names()
    x, y = next(data.batches("val"))
    with torch.no_grad():
        out = model(x)
    loss = float(objective.loss(out, y))
    metrics = objective.summarise("val", loss, objective.stats(out, y).tolist(), len(y))
    assert metrics["val/ppl"] == pytest.approx(math.exp(loss), rel=1e-12)
    assert metrics["val/ppl"] == pytest.approx(len(data.info.vocab), rel=0.2)  # untrained
    assert 0 <= metrics["val/acc"] <= 1


def test_charlm_needs_text():
    from dlx.data.base import DataInfo

    info = DataInfo(name="digits", kind="image", num_classes=10, image_size=8)
    with pytest.raises(UsageError, match=r"^model=charlm needs text data"):
        build_model({"name": "charlm"}, info)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> Path:
    """One tiny charlm run from the CLI, shared by the sampling tests."""
    from conftest import run_dlx

    cwd = tmp_path_factory.mktemp("charlm")
    r = run_dlx("train", "+experiment=charlm", *TINY, cwd=cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = (cwd / "outputs" / "runs").iterdir()
    return run


def test_charlm_trains_from_the_cli_monitoring_val_ppl(lm_run: Path):
    s = read_summary(lm_run)
    assert s["status"] == "completed" and s["monitor"] == "val/ppl" and s["mode"] == "min"
    tags = scalar_tags(lm_run)
    (_, loss), (_, ppl) = tags["val/loss"][-1], tags["val/ppl"][-1]
    assert ppl == pytest.approx(math.exp(loss), rel=1e-5)
    assert 1 < ppl < 100 and "test/ppl" in tags


def test_sampling_is_reproducible_with_a_seed(dlx, lm_run: Path):
    from dlx.commands.sample import sample_run

    args = ("sample", str(lm_run), "--prompt", "the time ", "--length", "40")
    one = dlx(*args, "--seed", "3", "--temperature", "0.8")
    two = dlx(*args, "--seed", "3", "--temperature", "0.8")
    assert one.returncode == 0, one.stderr
    text = one.stdout.rstrip("\n")
    assert text.startswith("the time ") and len(text) == len("the time ") + 40
    assert one.stdout == two.stdout and UNK not in text
    assert sample_run(lm_run, "the time ", 40, 0.8, 3) == text  # the command's own text
    assert sample_run(lm_run, "the time ", 40, 0.8, 4) != text
    assert sample_run(lm_run, "the time ", 40, 0.8, None) != sample_run(
        lm_run, "the time ", 40, 0.8, None
    )  # no seed: a fresh draw (40 characters alike by chance: never in practice)


def test_sample_bad_arguments_exit_2_with_one_line(dlx, lm_run: Path, tmp_path: Path, capsys):
    from dlx.cli import main

    r = dlx("train", "model=lenet", *TINY[:4], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (image_run,) = (tmp_path / "outputs" / "runs").iterdir()
    for args, needle in [
        ((str(lm_run), "--temperature", "0"), "--temperature=0.0: must be > 0"),
        ((str(lm_run), "--temperature", "-1"), "--temperature=-1.0: must be > 0"),
        ((str(tmp_path),), "not a dlx run dir"),
        ((), "required: run_dir"),
        ((str(image_run),), "not a language-model run (model=lenet, data=digits)"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(["sample", *args])
        err = capsys.readouterr().err
        assert exit_.value.code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_summary_feeds_token_ids():
    from dlx.commands.summary import model_summary

    data = build_data({"name": "text", "seq_len": 10}, CPU)
    model = build_model({"name": "charlm", "hidden_size": 16, "embedding": 8}, data.info)
    s = model_summary(model, data.info)
    assert s.input_shape == (1, 10)
    assert sum(p.numel() for p in model.parameters()) == 71 * 8 + 4 * 16 * (8 + 16 + 2) + 17 * 71


def test_windows_longer_than_val_are_a_usage_error():
    with pytest.raises(UsageError, match=r"^data\.seq_len=9000: longer than the val text"):
        build_data({"name": "text", "seq_len": 9000}, CPU)
    with pytest.raises(UsageError, match=r"^data\.path=/no/such\.txt: cannot read it"):
        build_data({"name": "text", "path": "/no/such.txt"}, CPU)

"""Weight averaging's maths: EMA on a scripted sequence of weights, SWA's equal-weight average
and its BN statistics recomputed over the training batches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlx.engine.averaging import EMA, SWA, has_batchnorm, recompute_bn


def test_ema_follows_its_formula_on_a_scripted_sequence():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.0)
    ema = EMA(model, decay=0.75)
    script = [4.0, 8.0, -4.0, 2.0]
    expected = 0.0
    for w in script:
        with torch.no_grad():  # in place, as an optimizer step changes them
            for p in model.parameters():
                p.fill_(w)
            model[1].running_mean.fill_(2 * w)
            model[1].num_batches_tracked.fill_(int(w) + 10)
        ema.update()
        expected = 0.75 * expected + 0.25 * w
        for p in ema.module.parameters():
            assert torch.allclose(p, torch.full_like(p, expected))
        assert torch.allclose(ema.module[1].running_mean, torch.full((2,), 2 * expected))
        assert ema.module[1].num_batches_tracked.item() == int(w) + 10  # copied, not averaged
    # 0 → 1 → 2.75 → 1.0625 → 1.296875
    assert expected == pytest.approx(1.296875)
    assert ema.updates == len(script)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_state_round_trips_into_a_fresh_copy():
    model = nn.Linear(3, 1)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update()
    again = EMA(nn.Linear(3, 1), decay=0.5)
    again.load_state_dict(ema.state_dict())
    assert torch.equal(again.module.weight, ema.module.weight) and again.updates == 1


def test_swa_is_the_equal_weight_average():
    model = nn.Linear(1, 1, bias=False)
    swa = SWA(model)
    for w in (1.0, 2.0, 6.0):
        with torch.no_grad():
            model.weight.fill_(w)
        swa.update(model)
    assert swa.module.weight.item() == pytest.approx(3.0) and swa.n_averaged == 3


def test_swa_bn_statistics_are_recomputed_over_the_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, momentum=0.1))
    swa = SWA(model)
    for shift in (0.0, 1.0):  # two different weight sets averaged
        with torch.no_grad():
            model[0].weight.add_(shift)
        swa.update(model)
    swa.module[1].running_mean.fill_(123.0)  # stale statistics that must go
    swa.module[1].running_var.fill_(456.0)
    batches = [torch.randn(16, 4) + i for i in range(5)]
    assert has_batchnorm(swa.module) and not has_batchnorm(nn.Linear(1, 1))
    swa.module.eval()
    recompute_bn(swa.module, batches)
    with torch.no_grad():
        feats = [swa.module[0](x) for x in batches]  # what enters BN, with averaged weights
    # momentum None during the recompute: the cumulative mean of the batch statistics
    mean = torch.stack([f.mean(0) for f in feats]).mean(0)
    var = torch.stack([f.var(0, unbiased=True) for f in feats]).mean(0)
    bn = swa.module[1]
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, atol=1e-4)
    assert bn.momentum == 0.1 and not swa.module.training  # left as it was


@pytest.mark.parametrize(
    ("node", "key"),
    [
        ({"ema": {"decay": 1.0}}, "regularization.ema.decay"),
        ({"ema": {"decay": 0.0}}, "regularization.ema.decay"),
        ({"swa": {"swa_start": 0, "swa_lr": None}}, "regularization.swa.swa_start"),
        ({"swa": {"swa_start": None, "swa_lr": -1.0}}, "regularization.swa.swa_lr"),
    ],
)
def test_bad_averaging_keys_are_usage_errors_naming_the_key(node, key):
    from dlx.errors import UsageError
    from dlx.regularization import Regularization

    with pytest.raises(UsageError, match=key.replace(".", r"\.")):
        Regularization(node)


def test_swa_start_defaults_to_the_last_quarter_and_must_be_reached():
    from dlx.callbacks.averaging import swa_start
    from dlx.errors import UsageError
    from dlx.regularization import SWAConfig

    assert [swa_start(SWAConfig(), n) for n in (1, 2, 4, 20)] == [1, 2, 4, 16]
    assert swa_start(SWAConfig(swa_start=3), 5) == 3
    with pytest.raises(UsageError, match=r"regularization\.swa\.swa_start=6: after the last"):
        swa_start(SWAConfig(swa_start=6), 5)


def test_top_k_ranks_and_names():
    from dlx.callbacks.top_k import TopK, file_name

    assert file_name(3, "val/acc", 0.91234) == "epoch=3-val_acc=0.9123.pt"
    top = TopK(2, "val/loss", "min")
    top.kept = [{"epoch": 1, "value": 0.5, "file": "a"}, {"epoch": 2, "value": 0.7, "file": "b"}]
    assert top.ranks(0.6) and not top.ranks(0.7) and not top.ranks(0.9)
    again = TopK(2, "val/loss", "min")
    again.load_state_dict(top.state_dict())
    assert again.kept == top.kept

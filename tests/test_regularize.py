"""Regularization: each option's formula, pinned; every option from the CLI; the acceptance run."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from conftest import QUICK, only_run_dir, read_summary, scalar_tags
from dlx.engine.objective import Objective
from dlx.engine.optstats import clip_and_measure, read, total_norm
from dlx.errors import UsageError
from dlx.optim import build_optimizer
from dlx.regularization import (
    ClipGradConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    Regularization,
    apply_maxnorm,
    clip_gradients,
    l2_penalty,
)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)
    )


def regs(model: nn.Module, **options) -> Regularization:
    r = Regularization(OmegaConf.create(options))
    r.attach(model)
    return r


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.ndim > 1]


# --- penalties ----------------------------------------------------------------------------------
def test_l1_gradient_is_alpha_sign_w_on_weights_only():
    model = net()
    r = regs(model, l1={"alpha": 0.3})
    r.penalties()["loss/l1"].backward()
    for p in model.parameters():
        want = 0.3 * p.detach().sign() if p.ndim > 1 else torch.zeros_like(p)
        grad = p.grad if p.grad is not None else torch.zeros_like(p)
        torch.testing.assert_close(grad, want)


def test_penalty_values_follow_their_formulas_and_params_all_adds_biases():
    model = net()
    w = weights(model)
    every = list(model.parameters())
    p = regs(model, l1={"alpha": 0.3}, l2={"alpha": 0.2}).penalties()
    torch.testing.assert_close(p["loss/l1"], 0.3 * sum(t.abs().sum() for t in w))
    torch.testing.assert_close(p["loss/l2"], 0.1 * sum(t.square().sum() for t in w))
    p = regs(model, l2={"alpha": 0.2, "params": "all"}).penalties()
    torch.testing.assert_close(p["loss/l2"], 0.1 * sum(t.square().sum() for t in every))


def trajectory(model: nn.Module, opt, penalty=None, steps: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 1, 6, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        if penalty is not None:
            loss = loss + sum(penalty().values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("params,decay_norm_and_bias", [("all", True), ("weights", False)])
def test_sgd_with_l2_penalty_follows_sgd_with_weight_decay(params, decay_norm_and_bias):
    """α/2·‖w‖² has gradient α·w: SGD's weight_decay=α step, on the same parameters."""
    a = net()
    opt = build_optimizer(OmegaConf.create({"name": "momentum", "lr": 0.1}), a)
    with_penalty = trajectory(a, opt, regs(a, l2={"alpha": 0.05, "params": params}).penalties)
    b = net()
    node = {"name": "momentum", "lr": 0.1, "weight_decay": 0.05}
    node["decay_norm_and_bias"] = decay_norm_and_bias
    with_decay = trajectory(b, build_optimizer(OmegaConf.create(node), b))
    torch.testing.assert_close(with_penalty, with_decay, rtol=1e-5, atol=1e-6)
    plain = net()
    opt = build_optimizer(OmegaConf.create({"name": "momentum", "lr": 0.1}), plain)
    assert not torch.allclose(trajectory(plain, opt), with_decay, atol=1e-4)


def test_l2_penalty_gradient_at_zero_is_zero():
    w = torch.zeros(3, 2, requires_grad=True)
    l2_penalty([w], 1.0).backward()
    assert torch.equal(w.grad, torch.zeros(3, 2))


# --- constraints and clipping ---------------------------------------------------------------
def test_maxnorm_projects_each_units_incoming_weights_into_the_ball():
    model = net()
    conv, fc = model[0], model[4]
    with torch.no_grad():
        conv.weight.mul_(10)
        fc.weight[0].mul_(100)  # far outside
        fc.weight[1].mul_(1e-3)  # well inside: must not move
        fc.bias.mul_(100)
    inside = fc.weight[1].detach().clone()
    bias = fc.bias.detach().clone()
    r = regs(model, maxnorm={"c": 0.5})
    r.after_step()
    assert conv.weight.flatten(1).norm(dim=1).max() <= 0.5 + 1e-6  # per output channel
    assert conv.weight.flatten(1).norm(dim=1).min() >= 0.5 - 1e-4  # were all outside
    assert fc.weight.norm(dim=1).max() <= 0.5 + 1e-6
    torch.testing.assert_close(fc.weight[1].detach(), inside)
    torch.testing.assert_close(fc.bias.detach(), bias)  # weights only by default


def test_apply_maxnorm_keeps_direction():
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    apply_maxnorm([w], 1.0)
    torch.testing.assert_close(w, torch.tensor([[0.6, 0.8], [0.3, 0.4]]), atol=1e-6, rtol=0)


def with_grads(scale: float) -> list[nn.Parameter]:
    torch.manual_seed(1)
    params = [nn.Parameter(torch.randn(5, 4)), nn.Parameter(torch.randn(7))]
    for p in params:
        p.grad = torch.randn_like(p) * scale
    return params


def test_norm_clipping_bounds_the_global_norm_and_reports_before_and_after():
    params = with_grads(10.0)
    before = total_norm([p.grad for p in params])
    stats = clip_and_measure(params, ClipGradConfig(mode="norm", max_norm=1.0), measure=True)
    after = total_norm([p.grad for p in params])
    assert before > 1 and after <= 1.0 + 1e-5
    torch.testing.assert_close(stats["opt/grad_norm"], before)
    torch.testing.assert_close(stats["opt/grad_norm_clipped"], after)
    small = with_grads(1e-3)
    g0 = [p.grad.clone() for p in small]
    clip_gradients(small, ClipGradConfig(mode="norm", max_norm=1.0))
    for p, g in zip(small, g0, strict=True):  # under the bound: untouched
        torch.testing.assert_close(p.grad, g)


def test_value_clipping_bounds_every_entry():
    params = with_grads(10.0)
    clip_gradients(params, ClipGradConfig(mode="value", value=0.5))
    for p in params:
        assert p.grad.abs().max() <= 0.5
    assert any((p.grad.abs() == 0.5).any() for p in params)


def test_without_clipping_norms_are_measured_only_on_log_steps():
    params = with_grads(1.0)
    assert clip_and_measure(params, None, measure=False) == {}
    assert set(clip_and_measure(params, None, measure=True)) == {"opt/grad_norm"}


def test_read_turns_tensors_and_numbers_into_floats():
    got = read({"a": torch.tensor(1.5), "b": 2, "c": torch.tensor([3.0])})
    assert got == {"a": 1.5, "b": 2.0, "c": 3.0}


# --- early stopping -------------------------------------------------------------------------
def stop_epoch(values: list[float], **cfg) -> int | None:
    """The 1-based epoch after which early stopping ends the run, or None (a loss: ``auto``
    mode minimises it)."""
    es = EarlyStopping(EarlyStoppingConfig(monitor="val/loss", **cfg))
    for epoch, v in enumerate(values, 1):
        if es.step({"val/loss": v}):
            return epoch
    return None


def test_early_stopping_min_mode_counts_epochs_without_improvement():
    assert stop_epoch([1.0, 1.0, 1.0, 1.0], patience=2) == 3  # the acceptance case (lr=0)
    assert stop_epoch([1.0, 0.9, 0.95, 0.8, 0.85, 0.9], patience=2) == 6
    assert stop_epoch([3, 2, 1, 0.5], patience=1) is None
    assert stop_epoch([1.0, 2.0], patience=1) == 2


def test_early_stopping_mode_follows_the_monitored_metric():
    assert EarlyStopping(EarlyStoppingConfig(monitor="val/loss")).cfg.mode == "min"
    assert EarlyStopping(EarlyStoppingConfig(monitor="val/acc")).cfg.mode == "max"
    assert EarlyStopping(EarlyStoppingConfig(monitor="val/acc", mode="min")).cfg.mode == "min"


def test_early_stopping_max_mode():
    assert stop_epoch([0.5, 0.6, 0.6, 0.55], mode="max", patience=2) == 4
    assert stop_epoch([0.5, 0.6, 0.7, 0.8], mode="max", patience=1) is None


def test_early_stopping_min_delta_ignores_small_improvements():
    values = [1.0, 0.95, 0.91, 0.5]
    assert stop_epoch(values, patience=2) is None
    assert stop_epoch(values, patience=2, min_delta=0.1) == 3
    assert stop_epoch([0.5, 0.55, 0.58], mode="max", patience=2, min_delta=0.1) == 3


def test_early_stopping_state_round_trip_continues_counting():
    es = EarlyStopping(EarlyStoppingConfig(monitor="m", patience=3))
    for v in (1.0, 1.0):
        es.step({"m": v})
    again = EarlyStopping(EarlyStoppingConfig(monitor="m", patience=3))
    again.load_state_dict(json.loads(json.dumps(es.state_dict())))
    assert (again.best, again.wait) == (1.0, 1)
    assert not again.step({"m": 1.0})  # 2nd epoch without improvement
    assert again.step({"m": 1.0})  # 3rd: patience reached


# --- label smoothing ------------------------------------------------------------------------
def test_label_smoothing_loss_is_the_formula():
    torch.manual_seed(0)
    logits, y = torch.randn(6, 5), torch.randint(0, 5, (6,))
    s = 0.2
    logp = logits.log_softmax(-1)
    nll = -logp.gather(1, y[:, None]).squeeze(1)
    want = ((1 - s) * nll + s * (-logp.mean(-1))).mean()  # targets (1-s)·onehot + s/K
    info = SimpleNamespace(task="classification")
    torch.testing.assert_close(Objective(info, s).loss(logits, y), want)
    plain = Objective(info).loss(logits, y)
    torch.testing.assert_close(plain, nll.mean())
    assert not torch.isclose(plain, want)


# --- dropout ------------------------------------------------------------------------------------
def test_dropout_sets_the_models_dropout_probability():
    from dlx.models import build_model

    r = Regularization(OmegaConf.create({"dropout": {"p": 0.3}}))
    node = r.model_config(OmegaConf.create({"name": "lenet", "arch": "lenet5", "dropout": 0.0}))
    assert node.dropout == 0.3
    from dlx.data.base import DataInfo

    info = DataInfo(name="digits", kind="image", num_classes=10, channels=1, image_size=32)
    drops = [m for m in build_model(node, info).modules() if isinstance(m, nn.Dropout)]
    assert drops and all(m.p == 0.3 for m in drops)
    with pytest.raises(UsageError, match=r"regularization\.dropout: model=plain has no dropout"):
        r.model_config(OmegaConf.create({"name": "plain"}))
    none = Regularization(OmegaConf.create({}))
    assert none.model_config(OmegaConf.create({"name": "plain"})).name == "plain"


# --- schema ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options,key",
    [
        ({"clip_grad": {"mode": "foo"}}, "regularization.clip_grad.mode"),
        ({"l2": {"params": "biases"}}, "regularization.l2.params"),
        ({"l1": {"alpha": -1}}, "regularization.l1.alpha"),
        ({"maxnorm": {"c": 0}}, "regularization.maxnorm.c"),
        ({"dropout": {"p": 1.0}}, "regularization.dropout.p"),
        ({"early_stopping": {"patience": 0}}, "regularization.early_stopping.patience"),
        ({"label_smoothing": {"smoothing": 1.0}}, "regularization.label_smoothing.smoothing"),
    ],
)
def test_bad_regularization_values_are_usage_errors_naming_the_key(options, key):
    with pytest.raises(UsageError, match=key.replace(".", r"\.")):
        Regularization(OmegaConf.create(options))


# --- from the command line --------------------------------------------------------------------
ALL = "regularization=[l1,l2,maxnorm,dropout,clip_grad,label_smoothing,early_stopping]"


def test_every_regularizer_at_once_from_the_cli_with_both_clip_modes_and_histograms(dlx):
    r = dlx(
        "train",
        "-m",
        *QUICK,
        "trainer.progress=false",
        "trainer.histogram_every_n_epochs=1",
        ALL,
        "regularization.maxnorm.c=0.5",
        "regularization.clip_grad.max_norm=0.01",
        "regularization.clip_grad.value=1e-4",
        "regularization.early_stopping.patience=5",
        "regularization.dropout.p=0.3",
        "regularization.clip_grad.mode=norm,value",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (sweep,) = (dlx.cwd / "outputs" / "sweeps").iterdir()
    trials = {}
    for d in sweep.iterdir():
        if (d / ".hydra").is_dir():
            cfg = yaml.safe_load((d / ".hydra" / "config.yaml").read_text())
            trials[cfg["regularization"]["clip_grad"]["mode"]] = (d, cfg)
    assert set(trials) == {"norm", "value"}
    for mode, (d, cfg) in trials.items():
        assert read_summary(d)["status"] == "completed"
        assert cfg["regularization"]["dropout"]["p"] == 0.3
        tags = scalar_tags(d)
        for tag in ("loss/l1", "loss/l2", "opt/grad_norm", "opt/grad_norm_clipped"):
            assert len(tags[tag]) == 6, tag
        l1 = [v for _, v in tags["loss/l1"]]
        assert all(v > 0 for v in l1)
        before = [v for _, v in tags["opt/grad_norm"]]
        after = [v for _, v in tags["opt/grad_norm_clipped"]]
        assert all(a < b for a, b in zip(after, before, strict=True))
        if mode == "norm":
            assert max(after) <= 0.01 * (1 + 1e-4)
        # maxnorm held after every step: the saved weights' rows are inside the ball
        state = torch.load(d / "checkpoints" / "last.pt", weights_only=False)["model"]
        for name, w in state.items():
            if name.endswith("weight") and w.ndim > 1:
                assert w.flatten(1).norm(dim=1).max() <= 0.5 + 1e-5, name
        acc = EventAccumulator(str(d), size_guidance={"histograms": 0})
        acc.Reload()
        hist = acc.Tags()["histograms"]
        names = [n for n, w in state.items() if w.ndim > 1]
        assert all(f"weights/{n}" in hist and f"grads/{n}" in hist for n in names), hist
        assert len(acc.Histograms(f"weights/{names[0]}")) == 2  # every epoch, 2 epochs


def test_acceptance_early_stopping_with_lr_zero_stops_after_epoch_3(dlx):
    r = dlx(
        "train",
        "regularization=[early_stopping]",
        "regularization.early_stopping.patience=2",
        "optim.lr=0",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=2",
        "trainer.log_every_n_steps=1",
        "trainer.progress=false",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    run = only_run_dir(dlx.cwd)
    s = read_summary(run)
    assert s["status"] == "stopped_early" and s["epochs"] == 3 and s["best_epoch"] == 1
    tags = scalar_tags(run)
    assert "opt/grad_norm_clipped" not in tags and "loss/l2" not in tags
    assert not any(t.startswith("weights/") for t in tags)  # histograms off by default
    val = [v for _, v in tags["val/loss"]]
    assert len(val) == 3 and len(set(val)) == 1  # lr=0: nothing moves
    assert all(math.isfinite(v) and v > 0 for _, v in tags["opt/grad_norm"])


@pytest.mark.parametrize(
    "args,key",
    [
        (["optim.betas=[0.9,1.5]"], "optim.betas"),
        (["regularization=[clip_grad]", "regularization.clip_grad.mode=foo"], "clip_grad.mode"),
        (["sched=warmup_cosine", "sched.warmup_unit=hours"], "sched.warmup_unit"),
    ],
)
def test_bad_values_exit_2_with_one_line_naming_the_key(dlx, args, key):
    r = dlx("train", *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], r.stderr
    assert "Traceback" not in r.stderr

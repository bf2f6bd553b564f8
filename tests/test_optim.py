"""Optimizers and schedules: the maths each option promises, and every option from the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from importlib import resources
from itertools import pairwise
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from conftest import QUICK, scalar_tags
from dlx.errors import UsageError
from dlx.optim import OPTIMIZERS, build_optimizer
from dlx.regularization import REGULARIZERS, EarlyStopping, EarlyStoppingConfig
from dlx.sched import SCHEDULES, build_schedule, warmup_cosine_factor


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def optim(name: str, model: nn.Module, **kw) -> torch.optim.Optimizer:
    return build_optimizer(OmegaConf.create({"name": name, **kw}), model)


def train(opt_name: str, steps: int = 5, penalty=None, **kw) -> nn.Module:
    """A few full-batch steps on fixed data; ``penalty(model)`` is added to the loss."""
    model = net()
    opt = optim(opt_name, model, **kw)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        if penalty is not None:
            loss = loss + penalty(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# --- the config files are the schemas' defaults -------------------------------------------------
def conf(group: str, option: str) -> dict:
    return yaml.safe_load((resources.files("dlx.conf") / group / f"{option}.yaml").read_text())


def defaults(schema: type) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(schema())))


@pytest.mark.parametrize("group,registry", [("optim", OPTIMIZERS), ("sched", SCHEDULES)])
def test_every_option_has_a_yaml_equal_to_its_schema_defaults(group, registry):
    shipped = {p.name[:-5] for p in (resources.files("dlx.conf") / group).iterdir()}
    assert shipped == set(registry.names())
    for name in registry.names():
        assert conf(group, name) == defaults(registry.get(name).schema), name


def test_every_regularizer_yaml_nests_its_schema_defaults_under_its_name():
    for name in REGULARIZERS.names():
        assert conf("regularization", name) == {name: defaults(REGULARIZERS.get(name).schema)}


# --- optimizers ---------------------------------------------------------------------------------
def test_every_optimizer_builds_with_its_torch_class_and_takes_a_step():
    expected = {
        "sgd": torch.optim.SGD,
        "momentum": torch.optim.SGD,
        "nesterov": torch.optim.SGD,
        "adagrad": torch.optim.Adagrad,
        "adadelta": torch.optim.Adadelta,
        "rmsprop": torch.optim.RMSprop,
        "rmsprop_momentum": torch.optim.RMSprop,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "nadam": torch.optim.NAdam,
        "radam": torch.optim.RAdam,
    }
    assert set(expected) == set(OPTIMIZERS.names())
    before = flat(net())
    for name, cls in expected.items():
        model = net()
        assert type(optim(name, model)) is cls
        assert not torch.equal(flat(train(name, steps=2)), before), name


def test_optimizer_knobs_reach_torch():
    model = net()
    d = optim("rmsprop_momentum", model, centered=True, alpha=0.9).defaults
    assert d["centered"] and d["momentum"] == 0.9 and d["alpha"] == 0.9
    d = optim("nesterov", model).defaults
    assert d["nesterov"] and d["momentum"] == 0.9 and d["dampening"] == 0
    d = optim("adam", model, betas=[0.8, 0.99], eps=1e-6, amsgrad=True).defaults
    assert d["betas"] == (0.8, 0.99) and d["eps"] == 1e-6 and d["amsgrad"]
    assert optim("adamw", model).defaults["weight_decay"] == 0.01
    assert optim("sgd", model, lr=0.0).defaults["lr"] == 0.0  # lr=0 is allowed


def test_sgd_is_w_minus_lr_g():
    model = net()
    w0 = [p.detach().clone() for p in model.parameters()]
    opt = optim("sgd", model, lr=0.1)
    model(torch.randn(8, 4)).square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, w, g in zip(model.parameters(), w0, grads, strict=True):
        torch.testing.assert_close(p.detach(), w - 0.1 * g)


def test_nesterov_differs_from_plain_momentum():
    a = flat(train("momentum", momentum=0.9, lr=0.1))
    b = flat(train("nesterov", momentum=0.9, lr=0.1))
    assert not torch.allclose(a, b, atol=1e-5)


def test_adam_with_l2_penalty_differs_from_adamw():
    """Adam rescales the penalty's gradient per coordinate; AdamW's decay is not rescaled."""

    def l2(model: nn.Module) -> torch.Tensor:
        return 0.5 * 0.1 * sum(p.square().sum() for p in model.parameters())

    coupled = flat(train("adam", lr=0.01, penalty=l2))
    decoupled = flat(train("adamw", lr=0.01, weight_decay=0.1))
    builtin = flat(train("adam", lr=0.01, weight_decay=0.1))
    assert not torch.allclose(coupled, decoupled, atol=1e-4)
    torch.testing.assert_close(coupled, builtin)  # Adam's weight_decay is the l2 penalty


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_decay_norm_and_bias_false_puts_biases_and_norm_scales_in_a_zero_decay_group(name):
    model = net()
    opt = optim(name, model, weight_decay=0.1, decay_norm_and_bias=False)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[3].weight)}
    bn = model[1]
    expected = {id(model[0].bias), id(bn.weight), id(bn.bias), id(model[3].bias)}
    assert {id(p) for p in no_decay["params"]} == expected
    # and with it on (the default), one group decays everything
    assert len(optim(name, model, weight_decay=0.1).param_groups) == 1


def test_decay_norm_and_bias_false_leaves_biases_untouched_by_decay():
    model = net()
    opt = optim("sgd", model, lr=0.1, weight_decay=0.5, decay_norm_and_bias=False)
    bias0, w0 = model[0].bias.detach().clone(), model[0].weight.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # only decay moves anything
    opt.step()
    torch.testing.assert_close(model[0].bias.detach(), bias0)
    torch.testing.assert_close(model[0].weight.detach(), w0 * (1 - 0.1 * 0.5))


@pytest.mark.parametrize(
    "name,kw,key",
    [
        ("sgd", {"lr": -0.1}, "optim.lr"),
        ("adam", {"betas": [0.9, 1.5]}, "optim.betas"),
        ("adam", {"betas": [0.9]}, "optim.betas"),
        ("adam", {"eps": 0}, "optim.eps"),
        ("momentum", {"momentum": 1.0}, "optim.momentum"),
        ("nesterov", {"momentum": 0.0}, "optim.momentum"),
        ("nesterov", {"dampening": 0.1}, "optim.dampening"),
        ("nadam", {"amsgrad": True}, "optim.amsgrad"),
        ("sgd", {"weight_decay": -1}, "optim.weight_decay"),
    ],
)
def test_bad_optimizer_values_are_usage_errors_naming_the_key(name, kw, key):
    with pytest.raises(UsageError, match=key.replace(".", r"\.")):
        optim(name, net(), **kw)


# --- schedules ----------------------------------------------------------------------------------
def sched(name: str, steps_per_epoch: int = 4, epochs: int = 3, lr: float = 1.0, **kw):
    model = net()
    opt = optim("sgd", model, lr=lr, momentum=0.9)
    s = build_schedule(OmegaConf.create({"name": name, **kw}), opt, steps_per_epoch, epochs)
    return opt, s


def lrs(opt, s, steps_per_epoch: int, epochs: int, metrics=None) -> list[float]:
    """The lr each optimizer step uses, driving the schedule as the loop does."""
    out = []
    for e in range(epochs):
        for _ in range(steps_per_epoch):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            s.step_batch()
        s.step_epoch(None if metrics is None else metrics[e])
    return out


def test_constant_keeps_the_lr():
    opt, s = sched("constant", lr=0.3)
    assert lrs(opt, s, 4, 3) == [0.3] * 12


def test_step_multistep_exponential_change_the_lr_once_per_epoch():
    opt, s = sched("step", step_size=2, gamma=0.5)
    assert lrs(opt, s, 2, 5) == pytest.approx([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25])
    opt, s = sched("multistep", milestones=[1, 3], gamma=0.1)
    assert lrs(opt, s, 1, 4) == pytest.approx([1, 0.1, 0.1, 0.01])
    opt, s = sched("exponential", gamma=0.5)
    assert lrs(opt, s, 2, 3) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_cosine_anneals_per_step_over_the_whole_run():
    opt, s = sched("cosine", min_lr=0.1)
    got = lrs(opt, s, 4, 3)
    want = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t / 12)) for t in range(12)]
    assert got == pytest.approx(want)


@pytest.mark.parametrize("unit,warmup,warm_steps", [("steps", 3, 3), ("epochs", 1, 4)])
def test_warmup_cosine_ramps_linearly_then_anneals(unit, warmup, warm_steps):
    opt, s = sched("warmup_cosine", warmup=warmup, warmup_unit=unit, min_lr=0.0)
    got = lrs(opt, s, 4, 3)
    ramp = [(i + 1) / warm_steps for i in range(warm_steps)]
    rest = 12 - warm_steps
    anneal = [0.5 * (1 + math.cos(math.pi * t / rest)) for t in range(rest)]
    assert got == pytest.approx(ramp + anneal)


def test_warmup_cosine_factor_reaches_the_floor_at_the_end():
    assert warmup_cosine_factor(10, 2, 10, 0.25) == pytest.approx(0.25)
    assert warmup_cosine_factor(0, 0, 10, 0.0) == pytest.approx(1.0)


def test_onecycle_rises_to_lr_then_falls_per_step():
    opt, s = sched("onecycle", steps_per_epoch=5, epochs=2, lr=1.0, pct_start=0.3, div_factor=10)
    got = lrs(opt, s, 5, 2)
    peak = got.index(max(got))
    assert got[0] == pytest.approx(0.1) and max(got) == pytest.approx(1.0)
    assert peak == 2  # torch ends the rise at step pct_start * total - 1
    assert all(a < b for a, b in pairwise(got[: peak + 1]))
    assert all(a > b for a, b in pairwise(got[peak:]))
    assert got[-1] < 1e-3


def test_onecycle_works_with_optimizers_without_momentum_and_leaves_plain_sgd_plain():
    for name in ("adagrad", "adadelta", "sgd"):
        opt = optim(name, net(), lr=0.1)
        build_schedule(OmegaConf.create({"name": "onecycle"}), opt, 2, 2)
        assert opt.param_groups[0].get("momentum", 0) == 0, name
    opt = optim("adam", net(), lr=0.1)
    build_schedule(OmegaConf.create({"name": "onecycle"}), opt, 2, 2)
    assert opt.param_groups[0]["betas"][0] == pytest.approx(0.95)  # cycled beta1 starts at max


def test_plateau_cuts_the_lr_when_the_monitored_metric_stalls():
    model = net()
    opt = optim("sgd", model, lr=1.0)
    node = OmegaConf.create({"name": "plateau", "factor": 0.5, "patience": 2, "threshold": 0})
    s = build_schedule(node, opt, 1, 6, mode="max")
    got = lrs(opt, s, 1, 6, metrics=[0.5, 0.6, 0.6, 0.6, 0.7, 0.7])
    # epochs 3 and 4 are 2 in a row without improvement (= patience): cut after epoch 4
    assert got == pytest.approx([1, 1, 1, 1, 0.5, 0.5])


def test_plateau_and_early_stopping_count_patience_alike():
    """patience=N: both act at the end of the N-th epoch in a row without improvement."""
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95]  # val/loss: epochs 3.. do not improve
    for patience in (1, 2, 3):
        opt = optim("sgd", net(), lr=1.0)
        node = {"name": "plateau", "factor": 0.5, "patience": patience, "threshold": 0}
        s = build_schedule(OmegaConf.create(node), opt, 1, 6, mode="min")
        got = lrs(opt, s, 1, 6, metrics=metrics)
        cut = got.index(0.5)  # the first epoch that runs at the cut lr
        es = EarlyStopping(EarlyStoppingConfig(monitor="val/loss", patience=patience))
        stop = next(e for e, m in enumerate(metrics, 1) if es.step({"val/loss": m}))
        assert cut == stop == 2 + patience, (patience, got)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("step", {"step_size": 2, "gamma": 0.5}),
        ("multistep", {"milestones": [2, 4]}),
        ("exponential", {"gamma": 0.7}),
        ("cosine", {"min_lr": 0.01}),
        ("warmup_cosine", {"warmup": 1, "warmup_unit": "epochs"}),
        ("warmup_cosine", {"warmup": 5, "warmup_unit": "steps"}),
        ("onecycle", {}),
        ("plateau", {"patience": 1, "factor": 0.5}),
    ],
)
def test_schedule_continues_the_same_lr_sequence_after_a_state_dict_round_trip(name, kw):
    """As a resume does: rebuild optimizer and schedule, load both states, carry on."""
    spe, epochs, cut = 3, 6, 3
    metrics = [1.0, 0.9, 0.9, 0.9, 0.8, 0.8]
    opt, s = sched(name, spe, epochs, **kw)
    whole = lrs(opt, s, spe, epochs, metrics)

    opt, s = sched(name, spe, epochs, **kw)
    first = lrs(opt, s, spe, cut, metrics[:cut])
    saved = {"opt": opt.state_dict(), "sched": s.state_dict()}
    saved = torch.load(_roundtrip(saved), weights_only=False)
    opt2, s2 = sched(name, spe, epochs, **kw)
    opt2.load_state_dict(saved["opt"])
    s2.load_state_dict(saved["sched"])
    rest = lrs(opt2, s2, spe, epochs - cut, metrics[cut:])
    assert first + rest == pytest.approx(whole)
    assert len(set(whole)) > 1  # the schedule does move the lr


def _roundtrip(obj) -> object:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    "name,kw,key",
    [
        ("warmup_cosine", {"warmup_unit": "hours"}, "sched.warmup_unit"),
        ("step", {"gamma": 0}, "sched.gamma"),
        ("onecycle", {"base_momentum": 0.99}, "sched.base_momentum"),
        ("multistep", {"milestones": [0, 3]}, "sched.milestones"),
    ],
)
def test_bad_schedule_values_are_usage_errors_naming_the_key(name, kw, key):
    with pytest.raises(UsageError, match=key.replace(".", r"\.")):
        sched(name, **kw)


# --- from the command line ----------------------------------------------------------------------
def sweep_trials(root: Path, group: str) -> dict[str, Path]:
    """``option -> trial dir`` for the one sweep under ``root``, keyed by ``group=``'s value."""
    (sweep,) = (root / "outputs" / "sweeps").iterdir()
    out = {}
    for d in sweep.iterdir():
        if (d / ".hydra" / "overrides.yaml").is_file():
            over = yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
            (opt,) = [o.split("=", 1)[1] for o in over if o.startswith(f"{group}=")]
            out[opt] = d
    return out


@pytest.mark.parametrize("group,registry", [("optim", OPTIMIZERS), ("sched", SCHEDULES)])
def test_every_option_trains_from_the_cli(dlx, group, registry):
    """One sweep process per group: every option completes and logs opt/lr and grad norms."""
    names = registry.names()
    r = dlx("train", "-m", *QUICK, "trainer.progress=false", f"{group}={','.join(names)}")
    assert r.returncode == 0, r.stderr[-2000:]
    trials = sweep_trials(dlx.cwd, group)
    assert set(trials) == set(names)
    for name, d in trials.items():
        summary = json.loads((d / "summary.json").read_text())
        assert summary["status"] == "completed", (name, summary)
        tags = scalar_tags(d)
        assert {"opt/lr", "opt/grad_norm", "opt/weight_norm"} <= set(tags), name
        assert "opt/grad_norm_clipped" not in tags  # only with clipping on
    if group == "sched":  # per-step schedules move the lr between logged steps
        for name in ("cosine", "onecycle", "warmup_cosine"):
            lr = [v for _, v in scalar_tags(trials[name])["opt/lr"]]
            assert len(lr) == 6 and len(set(lr)) >= 5, (name, lr)
        lr = [v for _, v in scalar_tags(trials["cosine"])["opt/lr"]]
        assert lr[0] == pytest.approx(1e-3)  # logged: the lr the step used (adam's default)
        assert all(a > b for a, b in pairwise(lr))

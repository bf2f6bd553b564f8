"""Augmentation: each op's contract and maths in-process, then the CLI end to end."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import QUICK, only_run_dir, read_summary
from dlx.augment import AUGMENTS, ORDER, Augmenter, parse_ops, split_augment
from dlx.augment.base import Remap, beta
from dlx.augment.color import blur_batch
from dlx.augment.erase import CutoutConfig, cutout_side
from dlx.augment.geometric import PAD_MODES, crop_map, crop_offsets, inverse_affine, remap, warp
from dlx.augment.preview import preview_grid
from dlx.augment.tta import tta_forward
from dlx.data.base import DataInfo
from dlx.errors import UsageError

ALL = sorted(AUGMENTS.names())
MIXING = ("mixup", "cutmix")
N, S, K = 16, 32, 10


def info(channels: int = 3, classes: int = K) -> DataInfo:
    return DataInfo("t", "image", classes, channels=channels, image_size=S)


def batch(channels: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(N, channels, S, S, generator=g), torch.randint(0, K, (N,), generator=g)


def augmenter(spec: dict, channels: int = 3, seed: int = 0, classes: int = K) -> Augmenter:
    return Augmenter(parse_ops(spec, info(channels, classes)), torch.device("cpu"), seed)


def always(name: str, **keys) -> dict:
    """``name`` applied to every sample (p=1 where the option has p)."""
    return {name: {"p": 1.0, **keys}}


def drawn(name: str) -> dict:
    """``name`` with random draws: a flip's only draw is whether, so p=0.5 there."""
    return {"flip": {"p": 0.5, "vertical": True}} if name == "flip" else always(name)


def test_order_covers_every_option():
    assert sorted(ORDER) == ALL
    assert set(ALL) >= {"flip", "crop", "rotate", "affine", "color", "noise", "blur"}
    assert set(ALL) >= {"cutout", "mixup", "cutmix", "autoaugment", "randaugment"}


# --- the contract every op keeps ---------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", ALL)
def test_shape_dtype_range_and_labels(name, channels):
    x, y = batch(channels)
    out, t = augmenter(always(name), channels)(x.clone(), y)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    if name in MIXING:
        assert t.shape == (N, K) and t.dtype == torch.float32
        torch.testing.assert_close(t.sum(1), torch.ones(N))
    else:
        assert torch.equal(t, y)


@pytest.mark.parametrize("name", ALL)
def test_samples_of_one_batch_get_different_draws(name):
    x, y = batch(3)
    if name in MIXING:  # mixing one image with itself shows nothing: look at the weights
        _, t = augmenter(always(name))(x, y)
        distinct = set(t.max(1).values.tolist())
    else:  # one image N times: outputs differ only by their draws
        same = x[:1].expand(N, -1, -1, -1).clone()
        out, _ = augmenter(drawn(name))(same, y)
        distinct = {tuple(o.flatten()[::7].tolist()) for o in out}
    assert len(distinct) >= (3 if name == "flip" else N // 3)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_batch_other_seed_other_batch(name):
    x, y = batch(3)
    a, ta = augmenter(drawn(name), seed=5)(x.clone(), y)
    b, tb = augmenter(drawn(name), seed=5)(x.clone(), y)
    c, _ = augmenter(drawn(name), seed=6)(x.clone(), y)
    assert torch.equal(a, b) and torch.equal(ta, tb)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", ALL)
def test_p_zero_is_the_identity(name):
    x, y = batch(3)
    out, t = augmenter({name: {"p": 0.0}})(x.clone(), y)
    assert torch.equal(out, x)
    if name in MIXING:
        assert torch.equal(t, F.one_hot(y, K).float())


def test_resume_continues_the_random_stream():
    spec = {"crop": {}, "randaugment": {}, "mixup": {}}
    x, y = batch(3)
    a = augmenter(spec)
    a(x.clone(), y)
    state = a.state_dict()
    expected, _ = a(x.clone(), y)
    b = augmenter(spec, seed=123)
    b.load_state_dict(state)
    got, _ = b(x.clone(), y)
    assert torch.equal(got, expected)


def test_preview_leaves_the_training_stream_alone():
    aug = augmenter({"flip": {}, "mixup": {}})
    before = aug.state_dict()
    grid = preview_grid((batch(3)[0] * 255).to(torch.uint8), batch(3)[1], aug, seed=1)
    assert grid.shape[0] == 3 and grid.min() >= 0 and grid.max() <= 1
    after = aug.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# --- geometric maths ---------------------------------------------------------------------------
def test_crop_is_a_window_of_the_padded_image_at_a_per_sample_offset():
    x, y = batch(1)
    same = x[:1].expand(N, -1, -1, -1).clone()
    out, _ = augmenter(always("crop", padding=4))(same, y)
    padded = F.pad(same[0], (4,) * 4)
    offsets = []
    for o in out:
        windows = [(i, j) for i in range(9) for j in range(9)]
        hits = [(i, j) for i, j in windows if torch.equal(padded[:, i : i + S, j : j + S], o)]
        assert len(hits) == 1
        offsets.append(hits[0])
    assert len(set(offsets)) > N // 2  # each sample its own offset


def test_crop_offsets_shift_exactly():
    x = torch.arange(2 * S * S, dtype=torch.float32).view(2, 1, S, S)
    out = crop_offsets(x, 2, torch.tensor([0, 2]), torch.tensor([4, 2]), "zeros")
    assert torch.equal(out[1], x[1])  # offset == padding: no shift
    assert torch.equal(out[0, :, 2:, : S - 2], x[0, :, : S - 2, 2:])  # down 2, left 2
    assert (out[0, :, :2] == 0).all() and (out[0, :, :, S - 2 :] == 0).all()


def reference_crop_flip(x, pad, top, left, mode, hflip, vflip):
    """Per sample, the plain way: pad, cut the window at (top, left), then mirror."""
    tmode = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate"}[mode]
    out = []
    for i, img in enumerate(x.double()):
        o = F.pad(img[None], (pad,) * 4, mode=tmode)[0]
        o = o[:, top[i] : top[i] + S, left[i] : left[i] + S]
        o = o.flip(-1) if hflip[i] else o
        out.append(o.flip(-2) if vflip[i] else o)
    return torch.stack(out)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("mode", sorted(PAD_MODES))
def test_one_gather_crop_and_flip_match_a_per_sample_reference(mode, dtype):
    g = torch.Generator().manual_seed(1)
    n, pad = 64, 4
    x = torch.randint(0, 256, (n, 3, S, S), generator=g).to(dtype)
    top, left = torch.randint(0, 2 * pad + 1, (2, n), generator=g)
    hflip, vflip = torch.rand(2, n, generator=g) < 0.5
    ar = torch.arange(S).expand(n, S)
    cols = torch.where(hflip[:, None], ar.flip(1), ar)
    rows = torch.where(vflip[:, None], ar.flip(1), ar)
    m = crop_map((S, S), pad, top, left, mode).then(Remap(rows, cols))  # crop, then flip
    out = remap(x, m)
    assert out.dtype == dtype and out.is_contiguous()
    ref = reference_crop_flip(x, pad, top.tolist(), left.tolist(), mode, hflip, vflip)
    assert torch.equal(out.double(), ref)
    crop_only = crop_offsets(x, pad, top, left, mode)
    assert torch.equal(
        crop_only.double(), reference_crop_flip(x, pad, top, left, mode, [0] * n, [0] * n)
    )


@pytest.mark.parametrize("mode", sorted(PAD_MODES))
@pytest.mark.parametrize("p", [1.0, 0.5])
def test_fused_crop_flip_draws_what_the_ops_draw_one_by_one(mode, p):
    """``augment=[crop,flip]``: one gather on uint8 = the reference on the same draws =
    the float batch through the ops one at a time, bit for bit; per-sample, and seeded."""
    spec = {
        "crop": {"p": p, "padding": 4, "padding_mode": mode},
        "flip": {"p": 0.5, "vertical": True},
    }
    g = torch.Generator().manual_seed(2)
    n = 64
    xb = torch.randint(0, 256, (n, 3, S, S), dtype=torch.uint8, generator=g)
    y = torch.zeros(n, dtype=torch.long)
    aug = augmenter(spec, seed=5)
    assert len(aug.moves) == 2 and not aug.rest
    out, _ = aug(xb, y)
    assert out.dtype == torch.float32
    # the same draws, in the same order, from a fresh generator seeded alike
    r = torch.Generator().manual_seed(5)
    off = torch.randint(0, 9, (2, n), generator=r)
    off = torch.where(torch.rand(n, generator=r) < p, off, 4)
    hflip, vflip = torch.rand(n, generator=r) < 0.5, torch.rand(n, generator=r) < 0.5
    ref = reference_crop_flip(xb, 4, off[0].tolist(), off[1].tolist(), mode, hflip, vflip)
    assert torch.equal(out, ref.float().div_(255))
    # op by op on floats, as the pipeline ran before the fusion
    x, one = xb.float().div(255), augmenter(spec, seed=5)
    for _, op in one.ops:
        x, _ = op.batch(x, y, one.rng)
    assert torch.equal(out, x)
    again, _ = augmenter(spec, seed=5)(xb, y)
    other, _ = augmenter(spec, seed=6)(xb, y)
    assert torch.equal(out, again) and not torch.equal(out, other)
    assert len({(int(a), int(b)) for a, b in off.T}) > n // 4  # each sample its own window


def test_rotation_by_a_right_angle_is_rot90():
    x, _ = batch(3)
    n = len(x)
    zero = torch.zeros(n)
    theta = inverse_affine(torch.full((n,), math.pi / 2), torch.ones(n), zero, zero, zero)
    out = warp(x, theta, fill=0.0)
    torch.testing.assert_close(out, torch.rot90(x, -1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_affine_translation_by_whole_pixels_matches_the_crop_shift():
    x, _ = batch(1)
    n, one, zero = len(x), torch.ones(len(x)), torch.zeros(len(x))
    theta = inverse_affine(zero, one, zero, torch.full((n,), 2 * 3 / S), zero)  # right 3 px
    out = warp(x, theta, fill=0.0)
    ref = crop_offsets(x, 3, torch.full((n,), 3), torch.zeros(n, dtype=torch.long), "zeros")
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_affine_fill_takes_the_configured_value():
    x = torch.zeros(2, 1, S, S)
    out, _ = augmenter(always("affine", scale=[0.5, 0.5], shear=0.0, translate=0.0, fill=1.0), 1)(
        x, torch.zeros(2, dtype=torch.long)
    )
    assert out[:, :, 0, 0].eq(1).all() and out[:, :, S // 2, S // 2].eq(0).all()


# --- colour maths -------------------------------------------------------------------------------
def test_brightness_scales_each_sample_by_its_own_factor():
    x = torch.rand(N, 1, S, S) * 0.5 + 0.25
    out, _ = augmenter(always("color", brightness=0.2, contrast=0.0), 1)(x.clone(), None)
    ratio = (out / x).flatten(1)
    torch.testing.assert_close(ratio.min(1).values, ratio.max(1).values)  # one factor a sample
    assert ratio.min() >= 0.8 - 1e-5 and ratio.max() <= 1.2 + 1e-5
    assert ratio[:, 0].unique().numel() == N


def test_contrast_keeps_the_mean_and_gray_ignores_saturation_and_hue():
    x = torch.rand(N, 1, S, S) * 0.2 + 0.4
    out, _ = augmenter(always("color", brightness=0.0, contrast=0.5), 1)(x.clone(), None)
    torch.testing.assert_close(out.mean((1, 2, 3)), x.mean((1, 2, 3)))
    gray = x.expand(N, 3, S, S).clone()  # equal channels: no saturation, no hue to turn
    spec = always("color", brightness=0.0, contrast=0.0, saturation=0.9, hue=0.5)
    out, _ = augmenter(spec)(gray.clone(), None)
    torch.testing.assert_close(out, gray, atol=1e-5, rtol=0)


def test_blur_keeps_constants_and_mass_and_smooths():
    x = torch.full((2, 3, S, S), 0.3)
    torch.testing.assert_close(blur_batch(x, torch.tensor([0.5, 2.0]), 5), x)
    spike = torch.zeros(2, 1, S, S)
    spike[:, :, S // 2, S // 2] = 1
    out = blur_batch(spike, torch.tensor([0.5, 2.0]), 5)
    torch.testing.assert_close(out.sum((1, 2, 3)), torch.ones(2))
    assert out[0].max() > out[1].max()  # the wider sigma spreads further


def test_noise_has_the_configured_std():
    x = torch.full((N, 1, S, S), 0.5)
    out, _ = augmenter(always("noise", std=0.05), 1)(x, None)
    assert abs((out - x).std().item() - 0.05) < 0.003


# --- erasing and mixing ------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0.25, 0.5, 1.0])
def test_cutout_erases_the_configured_area(size):
    x = torch.ones(N, 3, S, S)
    out, _ = augmenter(always("cutout", size=size, value=0.0))(x, None)
    side = cutout_side(CutoutConfig(size=size), S)
    assert (out == 0).all(1).sum((1, 2)).eq(side * side).all()
    assert (out == 0).any(1).sum((1, 2)).eq(side * side).all()  # all channels, same square


def constant_images(classes: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample i: the constant image i / N, class i (so a target says what was mixed in)."""
    x = (torch.arange(N, dtype=torch.float32) / N).view(N, 1, 1, 1).expand(N, 1, S, S)
    return x.contiguous(), torch.arange(N)


@pytest.mark.parametrize("name", MIXING)
def test_mixed_pixels_match_the_soft_targets(name):
    x, y = constant_images()
    out, t = augmenter(always(name, alpha=1.0), 1, classes=N)(x, y)
    values = torch.arange(N, dtype=torch.float32) / N
    # mean pixel == Σ_k target_k · value_k: the mass of each class is its weight (mixup) or
    # its share of the pixels (cutmix)
    torch.testing.assert_close(out.mean((1, 2, 3)), t @ values, atol=1e-5, rtol=0)
    assert (t > 0).sum(1).le(2).all() and (t.max(1).values < 1).sum() > N // 2
    if name == "cutmix":  # pixels are either the sample's or the partner's
        own = out == x
        assert (own | (out.view(N, -1)[:, :, None] == values).any(-1).view_as(out)).all()


def test_beta_sampler_moments():
    g = torch.Generator().manual_seed(0)
    for alpha in (0.2, 1.0, 5.0):
        lam = beta(alpha, 40_000, g, torch.device("cpu"))
        assert lam.min() >= 0 and lam.max() <= 1
        assert abs(lam.mean().item() - 0.5) < 0.01
        assert abs(lam.var().item() - 1 / (4 * (2 * alpha + 1))) < 0.01


def test_label_smoothing_composes_with_soft_targets():
    from dlx.engine.objective import Objective

    out, y = torch.randn(N, K), torch.randint(0, K, (N,))
    obj = Objective(info(), label_smoothing=0.1)
    torch.testing.assert_close(obj.loss(out, F.one_hot(y, K).float()), obj.loss(out, y))
    soft = 0.7 * F.one_hot(y, K).float() + 0.3 * F.one_hot(y.roll(1), K).float()
    target = 0.9 * soft + 0.1 / K
    expected = -(target * out.log_softmax(-1)).sum(1).mean()
    torch.testing.assert_close(obj.loss(out, soft), expected)
    assert obj.stats(out, soft).item() == (out.argmax(-1) == y).sum()


# --- test-time augmentation, the DataLoader path, bad config -------------------------------------
def test_flip_tta_averages_the_logits_of_x_and_its_mirror():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(S * S, K))
    x = torch.rand(4, 1, S, S)
    expected = (model(x) + model(x.flip(-1))) / 2
    torch.testing.assert_close(tta_forward(model, x, "flip"), expected)
    mirrored = tta_forward(model, x.flip(-1), "flip")
    torch.testing.assert_close(tta_forward(model, x, "flip"), mirrored)
    torch.testing.assert_close(tta_forward(model, x, "none"), model(x))


def test_dataloader_path_gets_per_sample_v2_transforms_and_keeps_mixing_on_device():
    from torchvision import tv_tensors

    spec = {n: {} for n in ALL}
    aug, transform = split_augment(spec, info(), torch.device("cpu"), 0, per_sample=True)
    assert aug.names == ["mixup", "cutmix"]
    img = tv_tensors.Image(torch.randint(0, 256, (3, S, S), dtype=torch.uint8))
    outs = [transform(img) for _ in range(4)]
    assert all(o.shape == img.shape and o.dtype == torch.uint8 for o in outs)
    assert len({o.sum().item() for o in outs}) > 1


@pytest.mark.parametrize(
    "spec, key",
    [
        ({"crop": {"padding": -1}}, "augment.crop.padding"),
        ({"flip": {"p": 2}}, "augment.flip.p"),
        ({"blur": {"kernel_size": 4}}, "augment.blur.kernel_size"),
        ({"randaugment": {"magnitude": 31}}, "augment.randaugment.magnitude"),
        ({"affine": {"scale": [1.2, 0.8]}}, "augment.affine.scale"),
        ({"cutout": {"colour": 1}}, "augment.cutout.colour"),
        ({"warp": {}}, "augment=warp"),
    ],
)
def test_bad_config_names_the_key(spec, key):
    with pytest.raises(UsageError, match=key.replace(".", r"\.")):
        parse_ops(spec, info())


# --- end to end from the CLI ------------------------------------------------------------------
def images(run_dir) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    acc.Reload()
    return {t: acc.Images(t) for t in acc.Tags()["images"]}


@pytest.mark.parametrize(
    "choice",
    [
        "augment=[strong,mixup,color,noise,blur,rotate,affine]",
        "augment=[standard,cutout,autoaugment,randaugment]",
    ],
)
def test_every_option_trains_from_the_cli_and_shows_its_batch(dlx, choice):
    r = dlx("train", choice, "trainer.tta=flip", "trainer.progress=false", *QUICK)
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = only_run_dir(dlx.cwd)
    summary = read_summary(run_dir)
    assert summary["status"] == "completed"
    assert 0 <= summary["metrics"]["test/acc"] <= 1
    grid = images(run_dir)["augment/batch"]
    assert len(grid) == 1 and grid[0].width > 8 * S


@pytest.mark.parametrize(
    "args, message",
    [
        (["augment=crop", "augment.crop.padding=-1"], "augment.crop.padding=-1"),
        (["augment=[flip,warp]"], "warp"),
    ],
)
def test_bad_augment_config_exits_2_with_one_line(dlx, args, message):
    r = dlx("train", *args, *QUICK)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr


@pytest.mark.parametrize("name", ["rotate", "affine"])
def test_rotate_and_affine_resample_bilinearly_on_both_paths(name):
    """The per-sample (DataLoader) twin interpolates as the batched warp does: bilinearly."""
    import math

    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as TF

    from dlx.augment.geometric import inverse_affine, warp

    op = AUGMENTS.get(name).builder(AUGMENTS.parse({}, name), info())
    (twin,) = op.sample.transforms
    assert twin.interpolation == v2.InterpolationMode.BILINEAR
    # and for one angle the two resamplings agree (v2 turns counter-clockwise for +angle)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    img = ((torch.sin(xx / 4) + torch.cos(yy / 5)) * 60 + 128).to(torch.uint8)[None]
    per_sample = TF.rotate(img, 10.0, interpolation=twin.interpolation).float()
    z = torch.zeros(1)
    theta = inverse_affine(torch.tensor([-10 * math.pi / 180]), torch.ones(1), z, z, z)
    batched = warp(img[None].float(), theta, 0.0)[0]
    inner = (slice(None), slice(6, 26), slice(6, 26))  # away from the filled corners
    assert (batched - per_sample)[inner].abs().mean() < 0.5  # nearest would be ~3.4

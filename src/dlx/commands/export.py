"""``dlx export RUN_DIR --format torchscript|onnx [--out PATH]``: the run's best checkpoint
as a file that runs without dlx, checked against PyTorch on a batch of test data.

The exported network takes what the model takes inside dlx: images as float tensors
``(N, C, H, W)`` already scaled to [0, 1] and normalised with the data's mean and std
(printed, and stored in the file's metadata), sequences as ``(N, T, F)``. The batch size is
free. The check runs the exported file on one test batch and on a single sample and
compares its outputs with the PyTorch model's: max |difference| against a printed
tolerance; over it, the export fails (exit 1).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlx.errors import RunFailed, UsageError
from dlx.suggest import allowed

if TYPE_CHECKING:
    from torch import Tensor, nn

#: |exported − PyTorch| must stay under RTOL · max(1, max |PyTorch output|)
RTOL = 1e-4


@dataclass(frozen=True)
class Exporter:
    """One format: its file suffix, how to write it, how to run the written file."""

    suffix: str
    write: Callable[[nn.Module, Tensor, Path, dict[str, str]], None]
    load: Callable[[Path], tuple[Callable[[Tensor], Tensor], str]]  # (run, checked with)


# --- TorchScript ----------------------------------------------------------------------------
def write_torchscript(model: nn.Module, x: Tensor, path: Path, meta: dict[str, str]) -> None:
    import torch

    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, x, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"dlx.json": json.dumps(meta)})


def load_torchscript(path: Path) -> tuple[Callable[[Tensor], Tensor], str]:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    return (lambda x: module(x)), "torch.jit.load"


# --- ONNX -----------------------------------------------------------------------------------
def write_onnx(model: nn.Module, x: Tensor, path: Path, meta: dict[str, str]) -> None:
    """torch's exporter (``torch.export`` based), the batch dimension left free; then onnx's
    checker, and dlx's metadata in the model's ``metadata_props``."""
    import onnx
    import torch

    batch = torch.export.Dim("batch")
    program = torch.onnx.export(
        model,
        (x,),
        dynamo=True,
        input_names=["input"],
        output_names=["output"],
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    proto = program.model_proto
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def load_onnx(path: Path) -> tuple[Callable[[Tensor], Tensor], str]:
    """An onnxruntime session when onnxruntime is installed, else onnx's reference
    evaluator (slow but exact to the spec)."""
    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        import onnx
        from onnx.reference import ReferenceEvaluator

        ref = ReferenceEvaluator(onnx.load(str(path)))
        how = "onnx's checker and reference evaluator (onnxruntime is not installed)"
        return (lambda x: torch.from_numpy(ref.run(None, {"input": x.numpy()})[0])), how
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    run = lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])  # noqa: E731
    return run, f"onnx's checker and onnxruntime {ort.__version__}"


EXPORTERS: dict[str, Exporter] = {
    "torchscript": Exporter(".torchscript.pt", write_torchscript, load_torchscript),
    "onnx": Exporter(".onnx", write_onnx, load_onnx),
}


# --- the command ----------------------------------------------------------------------------
def parse_args(args: list[str]) -> tuple[Path, str, Path | None]:
    """``RUN_DIR --format F [--out PATH]``; bad usage is one line naming the argument."""
    usage = "usage: dlx export RUN_DIR --format torchscript|onnx [--out PATH]"
    run_dir: Path | None = None
    fmt = out = None
    it = iter(args)
    for a in it:
        name, eq, value = a.partition("=")
        if name in ("--format", "-f", "--out", "-o"):
            value = value if eq else next(it, None)
            if value is None:
                raise UsageError(f"{name}: needs a value; {usage}")
            if name in ("--format", "-f"):
                fmt = value
            else:
                out = Path(value)
        elif a.startswith("-") or run_dir is not None:
            raise UsageError(f"{a}: unexpected argument; {usage}")
        else:
            run_dir = Path(a)
    if run_dir is None:
        raise UsageError(usage)
    if fmt is None:
        raise UsageError(f"--format: required; choose one of: {', '.join(EXPORTERS)}")
    if fmt not in EXPORTERS:
        raise UsageError(f"--format={fmt}: {allowed(fmt, EXPORTERS)}")
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        raise UsageError(f"RUN_DIR={run_dir}: not a dlx run dir (no .hydra/config.yaml)")
    return run_dir, fmt, out


def max_diff(ref: Tensor, got: Tensor) -> float:
    """max |got − ref|; a shape mismatch fails the export."""
    if got.shape != ref.shape:
        raise RunFailed(f"export: output shape {tuple(got.shape)} != PyTorch's {tuple(ref.shape)}")
    return (got.float() - ref.float()).abs().max().item()


def check(exporter: Any, out: Path, model: nn.Module, x: Tensor) -> tuple[str, float, float]:
    """Load the export back and run it beside PyTorch on a full batch and one sample (the
    batch size is free): what ran it, the largest difference, the tolerance."""
    import torch

    run, how = exporter.load(out)
    with torch.inference_mode():
        diffs, ref_max = [], 0.0
        for batch in (x, x[:1]):
            ref = model(batch)
            ref_max = max(ref_max, ref.abs().max().item())
            diffs.append(max_diff(ref, run(batch)))
    return how, max(diffs), RTOL * max(1.0, ref_max)


def export(run_dir: Path, fmt: str, out: Path | None = None) -> dict[str, Any]:
    """Write the export, check it; return what was printed (path, diff, tolerance …)."""
    import torch

    from dlx.engine.build import build, trained_model
    from dlx.engine.inputs import Inputs
    from dlx.engine.spec import parse_run_dir

    spec = parse_run_dir(run_dir)
    exporter = EXPORTERS[fmt]
    out = out or run_dir / "export" / f"model{exporter.suffix}"
    out.parent.mkdir(parents=True, exist_ok=True)
    cpu = torch.device("cpu")
    p = build(spec, cpu, train=False)
    info = p.info
    model = trained_model(spec, run_dir, info, cpu)
    xb, yb = next(iter(p.data.batches("test")))
    x, _ = Inputs(info, cpu, channels_last=False)(xb, yb)
    meta = {
        "dlx.run_dir": str(run_dir),
        "dlx.model": str(spec.model.name),
        "dlx.data": info.name,
        "dlx.input_shape": json.dumps(["N", *info.input_shape]),
        "dlx.mean": json.dumps(list(info.mean)),
        "dlx.std": json.dumps(list(info.std)),
        "dlx.num_classes": str(info.num_classes),
    }
    try:
        exporter.write(model, x, out, meta)
    except (RunFailed, UsageError):
        raise
    except Exception as e:
        raise RunFailed(f"export --format={fmt}: {type(e).__name__}: {e}".splitlines()[0]) from e
    how, diff, tolerance = check(exporter, out, model, x)
    shape = ", ".join(map(str, info.input_shape))
    return {
        "path": out,
        "format": fmt,
        "checked_with": how,
        "samples": len(x),
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "ok": diff <= tolerance,
        "input": f"{str(x.dtype).removeprefix('torch.')} (N, {shape})",
        "image": info.kind == "image",
        "meta": meta,
    }


def print_export(result: dict[str, Any]) -> None:
    """The lines ``dlx export`` prints; a difference over the tolerance fails (exit 1)."""
    print(f"exported {result['format']}: {result['path']}")
    meta = result["meta"]
    norm = f", normalised: mean={meta['dlx.mean']} std={meta['dlx.std']}"
    print(f"input: {result['input']}{norm if result['image'] else ''}")
    n = result["samples"]
    print(f"checked with {result['checked_with']} on a test batch of {n} and on 1 sample")
    verdict = "ok" if result["ok"] else "FAILED"
    print(
        f"max |exported - pytorch| = {result['max_abs_diff']:.3g} "
        f"(tolerance {result['tolerance']:.3g}): {verdict}"
    )
    if not result["ok"]:
        raise RunFailed(
            f"export: outputs differ from PyTorch's by {result['max_abs_diff']:.3g} "
            f"> {result['tolerance']:.3g}"
        )


def cmd_export(args: list[str]) -> int:
    run_dir, fmt, out = parse_args(args)
    print_export(export(run_dir, fmt, out))
    return 0

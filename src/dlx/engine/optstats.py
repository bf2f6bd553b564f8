"""What the optimizer sees, for TensorBoard: gradient and weight norms, histograms.

Gradient-norm curves tell a stuck optimizer (norm still large, loss flat) from a minimum
(norm near zero), so they stay on by default. They are cheap: measured only on log steps,
with foreach norms (one kernel per device and dtype, not one per parameter), kept on the
device until the loop's single host sync of that log step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from dlx.regularization import ClipGradConfig, clip_gradients


def total_norm(tensors: Iterable[Tensor]) -> Tensor:
    """The global L2 norm of ``tensors`` (as if concatenated), on their device: one foreach
    call on every device (``torch.nn.utils.get_total_norm`` loops in Python off CUDA)."""
    ts = [t.detach() for t in tensors]
    if not ts:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(ts, 2.0)), 2.0)


def clip_and_measure(
    params: list[Tensor], clip: ClipGradConfig | None, measure: bool
) -> dict[str, Tensor]:
    """Clip the gradients if ``clip`` is set; on log steps (``measure``) return their L2 norm
    before clipping (``opt/grad_norm``) and, with clipping on, after (``opt/grad_norm_clipped``).
    Gradients must already be unscaled (mixed precision)."""
    out: dict[str, Tensor] = {}
    if not measure and clip is None:
        return out
    grads = [p.grad for p in params if p.grad is not None]
    if measure:
        out["opt/grad_norm"] = total_norm(grads)
    if clip is not None:
        clip_gradients(params, clip)
        if measure:
            out["opt/grad_norm_clipped"] = total_norm(grads)
    return out


def read(values: Mapping[str, Tensor | float]) -> dict[str, float]:
    """Tensors and numbers as floats, with one host sync for all the tensors."""
    tensors = {k: v for k, v in values.items() if isinstance(v, Tensor)}
    out = {k: float(v) for k, v in values.items() if not isinstance(v, Tensor)}
    if tensors:
        device = next(iter(tensors.values())).device
        stacked = torch.stack([t.detach().float().reshape(()).to(device) for t in tensors.values()])
        out.update(zip(tensors, stacked.cpu().tolist(), strict=True))
    return out


def histograms(model: nn.Module) -> dict[str, Tensor]:
    """Each parameter (``weights/NAME``) and its last gradient (``grads/NAME``)."""
    out: dict[str, Tensor] = {}
    for name, p in model.named_parameters():
        out[f"weights/{name}"] = p.detach()
        if p.grad is not None:
            out[f"grads/{name}"] = p.grad.detach()
    return out

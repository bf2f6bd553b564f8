"""``reconstruction/val``: a few validation images above the model's reconstructions of them,
one TensorBoard image per epoch (reconstruction tasks: the autoencoder)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from dlx.callbacks import Callback

if TYPE_CHECKING:
    from dlx.engine.run import Run

#: the TensorBoard image tag
TAG = "reconstruction/val"


class ReconstructionImages(Callback):
    """Each epoch: the first ``count`` val images (top row) and their reconstructions (below),
    as the model being validated (``run.eval_model``) makes them."""

    def __init__(self, count: int = 8) -> None:
        self.count = count

    def grid(self, run: Run) -> torch.Tensor:
        """The (3, H, W) grid in [0, 1]: originals above reconstructions."""
        from torchvision.utils import make_grid

        xb, yb = next(iter(run.data.batches("val")))
        x, target = run.inputs(xb[: self.count], yb[: self.count])
        model = run.eval_model
        was_training = model.training
        model.eval()
        with torch.inference_mode(), run.autocast():
            out = model(x)
        model.train(was_training)
        images = torch.cat([target.float(), out.float().clamp(0, 1)]).cpu()
        return make_grid(images, nrow=len(target), padding=2, pad_value=1.0)

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        run.board.image(TAG, self.grid(run), run.state.step)

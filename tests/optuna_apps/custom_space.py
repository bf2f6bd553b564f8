"""A four-dimensional sphere whose ``z`` is sampled near ``x`` and whose ``w`` is added by the
custom search space (``hydra.sweeper.custom_search_space=custom_space.configure``)."""

import hydra
from omegaconf import DictConfig
from optuna.trial import Trial


@hydra.main(version_base=None, config_path="custom_conf", config_name="config")
def sphere4(cfg: DictConfig) -> float:
    return sum(float(cfg[k]) ** 2 for k in ("w", "x", "y", "z"))


def configure(cfg: DictConfig, trial: Trial) -> None:
    """``z`` within ``max_z_difference_from_x`` of the sampled ``x``; ``w`` (new key) in [0, 1]."""
    x = trial.params["x"]
    gap = cfg.max_z_difference_from_x
    trial.suggest_float("z", x - gap, x + gap)
    trial.suggest_float("+w", 0.0, 1.0)


if __name__ == "__main__":
    sphere4()

"""The sphere x² + y², minimised by a sweep of ``hydra/sweeper=dlx_optuna`` (any Hydra app:
dlx's sweeper stands in for hydra-optuna-sweeper). ``error=true`` makes every job raise."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="sphere_conf", config_name="config")
def sphere(cfg: DictConfig) -> float:
    if cfg.get("error", False):
        raise RuntimeError("cfg.error is True")
    return float(cfg.x) ** 2 + float(cfg.y) ** 2


if __name__ == "__main__":
    sphere()

"""dlx config tree (Hydra searches it as the package dlx.conf)."""

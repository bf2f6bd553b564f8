"""dlx's Hydra sweeper on current Optuna: random, TPE, grid, CMA-ES and QMC searches whose
study lives in SQLite inside the sweep dir, so a re-run of the same command resumes it."""

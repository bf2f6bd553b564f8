"""``make bench``: dlx's speed figures in one Rich table and one JSON file.

    python bench/run.py [--only loop,augment,startup,sweep,trials,targets] [--json …]

- overhead: whole `dlx train` processes against a hand-written script of the same job
  (bench/handwritten.py), marginal epochs, alternating runs, medians: <= 1.03x at the defaults,
  <= 1.02x at batch 256 and for ResNet-20; start-up to the first step <= the script's + 1 s;
  beside it each process's epoch pace (its own epoch-end clock, start-up excluded);
- checkpoint: one epoch-end checkpoint write's cost, epochs with and without alternating in
  one dlx process (bench/checkpoint_cost.py);
- loop: per-step cost inside dlx's training steps vs a bare loop in the same process (LeNet,
  digits, CPU, batch 64; validation excluded) — an in-process figure beside the one above;
- augment: augment=standard's cost per LeNet step (<= 5%) and batched vs PIL throughput (>= 10x);
- startup: dlx --help (<= 0.5 s);
- sweep: a 4-trial grid on 1 vs 2 joblib workers;
- trials: a sweep trial's marginal CPU (and wall) cost, whole ``dlx train -m`` processes against
  a hand-written sweep in one process (bench/handwritten_sweep.py): a grid of 1-epoch LeNet
  trials (<= 1.5x) and an Optuna TPE sweep against plain ``optuna...optimize`` (<= 1.5x); a
  16-trial grid on 2 joblib workers over 1 (wall, <= 0.6 for 1-epoch trials; CPU; 6-epoch
  trials; the floor that the trials' own throughput sets) (bench/sweep_cost.py);
- targets: default LeNet >= 0.97 test acc within 60 s; ResNet-20 + Adam >= 0.95 within 180 s;
- gpu: bench/gpu.py (images/s and MFU per model and setting, dlx vs a bare loop), when CUDA is
  there; it writes bench/results_gpu.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

ALL = (
    "overhead",
    "checkpoint",
    "loop",
    "augment",
    "startup",
    "sweep",
    "trials",
    "targets",
    "gpu",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(ALL), help="comma list of: " + ", ".join(ALL))
    ap.add_argument("--json", type=Path, default=Path("bench/results.json"))
    args = ap.parse_args()
    chosen = [c for c in args.only.split(",") if c]
    results: dict[str, object] = {"machine": platform.platform(), "python": sys.version.split()[0]}
    rows: list[tuple[str, str, str]] = []

    if "overhead" in chosen:
        import overhead

        r = overhead.measure()
        results["overhead"] = r
        cases = (("default", 1.03), ("batch256", 1.02), ("resnet", 1.02))
        for case, target in (*cases, ("default_every_epoch", None)):
            c, p = r[case], r[case]["pace"]
            rows += [
                (
                    f"marginal epoch, dlx / script ({case}: {c['dlx_epoch_s'] * 1e3:.0f} vs "
                    f"{c['script_epoch_s'] * 1e3:.0f} ms; median of paired repeats, quartiles)",
                    f"{c['ratio']:.3f} ({c['ratio_q1']:.2f}-{c['ratio_q3']:.2f})",
                    f"<= {target}" if target else "",
                ),
                (
                    f"  epoch pace, dlx / script ({p['dlx_epoch_s'] * 1e3:.0f} vs "
                    f"{p['script_epoch_s'] * 1e3:.0f} ms; each process's own epoch clock)",
                    f"{p['ratio']:.3f} ({p['ratio_q1']:.2f}-{p['ratio_q3']:.2f})",
                    f"<= {target}" if target else "",
                ),
            ]
        st = r["startup"]
        rows.append(
            (
                f"start-up to the first step (dlx {st['dlx_first_step_s']:.2f} s, script "
                f"{st['script_first_step_s']:.2f} s): extra s",
                f"{st['extra_s']:.2f}",
                "<= 1.0",
            )
        )
    if "checkpoint" in chosen:
        import checkpoint_cost

        r = checkpoint_cost.measure()
        results["checkpoint"] = r
        rows.append(
            (
                "one epoch-end checkpoint write, in-process A/B (ms)",
                f"{r['write_cost_s'] * 1e3:.1f}",
                "",
            )
        )
    if "loop" in chosen:
        import loop

        r = loop.measure()
        results["loop"] = r
        rows += [
            ("bare loop step (ms)", f"{r['bare_step_ms']:.3f}", ""),
            ("dlx step (ms)", f"{r['dlx_step_ms']:.3f}", ""),
            (
                "dlx / bare step time (median pair; quartiles)",
                f"{r['dlx_step_time_ratio']:.3f} "
                f"({r['dlx_step_time_ratio_q1']:.3f}-{r['dlx_step_time_ratio_q3']:.3f})",
                "<= 1.02",
            ),
            ("dlx fixed cost per step, linear model (us)", f"{r['dlx_fixed_cost_us']:.0f}", ""),
            (
                "  = implied dlx / bare LeNet step time",
                f"{r['implied_lenet_ratio']:.3f}",
                "<= 1.02",
            ),
        ]
    if "augment" in chosen:
        import augment

        cost = augment.step_cost(100)
        speed = augment.throughput(8192)
        results["augment"] = {**cost, **speed}
        rows += [
            ("augment=standard cost (% of LeNet step)", f"{cost['cost_pct']:.1f}", "<= 5"),
            ("batched vs PIL+2 workers", f"{speed['speedup']:.1f}x", ">= 10x"),
        ]
    if "startup" in chosen:
        import startup

        r = startup.measure()
        results["startup"] = r
        rows += [
            ("dlx --help (s)", f"{r['dlx_help_s']:.3f}", "<= 0.5"),
            ("dlx train --help (s)", f"{r['dlx_train_help_s']:.3f}", ""),
        ]
    if "sweep" in chosen:
        import sweep

        r = sweep.measure()
        results["sweep"] = r
        rows += [
            ("4-trial grid, 1 job (s)", f"{r['sweep_4_trials_1_job_s']:.1f}", ""),
            ("4-trial grid, 2 jobs (s)", f"{r['sweep_4_trials_2_jobs_s']:.1f}", ""),
            ("sweep speed-up on 2 cores", f"{r['speedup']:.2f}x", ""),
        ]
    if "trials" in chosen:
        import sweep_cost

        r = sweep_cost.measure()
        results["trials"] = r
        rows += sweep_cost.rows(r)
    if "targets" in chosen:
        import targets

        r = targets.measure()
        results["targets"] = r
        for name, v in r.items():
            rows.append(
                (
                    f"{name}: test acc in {v['wall_s']:.0f} s",
                    f"{v['test_acc']:.4f}",
                    f">= {v['acc_target']} in {v['time_target_s']:.0f} s",
                )
            )

    if "gpu" in chosen:
        import subprocess

        import torch

        if torch.cuda.is_available():
            subprocess.run([sys.executable, str(Path(__file__).parent / "gpu.py")], check=True)
        else:
            rows.append(("GPU benchmark", "skipped", "no CUDA device"))

    table = Table(title="dlx bench")
    for col, justify in (("figure", "left"), ("value", "right"), ("target", "right")):
        table.add_column(col, justify=justify)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

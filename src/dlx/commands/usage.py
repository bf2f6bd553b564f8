"""``dlx COMMAND --help`` for the commands that have no parser of their own: dlx's own usage
(never TensorBoard's or Hydra's help, never an "unknown study" error)."""

from __future__ import annotations

#: commands whose --help another program would answer, or that would take it for an argument
USAGE: dict[str, str] = {
    "tb": """\
usage: dlx tb [DIR] [TENSORBOARD FLAGS]

TensorBoard on DIR (default outputs/), bound to 127.0.0.1 unless the flags name a host
(--host H, --bind_all). First writes DIR's HParams column list: the keys runs overrode and
sweeps varied come first and are ticked. Other flags go to TensorBoard (e.g. --port 6007).
""",
    "study": """\
usage: dlx study list
       dlx study NAME [OVERRIDES] [-cd DIR]

list         every packaged study: its claim, source and budget
NAME         runs the study's grid as one sweep into outputs/studies/NAME-<time>/ (or
             hydra.sweep.dir=…, which also resumes one), writes its report and prints one
             verdict per claim
-cd DIR      also look for studies in DIR/study/NAME.yaml
OVERRIDES    Hydra overrides for every run, e.g. trainer.max_epochs=20
""",
    "resume": "usage: dlx resume RUN_DIR\n\ncontinue an interrupted or killed run in place,"
    " with its saved config\n",
    "eval": "usage: dlx eval RUN_DIR [RUN_DIR…] [OVERRIDES]\n\nthe best checkpoint's val and"
    " test metrics; with several runs, each member's and the ensemble's\n",
    "runs": "usage: dlx runs [DIR] [--sort METRIC]\n\na table of the runs and sweeps under DIR"
    " (default outputs/)\n",
    "summary": "usage: dlx summary [OVERRIDES]\n\nthe model's layers, output shapes,"
    " parameters and MACs, for the config dlx train OVERRIDES would run\n",
    "diff": "usage: dlx diff RUN_A RUN_B\n\nthe two runs' config differences and their metrics"
    " side by side\n",
    "export": "usage: dlx export RUN_DIR --format torchscript|onnx [--out PATH]\n\nthe best"
    " checkpoint as a TorchScript or ONNX file, checked against PyTorch's outputs\n",
    "lr-find": "usage: dlx lr-find [--min-lr A] [--max-lr B] [--steps N] [--out DIR]"
    " [OVERRIDES]\n\nthe learning-rate range test: the suggested lr (a tenth of the lr at the"
    " smoothed loss's minimum), the curve as PNG and CSV\n",
}


def own_help(command: str, args: list[str]) -> str | None:
    """dlx's usage text when ``args`` ask for help (``-h``/``--help`` first) and ``command``
    has no parser of its own; else None."""
    if args and args[0] in ("-h", "--help") and command in USAGE:
        return USAGE[command]
    return None

"""A non-editable install works from any folder: the config tree ships inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import QUICK, REPO


def test_non_editable_install_trains_from_another_folder(tmp_path: Path):
    target = tmp_path / "site"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    assert (target / "dlx" / "conf" / "config.yaml").is_file()
    assert (target / "dlx" / "conf" / "experiment" / "lenet.yaml").is_file()
    assert (target / "dlx" / "data" / "corpora" / "timemachine.txt").stat().st_size == 178_979
    shipped = target / "dlx" / "data" / "mnist_t10k"  # data=mnist10k, with its source note
    assert (shipped / "t10k-images-idx3-ubyte.gz").stat().st_size == 1_648_877
    assert (shipped / "t10k-labels-idx1-ubyte.gz").is_file() and (shipped / "README.md").is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    # -S-free check that the installed copy, not the source tree, is the one imported
    where = subprocess.run(
        [sys.executable, "-c", "import dlx; print(dlx.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(target)), where.stdout
    r = subprocess.run(
        [sys.executable, "-m", "dlx", "train", "+experiment=lenet", *QUICK],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert list((work / "outputs" / "runs").glob("*/summary.json"))


def test_the_wheel_ships_recipes_and_studies_but_no_study_results(tmp_path: Path):
    """Results live in experiments/results/ (outside the package); the wheel has the configs."""
    import zipfile

    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("dlx-*.whl")
    files = zipfile.ZipFile(wheel).namelist()
    assert "dlx/conf/experiment/lenet.yaml" in files and "dlx/conf/study/search.yaml" in files
    assert not [f for f in files if "/results/" in f or f.endswith((".png", "verdicts.txt"))]
    assert not [f for f in files if f.startswith("experiments/")]


def test_every_recipe_has_its_link_in_experiments():
    """experiments/NAME.yaml links to each shipped recipe (SPEC: recipes from experiments/)."""
    shipped = {p.name for p in (REPO / "src" / "dlx" / "conf" / "experiment").glob("*.yaml")}
    linked = {p.name for p in (REPO / "experiments").glob("*.yaml")}
    assert shipped == linked
    for name in linked:
        link = REPO / "experiments" / name
        assert link.is_symlink() and link.resolve().parent.name == "experiment"

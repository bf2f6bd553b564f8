"""provenance.json: git state outside a repo, in a clean one and a dirty one; no git at all;
what a resume adds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dlx.callbacks.provenance import record_start
from dlx.engine import provenance


def git(cwd: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(cwd), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repo with one commit of ``train.py``."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q")
    (root / "train.py").write_text("lr = 0.1\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_outside_a_repo_git_is_null(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    info = provenance.collect(tmp_path)
    assert info["git"] is None and info["diff"] is None
    record = provenance.write(tmp_path, info)
    assert json.loads((tmp_path / "provenance.json").read_text()) == json.loads(json.dumps(record))
    assert not (tmp_path / "git.diff").exists()
    import torch

    assert record["versions"]["torch"] == torch.__version__
    assert record["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert any(p.startswith("torch==") for p in record["packages"])
    assert record["packages"] == sorted(record["packages"], key=str.lower)
    assert record["host"] and record["command"]


def test_clean_repo_records_the_commit(repo: Path):
    head = git(repo, "rev-parse", "HEAD").strip()
    info = provenance.collect(repo)
    assert info["git"]["commit"] == head
    assert info["git"]["dirty"] is False and info["diff"] is None


def test_dirty_repo_records_the_diff_as_a_file(repo: Path, tmp_path: Path):
    (repo / "train.py").write_text("lr = 0.3\n")
    (repo / "notes.txt").write_text("untracked\n")
    info = provenance.collect(repo / ".")
    assert info["git"]["dirty"] is True
    assert info["git"]["changed_files"] == 1 and info["git"]["untracked_files"] == 1
    run_dir = tmp_path / "run"
    record = provenance.write(run_dir, info)
    diff = (run_dir / "git.diff").read_text()
    assert "-lr = 0.1" in diff and "+lr = 0.3" in diff
    assert record["git"]["diff_file"] == "git.diff"
    # the diff restores the working tree on the recorded commit
    git(repo, "stash", "-q")
    git(repo, "apply", str(run_dir / "git.diff"))
    assert (repo / "train.py").read_text() == "lr = 0.3\n"


def test_no_git_binary_is_fine(repo: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert provenance.git_info(repo) == (None, None)


def test_parse_status():
    text = (
        "# branch.oid 0123abcd\n# branch.head main\n"
        "1 .M N... 100644 100644 100644 aa bb src/x.py\n? new.txt\n"
    )
    assert provenance.parse_status(text) == {
        "commit": "0123abcd",
        "branch": "main",
        "dirty": True,
        "changed_files": 1,
        "untracked_files": 1,
    }
    fresh = provenance.parse_status("# branch.oid (initial)\n# branch.head (detached)\n")
    assert fresh["commit"] is None and fresh["branch"] is None and not fresh["dirty"]


def test_a_resume_keeps_the_first_record_and_appends(repo: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    first = record_start(run_dir, provenance.collect(repo))
    (repo / "train.py").write_text("lr = 0.5\n")
    again = record_start(run_dir, provenance.collect(repo))
    assert again["git"] == first["git"] and again["time"] == first["time"]
    (resume,) = again["resumes"]
    assert resume["git"]["dirty"] is True and resume["git"]["diff_file"] == "git.resume-1.diff"
    assert "+lr = 0.5" in (run_dir / "git.resume-1.diff").read_text()
    assert json.loads((run_dir / "provenance.json").read_text())["resumes"][0]["git"]["dirty"]


def test_markdown_names_commit_and_versions(repo: Path):
    record = provenance.write(repo.parent / "run", provenance.collect(repo))
    text = provenance.markdown(record)
    assert record["git"]["commit"] in text and record["versions"]["torch"] in text

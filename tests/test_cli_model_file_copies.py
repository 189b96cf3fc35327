"""A model file copied to another folder is the same model: Slurm array tasks and cluster jobs
copy ``vae.py`` to a node-local folder or their own $TMPDIR. Its private module's name carried
the file's folder into the decoder's fingerprint, so a resume (or another shard) with the copy
was refused as "differs in its decoder"."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cli_models import tiny_data, tiny_vae_source
from latentsweep.cli import main

pytest.importorskip("zarr")


def test_a_copy_of_the_model_file_resumes_and_shards_the_same_sweep(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # (the command's pictures go to ./latentsweep-out)
    first, copy = tmp_path / "job1", tmp_path / "node-local"
    first.mkdir()
    (first / "vae.py").write_text(tiny_vae_source(), encoding="utf-8")
    shutil.copytree(first, copy)
    np.save(tmp_path / "data.npy", tiny_data())
    common = ["traverse", "--data", str(tmp_path / "data.npy"), "--store", str(tmp_path / "sweep.zarr"),
              "--steps", "3", "--anchors", "4", "--no-progress"]
    assert main([*common, "--model", f"{first / 'vae.py'}:make", "--shard", "0/2"]) == 0
    assert main([*common, "--model", f"{copy / 'vae.py'}:make", "--shard", "1/2"]) == 0, capsys.readouterr().err
    assert main([*common, "--model", f"{copy / 'vae.py'}:make", "--resume"]) == 0, capsys.readouterr().err


def test_another_model_file_of_the_same_name_is_still_another_sweep(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, other = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    other.mkdir()
    (first / "vae.py").write_text(tiny_vae_source(), encoding="utf-8")
    (other / "vae.py").write_text(tiny_vae_source().replace("torch.manual_seed(0)", "torch.manual_seed(1)"),
                                  encoding="utf-8")
    np.save(tmp_path / "data.npy", tiny_data())
    common = ["traverse", "--data", str(tmp_path / "data.npy"), "--store", str(tmp_path / "sweep.zarr"),
              "--steps", "3", "--anchors", "4", "--no-progress"]
    assert main([*common, "--model", f"{first / 'vae.py'}:make"]) == 0
    capsys.readouterr()
    assert main([*common, "--model", f"{other / 'vae.py'}:make", "--resume"]) != 0
    assert "decoder" in capsys.readouterr().err

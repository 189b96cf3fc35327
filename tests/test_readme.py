"""The README says true things: every Python block runs, as printed, on the shipped demo models
(a VAE and a plain autoencoder), and the demo table is the one the demo's diagnoses generate
(issue 13 items 6 and 12)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import latentsweep as ls
from latentsweep.demo import load_demo_model, load_digits_data
from latentsweep.demo.summary import demo_table

README = Path(__file__).resolve().parents[1] / "README.md"
IMAGES = 64  # enough digits for every statistic, few enough to run fast


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def test_the_readme_has_python_blocks_to_run():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    assert any("ls.diagnose(posterior)" in b and "ls.report(" in b for b in blocks)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_digits_data()[0][:IMAGES]


@pytest.mark.parametrize("model", ["digits-vae", "digits-ae"])
def test_every_readme_python_block_runs_as_printed(model, digits, tmp_path, monkeypatch, capsys):
    """Block after block in one namespace, as a reader pasting them into one session would,
    with ``vae`` a shipped model (a VAE, or a plain autoencoder) and ``images`` its data."""
    monkeypatch.chdir(tmp_path)
    namespace = {"vae": load_demo_model(model), "images": digits}
    for number, block in enumerate(python_blocks(README.read_text(encoding="utf-8"))):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - re-raised with the block that failed
            raise AssertionError(f"README python block {number} failed for {model}:\n{block}") from error
    assert (tmp_path / "report.html").stat().st_size > 10_000 and (tmp_path / "grid.png").exists()
    assert "latentsweep diagnosis" in capsys.readouterr().out


def test_traversal_options_of_an_autoencoder_carry_the_reference(digits):
    model = load_demo_model("digits-ae")
    posterior = ls.encode(model.encoder, digits)
    options = ls.diagnose(posterior).traversal_options()
    assert options["mode"] == "empirical" and options["dims"] is None
    assert torch.equal(options["reference"], posterior.mu)
    result = ls.traverse(model.decoder, posterior[:2], steps=5, **options)
    expected = ls.traverse(model.decoder, posterior[:2], steps=5, mode="empirical", reference=posterior.mu)
    assert torch.equal(result.values, expected.values)


def test_traversal_options_of_a_vae_name_its_active_latents(digits):
    model = load_demo_model("digits-vae")
    diagnosis = ls.diagnose(ls.encode(model.encoder, load_digits_data()[0]))
    options = diagnosis.traversal_options()
    assert options == {"mode": "prior", "prior_std": 1.0, "dims": diagnosis.active_dims}
    assert 0 < len(options["dims"]) < diagnosis.latent_dim


def test_the_readme_demo_table_is_the_generated_one():
    """`python -m latentsweep.demo.summary` prints the table; the README must hold it verbatim."""
    table = demo_table()
    assert table in README.read_text(encoding="utf-8"), (
        "README's demo table differs from what the demo finds; replace it with:\n" + table
    )


def test_the_readme_modes_table_is_the_generated_one():
    """The modes table is written from latentsweep.modes.MODE_TABLE; the README must hold it verbatim."""
    table = ls.modes.markdown_table()
    assert table in README.read_text(encoding="utf-8"), (
        "README's modes table differs from latentsweep.modes.MODE_TABLE; replace it with:\n" + table
    )


def test_the_readme_lists_every_key_encode_reads():
    """The key lists are encoding.py's; the README's list must not fall behind them."""
    from latentsweep import encoding

    text = README.read_text(encoding="utf-8")
    for keys in (encoding.MEAN_KEYS, encoding.LOGVAR_KEYS, encoding.LOGSTD_KEYS, encoding.STD_KEYS,
                 encoding.VAR_KEYS, encoding.INPUT_KEYS):
        missing = [key for key in keys if f"`{key}`" not in text]
        assert not missing, f"README.md does not list encode's keys {missing}"

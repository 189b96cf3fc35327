"""The report says true things (issue 13 items 9-14): every sentence is generated from the
numbers and checked against them here, the most important finding leads, active latents are
reported apart from collapsed ones, one feature subset and one colour per feature, consistent
speeds, stated truncation, a visible KL threshold and labelled anchors."""

from __future__ import annotations

import html
import math
import re

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep.findings import SMALL_SD_TEXT_RATIO, findings, posterior_sd_sentence
from latentsweep.html_report import _curve_features
from latentsweep.principal import variance_shares
from latentsweep.plots._features import feature_colour
from latentsweep.plots.kl_bars import VISIBLE_FRACTION
from picture_models import LATENT_DIM, small_decoder, synthetic_posterior

N = 400


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def relu_heads_posterior() -> ls.Posterior:
    """Active dims 0-3 with ReLU'd mean and log-variance heads, collapsed dims 4-5."""
    mu = torch.relu(torch.randn(N, LATENT_DIM, generator=gen(1)) * 1.5)
    logvar = torch.relu(torch.randn(N, LATENT_DIM, generator=gen(2)) * 0.3)
    mu[:, 4:], logvar[:, 4:] = 0.0, 0.0
    return ls.Posterior(mu, logvar)


def text_of(document: str) -> str:
    """The page's visible text, unescaped, on one line."""
    body = re.sub(r"<style>.*?</style>|<img[^>]*>", " ", document, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def headings(document: str) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", "", h)) for h in re.findall(r"<h2>(.*?)</h2>", document)]


NUM = r"(\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?)"  # a printed number, without a sentence's full stop


def numbers_after(text: str, pattern: str) -> list[float]:
    """The numbers matched by ``pattern``, whose ``{}`` stand for printed numbers."""
    return [float(v.replace(",", "")) for v in re.search(pattern.replace("{}", NUM), text).groups()]


# ---- the most important finding leads --------------------------------------------------------


def test_relu_heads_lead_the_report_and_the_sd_sentence_does_not_contradict_itself(tmp_path):
    posterior = relu_heads_posterior()
    diagnosis = ls.diagnose(posterior)
    assert {"nonnegative-mean", "nonnegative-logvar", "collapsed"} <= {f.code for f in diagnosis.flags}
    document = ls.report(tmp_path / "r.html", posterior=posterior).read_text(encoding="utf-8")
    assert headings(document)[0] == "Retrain with linear mean and log-variance heads"
    text = text_of(document)
    assert text.index("Retrain with linear") < text.index("Recommended traversal mode")
    assert "spans only" not in text and "only " not in posterior_sd_sentence(diagnosis)
    assert "the posterior SDs are not small here" in text
    assert "a ReLU on the log-variance head keeps every SD at 1 or more" in text


def test_the_shipped_relu_heads_model_leads_with_retraining(tmp_path):
    from latentsweep.demo import load_demo_model, load_digits_data

    posterior = ls.encode(load_demo_model("digits-vae-relu-heads").encoder, load_digits_data()[0])
    document = ls.report(tmp_path / "r.html", posterior=posterior).read_text(encoding="utf-8")
    assert headings(document)[0] == "Retrain with linear mean and log-variance heads"


@pytest.mark.parametrize(
    ("make", "order"),
    [
        (lambda: relu_heads_posterior(), ["relu-heads", "marginal-mismatch", "collapsed"]),
        (lambda: synthetic_posterior(N, seed=3), ["small-posterior-sd", "collapsed"]),
        (lambda: ls.Posterior(torch.zeros(N, 3), torch.zeros(N, 3)), ["whole-collapse"]),
        (lambda: ls.Posterior(torch.randn(N, 3, generator=gen(4)) * 0.8, torch.full((N, 3), 2 * math.log(0.6))), ["healthy"]),
        (lambda: ls.Posterior(torch.randn(N, 3, generator=gen(5)) * 3), ["autoencoder"]),
    ],
)
def test_findings_come_in_order_of_importance(make, order):
    assert [f.code for f in findings(ls.diagnose(make()))] == order


def test_nonfinite_codes_come_first():
    mu = torch.relu(torch.randn(N, 2, generator=gen(6)))
    mu[3, 0] = math.nan
    found = findings(ls.diagnose(ls.Posterior(mu, torch.zeros(N, 2))))
    assert found[0].code == "nonfinite" and "up to 1 of 400 inputs on dim 0" in found[0].text


# ---- sentences from the numbers --------------------------------------------------------------


@pytest.mark.parametrize("sd", [0.05, 0.3, 0.9, 1.0, 1.5, 3.0])
def test_the_posterior_sd_sentence_says_what_the_numbers_say(sd):
    mu = torch.randn(N, 2, generator=gen(7))
    diagnosis = ls.diagnose(ls.Posterior(mu, torch.full((N, 2), 2 * math.log(sd))))
    sentence = posterior_sd_sentence(diagnosis)
    typical, ratio, width = numbers_after(
        sentence, r"typical posterior SD of {} \({}× the prior SD\), so ± 2 posterior SDs span {} in z"
    )
    assert typical == pytest.approx(sd, rel=0.01) and ratio == pytest.approx(sd, rel=0.01)
    assert width == pytest.approx(4 * sd, rel=0.01)
    if sd < SMALL_SD_TEXT_RATIO:
        assert f"only {sd:.0%} of the prior's" in sentence
    elif sd <= 1 / SMALL_SD_TEXT_RATIO:
        assert "about as much as the prior's" in sentence and "not small" in sentence
    else:
        assert "more than the prior's" in sentence


@pytest.fixture(scope="module")
def vae_results():
    """A prior traversal and a posterior one whose posterior SDs are *large* (so it moves z
    further than the prior), from the same anchors."""
    posterior = synthetic_posterior(N, seed=8)
    wide = ls.Posterior(posterior.mu, torch.full_like(posterior.logvar, 2 * math.log(2.0)))
    decoder = small_decoder(64, 1, 8, 8)
    anchors = wide[:3]
    return posterior, {
        "prior": ls.traverse(decoder, anchors, steps=5, progress=False),
        "posterior": ls.traverse(decoder, anchors, mode="posterior", steps=5, progress=False),
    }


def test_effect_caption_compares_the_traversals_by_their_numbers(vae_results, tmp_path):
    posterior, results = vae_results
    diagnosis = ls.diagnose(posterior)
    active = diagnosis.active_dims
    document = ls.report(tmp_path / "r.html", diagnosis=diagnosis, results=results, gifs=False)
    text = text_of(document.read_text(encoding="utf-8"))
    assert "far less" not in text
    for name, result in results.items():
        width = float((result.values[..., -1] - result.values[..., 0]).abs().mean(0)[active].mean())
        effect = float(result.dim_effect[active].double().mean())
        shown = numbers_after(text, f"'{name}' moved z over {{}} on average and changed the output by {{}}")
        assert shown == [pytest.approx(width, rel=5e-3), pytest.approx(effect, rel=5e-3)]
    ratio = float(results["posterior"].dim_effect[active].double().mean() / results["prior"].dim_effect[active].double().mean())
    assert ratio > 1.25  # the posterior traversal moved the output more here
    shown = numbers_after(text, r"'posterior' changed the output {}× as much as 'prior'")[0]
    assert shown == pytest.approx(ratio, rel=0.05)


def test_active_and_inactive_latents_are_reported_apart(vae_results, tmp_path):
    posterior, results = vae_results
    diagnosis = ls.diagnose(posterior)
    assert diagnosis.active_dims == [0, 1, 2, 3]
    text = text_of(ls.report(tmp_path / "r.html", diagnosis=diagnosis, results=results, gifs=False).read_text(encoding="utf-8"))
    for name, result in results.items():
        widths = (result.values[..., -1] - result.values[..., 0]).abs().mean(0)
        line = re.search(rf"mode '{name}':.*?points/s\)", text).group(0)
        shown = numbers_after(line, r"the 4 active latents move over {} in z on average, the 2 inactive ones over {}")
        assert shown == [pytest.approx(float(widths[:4].mean()), rel=5e-3), pytest.approx(float(widths[4:].mean()), rel=5e-3)]


def test_printed_points_per_second_agree_with_printed_times(vae_results, tmp_path):
    _, results = vae_results
    text = text_of(ls.report(tmp_path / "r.html", results=results, gifs=False).read_text(encoding="utf-8"))
    lines = [r.summary() for r in results.values()] + [text]
    found = 0
    for line in lines:
        for points, seconds, rate in re.findall(r"([\d,]+) points decoded in ([\d.e+-]+) s \(([\d,]+) points/s\)", line):
            points, seconds, rate = float(points.replace(",", "")), float(seconds), float(rate.replace(",", ""))
            assert points / seconds == pytest.approx(rate, rel=6e-3), line
            found += 1
    assert found == 4  # two summaries, two result lines in the report


def test_truncated_tables_say_so(tmp_path):
    posterior = ls.Posterior(torch.randn(50, 10, generator=gen(9)), torch.full((50, 10), -3.0))
    decoder = torch.nn.Sequential(torch.nn.Linear(10, 6))
    result = ls.traverse(decoder, posterior[:2], steps=3, progress=False)
    assert "(top 5 of 10 latents, largest effect first)" in result.summary()
    assert "(all 10 latents, largest effect first)" in result.summary(top=10)
    assert len(result.summary(top=3).splitlines()) == 3 + 3
    text = text_of(ls.report(tmp_path / "r.html", results=result).read_text(encoding="utf-8"))
    assert "The 8 of 10 latents that move the output most" in text
    small = ls.traverse(decoder, posterior.mu[:2, :], dims=[0, 1], steps=3, progress=False)
    assert "All 2 latents, by effect" in text_of(ls.report(tmp_path / "s.html", results=small).read_text(encoding="utf-8"))


def test_the_report_names_the_output_space(tmp_path):
    posterior = synthetic_posterior(50, seed=10)
    result = ls.traverse(small_decoder(13), posterior[:2], steps=3, output_transform="sigmoid", progress=False)
    text = text_of(ls.report(tmp_path / "r.html", results=result).read_text(encoding="utf-8"))
    assert "effects measured in sigmoid(decoder output)" in text
    assert "Mean change of the output (sigmoid(decoder output))" in text


# ---- pictures: one feature subset, one colour per feature, a visible threshold ---------------


def _legend_colours(figure) -> dict[str, tuple]:
    legend = figure.legends[0]
    return {t.get_text(): tuple(h.get_color()) for t, h in zip(legend.get_texts(), legend.legend_handles)}


def test_one_feature_subset_and_one_colour_per_feature_across_traversals(tmp_path):
    posterior = synthetic_posterior(80, seed=11)
    decoder = small_decoder(16)
    named = {
        "prior": ls.traverse(decoder, posterior[:4], steps=5, progress=False),
        "flipped": ls.traverse(lambda z: decoder(z).flip(1), posterior[:4], steps=5, progress=False),
    }
    own = [set(np.argsort(-r.sensitivity.sum(0).numpy(), kind="stable")[:10].tolist()) for r in named.values()]
    assert own[0] != own[1]  # each traversal alone would pick a different subset
    chosen, rule = _curve_features(named, named, None, None)
    total = sum(r.sensitivity.sum(0) for r in named.values())
    assert chosen == sorted(np.argsort(-total.numpy(), kind="stable")[:10].tolist())
    assert "10 of 16 features are drawn, the same in every figure" in rule
    colours = [_legend_colours(ls.response_curves(r, features=chosen)) for r in named.values()]
    assert colours[0] == colours[1] and len(set(colours[0].values())) == 10
    for name, colour in colours[0].items():
        assert colour == tuple(feature_colour(int(name[1:]), 16))
    text = text_of(ls.report(tmp_path / "r.html", results=named).read_text(encoding="utf-8"))
    assert text.count("10 of 16 features are drawn, the same in every figure") == 2


def test_a_feature_keeps_its_colour_whichever_subset_is_drawn():
    result = ls.traverse(small_decoder(13), synthetic_posterior(20, seed=12)[:2], steps=3, progress=False)
    a = _legend_colours(ls.response_curves(result, features=[0, 5, 7]))
    b = _legend_colours(ls.response_curves(result, features=[7, 2]))
    assert a["f7"] == b["f7"] and a["f0"] != a["f5"]


def test_the_response_curve_title_states_how_features_were_chosen():
    result = ls.traverse(small_decoder(13), synthetic_posterior(20, seed=13)[:2], steps=3, progress=False)
    assert "10 of 13 features (largest sensitivity)" in ls.response_curves(result)._suptitle.get_text()
    assert "2 of 13 features (chosen)" in ls.response_curves(result, features=[1, 2])._suptitle.get_text()


@pytest.mark.parametrize("seed", [3, 14])
def test_the_kl_threshold_line_is_visible(seed):
    from latentsweep.diagnosis import COLLAPSED_KL

    diagnosis = ls.diagnose(synthetic_posterior(N, seed=seed))
    assert float(diagnosis.kl.max()) > 100 * COLLAPSED_KL  # on a linear axis it would vanish
    ax = ls.kl_bars(diagnosis).axes[0]
    ax.figure.canvas.draw()
    _, y = ax.transAxes.inverted().transform(ax.transData.transform((0, COLLAPSED_KL)))
    assert VISIBLE_FRACTION <= y <= 1 - VISIBLE_FRACTION
    assert ax.get_yscale() == "log"
    linear = ls.kl_bars(diagnosis, log=False).axes[0]
    assert linear.get_yscale() == "linear"


def test_traversals_from_different_anchors_are_labelled(tmp_path):
    posterior = synthetic_posterior(30, seed=15)
    decoder = small_decoder(64, 1, 8, 8)
    named = {"first": ls.traverse(decoder, posterior[:2], steps=3, progress=False),
             "later": ls.traverse(decoder, posterior[2:4], steps=3, progress=False)}
    text = text_of(ls.report(tmp_path / "r.html", results=named, gifs=False).read_text(encoding="utf-8"))
    assert "The traversals start from different anchors" in text
    assert "Anchor 0 of 'first'" in text and "Anchor 0 of 'later'" in text


def test_the_printed_diagnosis_leads_with_its_findings_too():
    diagnosis = ls.diagnose(relu_heads_posterior())
    assert "Most important: Retrain with linear mean and log-variance heads." in diagnosis.summary()
    text = str(diagnosis)
    assert "Findings, most important first:\n  1. Retrain with linear mean and log-variance heads: " in text
    assert [f.code for f in diagnosis.findings()] == [f.code for f in findings(diagnosis)]


@pytest.mark.parametrize("share, text", [
    (0.0, "0%"), (1.0, "100%"), (0.372, "37%"), (1.3, "130%"), (0.999, "99.9%"), (0.9999, "99.99%"),
    (1 - 1e-9, ">99.99%"), (0.004, "0.4%"), (0.001, "0.1%"), (1e-9, "<0.01%"), (1.001, "100.1%"),
    (1 + 1e-9, ">100%"), (math.nan, "nan%"),
])
def test_a_share_that_is_not_exactly_0_or_1_never_prints_as_0_or_100_percent(share, text):
    from latentsweep.diagnosis import format_share

    assert format_share(share) == text


def test_a_dead_relu_heads_share_of_zero_means_is_not_printed_as_all_of_them():
    """999 of 1000 means exactly 0 (a dead ReLU head) read "100% of them are exactly 0"."""
    mu = torch.relu(torch.randn(1000, 2, generator=gen(9)))
    mu[:, 0], mu[0, 0] = 0.0, 0.5
    diagnosis = ls.diagnose(ls.Posterior(mu, torch.zeros(1000, 2)))
    zeros = diagnosis.zero_fraction.tolist()
    assert zeros[0] == 0.999 and diagnosis.flag("nonnegative-mean").dims == [0, 1]
    [heads] = [f for f in findings(diagnosis) if f.code == "relu-heads"]
    assert f"and {zeros[1]:.0%} to 99.9% of them are exactly 0" in heads.text
    [row] = [line for line in str(diagnosis).splitlines() if line.lstrip().startswith("0 ")]
    assert " 99.9% " in row and "100%" not in row


def test_the_small_sd_sentences_do_not_round_a_tiny_share_to_0_percent():
    """A posterior SD of 1/1000 of the prior's read "only 0% of the prior's ± 2 SD range"."""
    mu = torch.randn(N, 2, generator=gen(10))
    diagnosis = ls.diagnose(ls.Posterior(mu, torch.full((N, 2), 2 * math.log(0.001))))
    assert "only 0.1% of the prior's" in posterior_sd_sentence(diagnosis)
    [small] = [f for f in findings(diagnosis) if f.code == "small-posterior-sd"]
    assert "0.1% of the prior's ± 2 SD range" in small.text and " 0% " not in small.text


def test_directions_that_carry_nearly_all_the_variance_are_not_said_to_carry_all_of_it():
    """Two principal directions of codes with a sliver of variance off their plane: "Together
    they carry 100% of the codes' variance"."""
    from latentsweep.report_texts import direction_sentences

    codes = torch.randn(N, 3, generator=gen(11), dtype=torch.float64) * torch.tensor([3.0, 2.0, 0.11],
                                                                                     dtype=torch.float64)
    pcs = ls.principal_directions(ls.Posterior(codes), k=2)
    decoder = torch.nn.Linear(3, 4).double()
    along = ls.traverse(decoder, ls.Posterior(codes[:2]), directions=pcs, steps=3, progress=False)
    share = float(pcs.explained_variance_ratio.sum())
    assert 0.999 < share < 0.9995
    assert "Together they carry 99.9% of the codes' variance." in direction_sentences(along, codes)


@pytest.mark.parametrize("scale", [1e-170, 1e160])
def test_the_reports_variance_shares_do_not_depend_on_the_codes_scale(scale):
    """Computed from the unscaled float64 codes, the squares of codes of 1e-170 underflowed to 0
    (1e160: overflowed to inf) and every share was NaN: the report left the sentence out. Now over
    the power of two at their largest entry, as principal_directions reads them."""
    g = torch.Generator().manual_seed(6)
    codes = torch.randn(200, 5, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2, 1, 0.5, 0.1], dtype=torch.float64)
    units = ls.principal_directions(codes).vectors
    torch.testing.assert_close(torch.tensor(variance_shares(codes * scale, units), dtype=torch.float64),
                               torch.tensor(variance_shares(codes, units), dtype=torch.float64), rtol=1e-12, atol=0)

"""Quick giant-step experiments: the paper's qualitative facts, stated as inequalities with error bars."""
import csv
import math

import numpy as np
import pytest

from asymptotics import experiments


def _sim(out, name):
    """{(panel, series): (x, mean, std, n_seeds)} from the tidy CSV."""
    rows = {}
    with open(out / f"{name}.csv") as fh:
        for r in csv.DictReader(fh):
            if r["kind"] == "simulation":
                rows.setdefault((r["panel"], r["series"]), []).append(
                    (float(r["x"]), float(r["y"]), float(r["y_err"]), int(r["n_seeds"])))
    return {k: tuple(np.array(c) for c in zip(*v)) for k, v in rows.items()}


def test_registry_lists_the_giant_step_experiments():
    assert {"giant-step-stairway", "giant-step-cosine", "giant-step-orientation",
            "giant-step-preprocessing", "giant-step-spiked-rf"} <= set(experiments.names())


@pytest.fixture(scope="module")
def stairway(tmp_path_factory):
    out = tmp_path_factory.mktemp("stairway")
    return out, experiments.run("giant-step-stairway", quick=True, out=out)


def test_stairway_one_step_beats_random_features(stairway):
    """One giant step is better than random features at every n >= d (α = n/d >= 1), for both
    targets, and nowhere worse by 3 standard errors. Below n = d the gain of one step is within
    the seed noise: at the smallest point (n = 22 = d^0.74) the paired differences T=1 − RF for T2
    over root seeds 0-3 are −0.006, +0.032, +0.127, +0.003, so a strict "below at every n" (the
    experiment's note of that name) holds there by chance only; the old seeds happened to give it,
    the new ones give it for root seed 0 but not 1-3."""
    out, _ = stairway
    sim = _sim(out, "giant-step-stairway")
    for target in ("T1", "T2"):
        x, rf, s0, n = sim[(target, "random features (T = 0)")]
        _, m1, s1, _ = sim[(target, "T = 1")]
        assert np.all(m1[x >= 1] < rf[x >= 1])
        assert np.all(m1 - rf < 3 * np.sqrt((s0 ** 2 + s1 ** 2) / n))


def test_stairway_staircase_effect_on_T2(stairway):
    """T2 = u/√2 + u·ū: the second step learns ū (leap-1 coupling), so for 1.2 ≤ κ ≤ 1.6 two steps
    beat one by many standard errors; for T1 (no linear coupling) extra steps cannot go below the
    v*-only plateau 55/384 at this size."""
    out, meta = stairway
    sim = _sim(out, "giant-step-stairway")
    x, m1, s1, n = sim[("T2", "T = 1")]
    _, m2, s2, _ = sim[("T2", "T = 2")]
    sel = (x >= 1.2) & (x <= 1.6)
    gap = np.mean(m1[sel] - m2[sel])
    se = math.sqrt(np.sum(s1[sel] ** 2 + s2[sel] ** 2) / n[0]) / sel.sum()
    assert gap > 5 * se
    assert meta["notes"]["T2"]["plateaus"]["plateau after 2 steps (dim 2)"] == 0.0
    _, m3, s3, n3 = sim[("T1", "T = 3")]
    assert np.all(m3 + 3 * s3 / np.sqrt(n3) > 55 / 384)


def test_cosine_experiment_agrees_with_the_one_step_formula(tmp_path):
    """30 points (3 targets × 2 η̃ × 5 α), 4 seeds each; z = deviation / (std/√4) with the sample
    std of 4 seeds, so for an exact theory z follows Student's t with 3 degrees of freedom:
    P(|z| > 3) = 0.058 per point, and among 30 points P(≥ 4 outside 3σ) = 0.092 (a criterion
    "≥ 90 % within 3σ" fails one root seed in eleven for a correct simulator), P(≥ 6) = 0.0066.
    Hence: at most 5 of 30 outside 3σ (fraction ≥ 25/30). Root seeds 0-4 give 2, 2, 1, 1, 4
    outside. The one systematic deviation (pooled over those 20 seeds): tanh(h1) at η̃ = 1 sits
    2-5 % below the d → ∞ formula at α = 1 and 4 (pooled z ≈ −4.5, a finite-d effect of the
    weak-signal regime, cos ≈ 0.27 at d = 400); it stays inside the 8 % relative bound below."""
    meta = experiments.run("giant-step-cosine", quick=True, out=tmp_path)
    overall = meta["agreement"]["overall"]
    assert overall["n_points"] == 30
    assert overall["fraction_within_3sigma"] >= 25 / 30
    assert overall["max_relative_deviation"] < 0.08


def test_orientation_staircase_and_weak_coupling(tmp_path):
    """Step 1: gradient rows on the line of slope C1_2/C1_1 for every target. Step 2: T2's rows
    leave it (ū is learned), T1's and T3's stay close (no / weak linear coupling)."""
    notes = experiments.run("giant-step-orientation", quick=True, out=tmp_path)["notes"]
    key = "step {}: mean |sin| off the line (all neurons)"
    for t in ("T1", "T2", "T3"):
        assert notes[t][key.format(1)] < 0.12
    assert notes["T2"][key.format(2)] > 3 * max(notes["T1"][key.format(2)], notes["T3"][key.format(2)])
    assert notes["T2"]["staircase dimensions after steps 1, 2 (leap rule, tol 0.02)"] == [1, 2]
    assert notes["T3"]["staircase dimensions after steps 1, 2 (leap rule, tol 0.02)"] == [1, 1]


def test_preprocessing_matches_the_reference_runs(tmp_path):
    notes = experiments.run("giant-step-preprocessing", quick=True, out=tmp_path)["notes"]
    assert notes["preprocessing helps at the largest n"]
    checks = notes["reference checks (z with both standard errors)"]
    assert len(checks) == 6
    assert all(abs(c["z"]) < 3.5 for c in checks.values())


def test_spiked_rf_theory_agrees_with_algorithm_1(tmp_path):
    """Exact one-step asymptotics (Marchenko–Pastur limit) against simulations at d = p = 300:
    every point within 3 standard errors, and the step lowers the error at every α."""
    meta = experiments.run("giant-step-spiked-rf", quick=True, out=tmp_path)
    overall = meta["agreement"]["overall"]
    assert overall["n_points"] == 12 and overall["fraction_within_3sigma"] >= 11 / 12
    sim = _sim(tmp_path, "giant-step-spiked-rf")
    _, rf, _, _ = sim[("tanh", "no step (random features)")]
    _, step, _, _ = sim[("tanh", "α0 = 2, η̃ = 2")]
    assert np.all(step < rf)
    assert all(v["all converged"] for v in meta["notes"].values())


def test_specialisation_falls_below_the_one_direction_plateau(tmp_path):
    """One giant step with preprocessing at n = c·d² (c = 0.5, 1, 2), d = 64, 128, 256: at d = 256
    the T1 error is below the v*-only plateau 55/384 ≈ 0.1432 for every c, by more than 1.645
    standard errors over seeds (the experiment's bound checks)."""
    meta = experiments.run("giant-step-specialisation", quick=True, out=tmp_path)
    checks = {c["name"]: c for c in meta["agreement"]["checks"]}
    below = [c for name, c in checks.items() if "below the one-direction plateau" in name]
    assert len(below) == 3
    for c in below:
        assert c["passed"] and c["measured"] < 55 / 384
    for key, v in meta["notes"].items():
        if key.startswith("n = "):
            assert v["d"][-1] == 256 and v["mean"][-1] < 55 / 384


def test_orientation_checks_pass_and_the_ratio_fails_on_a_wrong_line(tmp_path):
    """Every orientation check passes at quick size (T1, T3 and T2 at step 1 on the line, T2 at step 2
    off it); the off-line ratio R is ≈ 1 for rows on the line plus isotropic noise and far above
    its bound for a line rotated by 30°."""
    from asymptotics.experiments.giant_step import ORIENTATION_R_MAX, _off_line_ratio

    meta = experiments.run("giant-step-orientation", quick=True, out=tmp_path)
    checks = meta["agreement"]["checks"]
    assert len(checks) == 6 and all(c["passed"] for c in checks)
    rng = np.random.default_rng(0)
    d, p = 1024, 400
    rows = rng.standard_normal((p, d)) / math.sqrt(d)
    rows[:, :2] += np.outer(rng.choice([-1.0, 1.0], p) * 0.4, [1.0, 1.0] / np.sqrt(2))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    G = rows[:, :2]
    assert _off_line_ratio(G, np.array([1.0, 1.0]), d) < 2.0 < ORIENTATION_R_MAX
    rot = np.array([math.cos(math.pi / 12 + math.pi / 4), math.sin(math.pi / 12 + math.pi / 4)])
    assert _off_line_ratio(G, rot, d) > 2 * ORIENTATION_R_MAX


def test_stairway_gap_to_the_plateau_decays_and_a_shifted_plateau_fails(stairway):
    """At n = d^1.5, d = 32 … 128: the gap to the plateau after T steps decays with d (fitted
    exponent's 95 % interval below 0) for T1 (T = 1, 2) and T2 (T = 2). Against a plateau shifted up
    by 0.1 the gap is negative at d = 128 (the check fails); errors that do not approach (the
    measured gap at d = 32 at every d) give an exponent whose interval contains 0. (A plateau shifted
    down is not caught: a decreasing error gives a negative exponent against any lower level.)
    T2 at T = 1 falls below its one-step plateau 1 at n = d^1.5 (the check fails: reported, not hidden)."""
    from asymptotics.verdict import power_law_fit, sign_check

    _, meta = stairway
    checks = {c["name"]: c for c in meta["agreement"]["checks"]}
    for name in ("T1, T = 1 (plateau 0.1432)", "T1, T = 2 (plateau 0.1432)", "T2, T = 2 (plateau 0)"):
        assert checks[f"{name}: gap decays with d"]["passed"]
    assert not checks["T2, T = 1 (plateau 1): gap decays with d"]["passed"]
    for name, rec in meta["notes"]["approach to the plateaus"].items():
        if name.startswith("T1"):
            assert min(np.array(rec["gap"]) - 0.1) < 0
    rec = meta["notes"]["approach to the plateaus"]["T2, T = 2 (plateau 0)"]
    flat = np.full(len(rec["d"]), rec["gap"][0]) + np.array([1, -1, 1, -1, 1]) * np.array(rec["se"])
    fit = power_law_fit(rec["d"], flat, rec["se"])
    assert not sign_check("flat", fit.exponent, fit.se, fit.interval).passed


def test_hard_direction_learned_at_d2_not_at_4d(tmp_path):
    """T1's leap-2 direction: Q = d·mean cos² is above the random level 1 at n = d² for every d, and
    at n = 4d consistent with 1 at d = 128; the "learned" check applied to the n = 4d numbers fails."""
    from asymptotics.verdict import bound_check

    meta = experiments.run("giant-step-hard-direction", quick=True, out=tmp_path)
    checks = {c["name"]: c for c in meta["agreement"]["checks"]}
    for d in (32, 64, 128):
        assert checks[f"n = d², d = {d}: hard direction learned"]["passed"]
    assert checks["n = 4d, d = 128: hard direction not learned"]["passed"]
    rec = meta["notes"]["n = 4d"]
    assert not bound_check("wrong", rec["Q"][-1], rec["se"][-1], 1.0, side="above", margin=1.645).passed


def test_stairway_convergence_has_a_grid_of_d_for_every_size():
    """The approach to the plateaus is a power law in d: every size fits it on at least five d."""
    from asymptotics.experiments.giant_step import STAIRWAY_CONVERGENCE

    assert set(STAIRWAY_CONVERGENCE) == {"quick", "medium", "full"}
    for grid in STAIRWAY_CONVERGENCE.values():
        assert len(grid["ds"]) >= 5 and sorted(grid["ds"]) == grid["ds"] and 1 < grid["kappa"] < 2

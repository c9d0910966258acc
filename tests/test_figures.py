"""Figures fit to publish (issue 14, item 4): legends outside all data, no empty panels, no
overlapping tick labels, error bars on log axes stay on the axis — checked with matplotlib's
bounding boxes of the figures :func:`asymptotics.compare.overlay` draws."""
import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from asymptotics.compare import Panel, Series, error_bar_limits, overlay  # noqa: E402


def _synthetic():
    x = np.geomspace(0.1, 10, 50)
    xs = np.geomspace(0.1, 10, 9)
    panels = [Panel("a", "n / p", "test error", title="a"), Panel("b", "n / p", "training error", title="b"),
              Panel("c", "λ", "error", xscale="linear", yscale="linear", title="c"),
              Panel("unused", "x", "y", title="no series")]
    series = []
    for k in range(5):  # many curves with long names: a legend that would cover data inside
        y = (1 + k) / (1 + np.abs(np.log(x)))
        ys = (1 + k) / (1 + np.abs(np.log(xs)))
        for panel in ("a", "b"):
            series.append(Series(panel, f"curve number {k} with a long label", theory_x=x, theory_y=y,
                                 sim_x=xs, sim_mean=ys, sim_std=0.3 * ys * (1 + k), n_seeds=4))
    series.append(Series("c", "points only", sim_x=np.linspace(0, 1, 7), sim_mean=np.linspace(1, 2, 7),
                         sim_std=np.full(7, 0.1), n_seeds=3))
    return panels, series


def _data_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and (ax.lines or ax.collections)]


def assert_publishable(fig):
    """The legend of every axes lies outside every axes' box; no two visible tick labels of one
    axis overlap; no axes is empty."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes and all(ax.lines or ax.collections for ax in axes), "empty panel"
    boxes = [ax.get_window_extent(renderer) for ax in axes]
    for ax in axes:
        leg = ax.get_legend()
        if leg is None:
            continue
        lb = leg.get_window_extent(renderer)
        for box in boxes:
            assert not lb.overlaps(box), f"legend of {ax.get_title()!r} overlaps an axes' data area"
    for ax in axes:
        for labels in (ax.get_xticklabels(which="both"), ax.get_yticklabels(which="both")):
            box = ax.get_window_extent(renderer).padded(1)
            shown = [b for b in (t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text())
                     if box.x0 <= (b.x0 + b.x1) / 2 <= box.x1 or box.y0 <= (b.y0 + b.y1) / 2 <= box.y1]
            for b1, b2 in itertools.combinations(shown, 2):
                assert not b1.overlaps(b2), f"tick labels overlap in {ax.get_title()!r}"


def test_synthetic_figure_is_publishable(tmp_path):
    panels, series = _synthetic()
    fig = overlay(panels, series, title="synthetic")
    try:
        assert len(fig.axes) == 3  # the panel without series is not drawn
        assert_publishable(fig)
    finally:
        plt.close(fig)
    out = overlay(panels, series, tmp_path / "f.png", title="synthetic")
    assert (tmp_path / "f.png").stat().st_size > 0
    plt.close(out)


def test_the_check_detects_a_legend_over_the_data():
    panels, series = _synthetic()
    fig = overlay(panels[:1], [s for s in series if s.panel == "a"])
    try:
        fig.axes[0].legend(loc="center")  # inside: the test helper must complain
        with pytest.raises(AssertionError, match="legend"):
            assert_publishable(fig)
    finally:
        plt.close(fig)


def test_log_axis_error_bars_stay_positive():
    mean = np.array([1.0, 0.5, 2.0, 1e-3, 0.0])
    std = np.array([0.5, 0.5, 4.0, 1e-2, 0.1])
    lo, hi = error_bar_limits(mean, std, "log")
    assert lo[0] == pytest.approx(0.5) and hi[0] == pytest.approx(1.5)  # ordinary bar where it fits
    f = np.exp(std[1:4] / mean[1:4])
    np.testing.assert_allclose(lo[1:4], mean[1:4] / f)  # geometric where mean − std <= 0
    np.testing.assert_allclose(hi[1:4], mean[1:4] * f)
    assert np.all(lo[:4] > 0) and np.isnan(lo[4])  # mean 0 is not on a log axis: no bar
    lo_lin, _ = error_bar_limits(mean, std, "linear")
    np.testing.assert_allclose(lo_lin, mean - std)


def test_drawn_log_error_bars_never_go_below_zero():
    panels = [Panel("a", "n", "error")]
    s = Series("a", "noisy", sim_x=np.arange(1, 6.0), sim_mean=np.array([1.0, 0.2, 0.1, 3.0, 0.05]),
               sim_std=np.array([0.5, 0.4, 0.3, 6.0, 0.5]), n_seeds=5)
    fig = overlay(panels, [s])
    try:
        ax = fig.axes[0]
        ends = [seg[:, 1] for coll in ax.collections for seg in coll.get_segments()]
        assert ends and all(np.all(e > 0) for e in ends)
        assert ax.get_ylim()[0] > 0
        assert_publishable(fig)
    finally:
        plt.close(fig)


def _narrow_log_panels():
    """Three narrow panels (long legend labels) over less than a decade of x: matplotlib labels
    the minor ticks there (3×10² next to 4×10²)."""
    w = np.array([100.0, 200.0, 400.0, 800.0])
    label = "per-neuron variances: slope −0.89 [−2.54, 0.76], a long legend entry"
    panels = [Panel(k, "p (width of both layers)", "deviation") for k in "abc"]
    series = [Series(k, label, theory_x=w, theory_y=1 / w, sim_x=w, sim_mean=1 / w, sim_std=0.2 / w, n_seeds=4)
              for k in "abc"]
    return panels, series


def test_minor_tick_labels_do_not_overlap():
    fig = overlay(*_narrow_log_panels())
    try:
        assert_publishable(fig)
    finally:
        plt.close(fig)


def test_the_check_detects_overlapping_tick_labels(monkeypatch):
    import asymptotics.compare as compare

    monkeypatch.setattr(compare, "_no_tick_label_overlap", lambda fig, ax: None)
    fig = overlay(*_narrow_log_panels())
    try:
        with pytest.raises(AssertionError, match="tick labels overlap"):
            assert_publishable(fig)
    finally:
        plt.close(fig)


def test_real_quick_experiment_figure_is_publishable(tmp_path):
    from asymptotics import experiments

    sweep = experiments.Sweeper("ridge-isotropic", experiments.SweepConfig(seeds=2, quiet=True))
    result = experiments.get("ridge-isotropic").function(experiments.Size("quick"), sweep)
    fig = overlay(result.panels, result.series, title=result.title)
    try:
        assert_publishable(fig)
    finally:
        plt.close(fig)


def test_ridge_learning_curves_have_simulated_points_on_both_sides_of_the_peak():
    from asymptotics.experiments.ridge import _sim_ns, peak_ns

    for p, lo, hi, count in ((200, 0.1, 10, 12), (200, 0.05, 20, 14), (1000, 0.1, 10, 16)):
        ns = _sim_ns(p, lo, hi, count)
        assert p not in ns
        near = ns[np.abs(ns - p) <= 0.1 * p]
        assert (near < p).sum() >= 2 and (near > p).sum() >= 2
        assert set(peak_ns(p)) <= set(ns)

"""Tests of simulations.hierarchical: target sampler, three-layer network gradients, layer-wise
Algorithm 1, joint Adam training, seeding/chunking invariance, sweep task, bad input."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics import hierarchical as theory
from simulations import hierarchical as S
from simulations.rng import stream
from simulations.spec import spec_from_json


def _ref_loss(net, X, y):
    """Plain numpy (1/2n) Σ (f − y)^2 of the three-layer network f = g + α2 Σ c_i ReLU(a_i g + b_i),
    g = α1 Σ u_j (v_j·x + s_j)^3."""
    d = X.shape[1]
    Z = X @ net.theta[:, :d].T + net.theta[:, d]
    g = net.alpha1 * (Z**3) @ net.u
    f = g + net.alpha2 * np.maximum(np.outer(g, net.a) + net.b, 0) @ net.c
    return 0.5 * np.mean((f - y) ** 2), f, g


def _random_net(d, m1, m2, seed, mup):
    net = S.init_network(d, m1, m2, seed, mup=mup)
    rng = stream(seed, "test-weights")
    net.u = rng.standard_normal(m1)
    net.c = rng.standard_normal(m2)
    return net


# --------------------------------------------------------------------------- target
@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=300))
def test_normalising_constant_matches_theory(d):
    assert S.normalising_constant(d) == pytest.approx(theory.normalising_constant(d), rel=1e-13)


def test_sampler_target_definition_and_second_moment():
    d, n = 24, 1 << 17
    prob = S.make_problem(d, seed=3)
    assert set(np.unique(prob.lam)) <= {-1.0, 1.0} and prob.lam.shape == (d,)
    X, h, p = prob.batch("test", n)
    np.testing.assert_allclose(p, (X**3 - 3 * X) @ prob.lam, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(h, theory.normalising_constant(d) * p**3, rtol=1e-12)
    X2, h2 = S.sample(d, 1000, seed=3, kind="test")
    np.testing.assert_array_equal(X2, X[:1000])      # nested data sets: prefixes of one stream
    se = math.sqrt((theory.target_fourth_moment(d) - 1) / n)
    assert abs(np.mean(h * h) - 1) < 4.5 * se        # E h^2 = 1 within Monte-Carlo error
    # the λ of different seeds differ, the data of different purposes too
    assert not np.array_equal(S.make_problem(d, seed=4).lam, prob.lam) or d < 8
    assert not np.array_equal(prob.batch("train", 10)[0], X[:10])


def test_init_law():
    d, m1, m2 = 12, 4000, 3000
    net = S.init_network(d, m1, m2, seed=0, mup=True)
    np.testing.assert_allclose(np.linalg.norm(net.V, axis=1), 1 / math.sqrt(2), rtol=1e-12)
    assert abs(net.s.var() - 0.5) < 0.05 and set(np.unique(net.a)) == {-1.0, 1.0}
    assert np.all(net.u == 0) and np.all(net.c == 0)
    assert net.alpha1 == 1 / m1 and net.alpha2 == 1 / m2
    assert abs(net.b.var() - 10 / 8) < 0.25           # Student t_10: variance ν/(ν − 2)
    assert S.init_network(d, 5, 5, 0, mup=False).alpha1 == 1.0


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("mup", [True, False])
def test_gradient_matches_finite_differences(mup):
    d, m1, m2, n = 4, 6, 5, 45
    net = _random_net(d, m1, m2, 1, mup)
    if not mup:
        net.theta *= 0.5
        net.u *= 0.1
        net.c *= 0.1
    rng = stream(2, "test-data")
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    loss, G = S.loss_and_gradient(net, X, y, block=16)  # several blocks, a partial one
    assert loss == pytest.approx(_ref_loss(net, X, y)[0], rel=1e-12)
    eps = 1e-6
    for name, arr in net.tensors().items():
        fd = np.empty_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + eps
            lp = _ref_loss(net, X, y)[0]
            arr[i] = old - eps
            lm = _ref_loss(net, X, y)[0]
            arr[i] = old
            fd[i] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(G[name], fd, rtol=1e-5, atol=1e-8 * max(1, np.abs(fd).max()),
                                   err_msg=name)
    # float32 compute: the same gradient to single precision
    loss32, G32 = S.loss_and_gradient(net, X, y, block=16, dtype="float32")
    assert loss32 == pytest.approx(loss, rel=1e-5)
    for name in G:
        np.testing.assert_allclose(G32[name], G[name], rtol=1e-3, atol=1e-5 * np.abs(G[name]).max())


def test_forward_matches_reference_and_block_size():
    d, m1, m2 = 5, 37, 29
    net = _random_net(d, m1, m2, 4, True)
    X = stream(5, "test-data").standard_normal((300, d))
    f, g = S.forward(net, X, block=64)
    _, f_ref, g_ref = _ref_loss(net, X, np.zeros(300))
    np.testing.assert_allclose(f, f_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-12)
    f2, _ = S.forward(net, X, block=7)
    np.testing.assert_allclose(f2, f, rtol=1e-13)


def _dense_loss_grad(net, X, y):
    """Loss and gradient with whole n × m1 and n × m2 arrays (the formulas of the module docstring)."""
    n, d = X.shape
    X1 = np.hstack([X, np.ones((n, 1))])
    Z = X1 @ net.theta.T
    g = net.alpha1 * (Z**3) @ net.u
    pre = np.outer(g, net.a) + net.b
    A, R = (pre > 0).astype(float), np.maximum(pre, 0)
    f = g + net.alpha2 * R @ net.c
    e = (f - y) / n
    delta = net.alpha1 * e * (1 + net.alpha2 * A @ (net.a * net.c))
    G = {"theta": (3 * delta[:, None] * net.u * Z**2).T @ X1, "u": (Z**3).T @ delta,
         "a": net.alpha2 * net.c * (A.T @ (e * g)), "b": net.alpha2 * net.c * (A.T @ e), "c": net.alpha2 * R.T @ e}
    return 0.5 * np.mean((f - y) ** 2), G


@settings(max_examples=25, deadline=None)
@given(d=st.integers(2, 6), m1=st.integers(1, 40), m2=st.integers(1, 60), n=st.integers(1, 700),
       block=st.sampled_from([1, 3, 16, 64, 512]), subset=st.booleans(), seed=st.integers(0, 10**6))
def test_training_pass_equals_the_dense_gradient(d, m1, m2, n, block, subset, seed):
    """The training pass (lanes of tiles, the ReLU branch through its sorted kinks and histograms)
    gives the dense loss and gradient to rounding (1e-10 of each tensor's largest entry), for any
    tile size, a row subset (mini-batch) and units with a_k = 0 (always or never active) or a_k < 0."""
    net = _random_net(d, m1, m2, seed, True)
    rng = stream(seed, "test-data")
    net.a = rng.standard_normal(m2)
    net.a[rng.random(m2) < 0.2] = 0.0
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    idx = np.sort(rng.permutation(n)[: max(1, n // 2)]) if subset else None
    eng = S._Engine(m1, m2, d, block, np.dtype("float64"))
    X1 = np.hstack([X, np.ones((n, 1))])
    loss, G = S._loss_grad(net, X1, y, eng, block, idx)
    rows = slice(None) if idx is None else idx
    ref_loss, ref = _dense_loss_grad(net, X[rows], y[rows])
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for name in ref:
        np.testing.assert_allclose(G[name], ref[name], rtol=0, atol=1e-10 * max(np.abs(ref[name]).max(), 1e-300),
                                   err_msg=name)


def test_training_pass_does_not_depend_on_the_number_of_threads():
    numba = pytest.importorskip("numba")
    net = _random_net(6, 50, 70, 3, True)
    X = stream(4, "test-data").standard_normal((5000, 6))
    y = stream(5, "test-data").standard_normal(5000)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = S.loss_and_gradient(net, X, y, block=64)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = S.loss_and_gradient(net, X, y, block=64)
    finally:
        numba.set_num_threads(before)
    assert one[0] == many[0]
    for name in one[1]:
        np.testing.assert_array_equal(one[1][name], many[1][name])


# --------------------------------------------------------------------------- layer-wise
def test_layerwise_stage1_recovers_feature():
    d, m1, m2 = 6, 128, 200                      # D3 = binom(9, 3) = 84 <= m1
    n = 8192                                     # ≈ 38 d^3
    res = S.layerwise(d, n, m1, m2, seed=0, n_test=1 << 14, return_network=True)
    # reference: the bottleneck at a random (untrained) u, i.e. the feature before training
    prob = S.make_problem(d, 0)
    X, h, p = prob.batch("test", 1 << 14)
    rnd = res.network.copy()
    init_corrs = []
    for k in range(5):
        rnd.u = stream(k, "random-u").standard_normal(m1)
        init_corrs.append(abs(np.corrcoef(S.forward(rnd, X)[1], p)[0, 1]))
    assert max(init_corrs) < 0.5
    assert res.abs_corr > 0.75 > max(init_corrs) + 0.3
    assert res.corr > 0                           # u fitted to h, and P_3 h = ρ p with ρ > 0
    assert res.abs_corr <= theory.stage1_ceiling(d) + 0.02
    assert res.median_sq_error < 0.01             # far below the zero predictor's
    assert math.isfinite(res.test_loss) and res.test_loss_se > 0
    # the stage-1 fit equals the closed-form ridge on in-memory data
    X1, y1, _ = prob.batch("D1", n)
    Phi = (X1 @ res.network.V.T + res.network.s) ** 3
    Gm = Phi.T @ Phi / n
    xi = 1e-6 * np.trace(Gm) / m1
    u = np.linalg.solve(Gm + xi * np.eye(m1), Phi.T @ y1 / n)
    np.testing.assert_allclose(res.network.u, u, rtol=1e-5, atol=1e-6 * np.abs(u).max())


def test_layerwise_gd_option_approaches_ridge():
    kw = dict(d=4, n=2048, m1=40, m2=50, seed=1, n_test=4096)
    r = S.layerwise(**kw, return_network=True)
    g = S.layerwise(**kw, stage1="gd", stage2="gd", xi1_rel=1e-2, xi2_rel=1e-2, T1=3000, T2=3000,
                    return_network=True)
    r2 = S.layerwise(**kw, xi1_rel=1e-2, xi2_rel=1e-2, return_network=True)
    assert g.abs_corr == pytest.approx(r2.abs_corr, abs=0.02)
    assert r.abs_corr > 0.5


@pytest.mark.parametrize("bias", ["t", "unif", "normal"])
def test_layerwise_bias_options_run(bias):
    res = S.layerwise(4, 1024, 40, 30, seed=2, n_test=2048, bias=bias)
    assert math.isfinite(res.test_loss) and res.abs_corr > 0.3


def test_chunk_invariance_and_seeding():
    kw = dict(d=5, n=3000, m1=60, m2=40, n_test=2500, block=256)
    a = S.layerwise(seed=7, chunk=256, **kw)
    b = S.layerwise(seed=7, chunk=1024, **kw)
    c = S.layerwise(seed=7, **kw)
    assert a.summary() | {"wall_time": 0} == b.summary() | {"wall_time": 0} == c.summary() | {"wall_time": 0}
    e = S.layerwise(seed=8, chunk=256, **kw)
    assert e.test_loss != a.test_loss
    kw2 = dict(d=4, n=700, m1=16, m2=20, n_test=1500, block=128, max_steps=15)
    x = S.train_adam(seed=3, chunk=128, **kw2)
    y = S.train_adam(seed=3, chunk=1024, **kw2)
    assert x.summary() | {"wall_time": 0} == y.summary() | {"wall_time": 0}
    np.testing.assert_array_equal(x.history, y.history)
    # the streamed data are the same rows for any chunk
    prob = S.make_problem(6, seed=1, block=64)
    full = prob.batch("D2", 1000)[0]
    parts = np.vstack([X1[:, :6].copy() for _, X1, _, _ in prob.stream("D2", 1000, chunk=192)])
    np.testing.assert_array_equal(parts, full)


def test_float32_close_to_float64():
    kw = dict(d=5, n=3000, m1=60, m2=40, n_test=4000, seed=1)
    a = S.layerwise(**kw)
    b = S.layerwise(**kw, dtype="float32")
    assert b.corr == pytest.approx(a.corr, abs=1e-3)


# --------------------------------------------------------------------------- Adam
def test_adam_trains_and_stops_on_plateau():
    res = S.train_adam(4, 1024, seed=0, m2=50, max_steps=300, lr=1e-2, n_test=4096,
                       schedule="constant")
    h = res.history
    assert len(h) == res.steps <= 300
    assert h[-1] < 0.5 * h[0]                     # the training loss decreases
    assert res.abs_corr > 0.3 and math.isfinite(res.train_corr)
    stop = S.train_adam(4, 512, seed=0, m2=20, max_steps=400, patience=5, rel_tol=0.5,
                        n_test=1024)
    assert stop.converged and stop.steps < 400
    mb = S.train_adam(4, 1000, seed=0, m2=20, max_steps=40, batch_size=256, n_test=1024)
    assert mb.steps == 40 and len(mb.history) == 10   # one monitored value per epoch


def test_same_seed_same_numbers():
    kw = dict(d=4, n=600, m1=16, m2=20, n_test=1000, max_steps=10)
    a, b = S.train_adam(seed=5, **kw), S.train_adam(seed=5, **kw)
    assert a.summary() | {"wall_time": 0} == b.summary() | {"wall_time": 0}
    assert S.train_adam(seed=6, **kw).test_loss != a.test_loss


# --------------------------------------------------------------------------- sweep task
def test_hierarchical_task():
    ss = np.random.SeedSequence(11)
    out = S.hierarchical_task({"method": "layerwise", "d": 4, "n": 1024, "m1": 40, "m2": 30,
                               "n_test": 2048}, ss)
    assert all(isinstance(v, float) for v in out.values())
    json.dumps(out)
    out2 = S.hierarchical_task({"method": "adam", "d": 4, "n": 512, "m1": 16, "m2": 20,
                                "n_test": 1024, "max_steps": 5, "betas": [0.9, 0.99]}, ss)
    assert out2["steps"] == 5.0
    # replica (deprecated; the sweep's paired=("n",) replaces it): a fixed seed for the point
    with pytest.warns(DeprecationWarning, match="paired"):
        r1 = S.hierarchical_task({"method": "layerwise", "d": 4, "n": 1024, "m1": 40, "m2": 30,
                                  "n_test": 2048, "replica": 2}, np.random.SeedSequence(1))
    with pytest.warns(DeprecationWarning, match="paired"):
        r2 = S.hierarchical_task({"method": "layerwise", "d": 4, "n": 1024, "m1": 40, "m2": 30,
                                  "n_test": 2048, "replica": 2}, np.random.SeedSequence(2))
    assert r1 | {"wall_time": 0} == r2 | {"wall_time": 0}
    with pytest.raises(ValueError, match="method"):
        S.hierarchical_task({"method": "sgd", "d": 4, "n": 10}, ss)
    with pytest.raises(ValueError, match="unknown"):
        S.hierarchical_task({"method": "adam", "d": 4, "n": 10, "xi1": 1.0}, ss)


def test_specs_and_the_dict_form_agree():
    ss = np.random.SeedSequence(11)
    params = {"method": "adam", "d": 4, "n": 300, "m1": 9, "m2": 10, "n_test": 512, "max_steps": 3,
              "betas": [0.9, 0.99]}
    spec = S.AdamSpec(d=4, n=300, m1=9, m2=10, n_test=512, max_steps=3, betas=(0.9, 0.99))
    a = S.hierarchical_task(params, ss) | {"wall_time": 0}
    assert a == S.hierarchical_task(spec, ss) | {"wall_time": 0}
    assert a == S.train_adam(4, 300, ss, m1=9, m2=10, n_test=512, max_steps=3, betas=(0.9, 0.99)
                             ).summary() | {"wall_time": 0}
    lw = S.LayerwiseSpec(d=4, n=100, m1=np.int64(8), m2=6, dtype=np.float32)
    assert lw.m1 == 8 and type(lw.m1) is int and lw.dtype == "float32"      # normalised once
    assert spec_from_json(lw.to_json()) == lw and spec_from_json(spec.to_json()) == spec
    assert lw.key() != lw.replace(n=101).key()
    with pytest.raises(ValueError, match="unknown"):
        S.LayerwiseSpec.from_dict({"d": 4, "n": 10, "m1": 3, "m2": 3, "lr": 1.0})
    with pytest.raises(ValueError, match="xi1"):
        S.LayerwiseSpec(d=4, n=10, m1=3, m2=3, xi1=-1.0)


def test_adam_is_the_shared_optimiser_with_the_cosine_schedule():
    """train_adam = simulations.optim.Adam steps with η_t = η (1 + cos(π t/T))/2 on the full batch."""
    d, m1, m2, n, T, lr = 3, 9, 8, 200, 4, 1e-2
    res = S.train_adam(d, n, 4, m1=m1, m2=m2, n_test=256, max_steps=T, lr=lr, return_network=True)
    net = S.init_network(d, m1, m2, 4, mup=True)
    X, y, _ = S.make_problem(d, 4).batch("train", n)
    m = {k: np.zeros_like(v) for k, v in net.tensors().items()}
    v = {k: np.zeros_like(w) for k, w in net.tensors().items()}
    for t in range(1, T + 1):
        _, G = S.loss_and_gradient(net, X, y)
        lr_t = 0.5 * lr * (1 + math.cos(math.pi * (t - 1) / T))
        for k, w in net.tensors().items():
            m[k] = 0.9 * m[k] + 0.1 * G[k]
            v[k] = 0.999 * v[k] + 0.001 * G[k] ** 2
            w -= lr_t * (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
    for k, w in net.tensors().items():
        np.testing.assert_allclose(res.network.tensors()[k], w, rtol=1e-9, atol=1e-12, err_msg=k)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, name", [
    (lambda: S.layerwise(0, 100, 10, 10), "d"),
    (lambda: S.layerwise(4, -1, 10, 10), "n"),
    (lambda: S.layerwise(4, 100, 0, 10), "m1"),
    (lambda: S.layerwise(4, 100, 10, 2.5), "m2"),
    (lambda: S.layerwise(4, 100, 10, 10, n_test=0), "n_test"),
    (lambda: S.layerwise(4, 100, 10, 10, stage1="adam"), "stage1"),
    (lambda: S.layerwise(4, 100, 10, 10, bias="cauchy"), "bias"),
    (lambda: S.layerwise(4, 100, 10, 10, xi1=-1.0), "xi1"),
    (lambda: S.layerwise(4, 100, 10, 10, dtype="int32"), "dtype"),
    (lambda: S.layerwise(4, 100, 10, 10, chunk=0), "chunk"),
    (lambda: S.train_adam(4, 100, lr=0.0), "lr"),
    (lambda: S.train_adam(4, 100, max_steps=0), "max_steps"),
    (lambda: S.train_adam(4, 100, betas=(0.9, 1.0)), "betas"),
    (lambda: S.train_adam(4, 100, schedule="linear"), "schedule"),
    (lambda: S.train_adam(4, 100, batch_size=-3), "batch_size"),
    (lambda: S.init_network(4, 5, 5, v_init="cube"), "v_init"),
    (lambda: S.make_problem(4).batch("val", 10), "kind"),
    (lambda: S.forward(S.init_network(4, 5, 5), np.ones((3, 5))), "X"),
    (lambda: S.loss_and_gradient(S.init_network(4, 5, 5), np.ones((3, 4)), np.ones(2)), "y"),
])
def test_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_simulations_imports_only_the_shared_base_from_asymptotics():
    """The simulator sees of asymptotics only the shared base (functions, conventions, validation)."""
    import ast
    import inspect

    base = {"functions", "conventions", "validation"}
    tree = ast.parse(inspect.getsource(S))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("asymptotics"):
            if node.module == "asymptotics":
                assert {a.name for a in node.names} <= base
            else:
                assert node.module.split(".", 1)[1] in base, node.module
        if isinstance(node, ast.Import):
            assert all(a.name.split(".", 1)[0] != "asymptotics" or a.name.split(".", 1)[-1] in base
                       for a in node.names)


def _zero_predictor_losses(d, seeds, n_test):
    """Per seed (own test set): the plain Monte-Carlo loss mean(h²) of the zero predictor f = 0
    (true loss E h² = 1) and the evaluated metrics of f = a p (a = E[hp]/E[p²], exact loss known)."""
    from asymptotics.hierarchical import p_moments

    m = p_moments(d, 4)
    C = S.normalising_constant(d)
    a = C * float(m[4]) / float(m[2])
    truth = 1.0 - C * C * float(m[4]) ** 2 / float(m[2])
    plain, dec, zero = [], [], []
    for s in range(seeds):
        _, h, p = S.make_problem(d, s).batch("test", n_test)
        plain.append(float(np.mean(h * h)))
        dec.append(S._metrics(a * p - h, p, p, h, d).test_loss_dec)
        zero.append(S._metrics(-h, p, p, h, d))
    return np.array(plain), np.array(dec), zero, truth


@pytest.mark.parametrize("d", [8, 16])
def test_decomposed_loss_is_honest_and_the_median_of_monte_carlo_losses_is_biased_low(d):
    """The loss estimator of the experiments (1 + mean(f² − 2hf) per seed, mean over seeds ± SE over
    seeds) contains the true loss; the median over seeds of plain Monte-Carlo losses does not.

    Zero predictor: the decomposed loss is exactly 1 (SE 0); the plain mean over seeds ± its SE over
    seeds also contains 1 (honest, only noisier). f = a p: the exact loss 1 − E[hp]²/E[p²] lies
    within 3 SE of the seed mean. The wrong estimator — the median over 200 seeds of plain
    Monte-Carlo means of (h − f)² with f = 0, with its seeded bootstrap SE — is ≈ 0.56 (d = 8) and
    ≈ 0.66 (d = 16), more than 3 SE below 1: the heavy tail (E h⁴ ≈ 2·10⁴ at d = 16) makes
    most test sets miss the rare large values of h², so the typical MC mean is below its expectation."""
    from asymptotics.hierarchical_measure import seed_mean

    seeds, n_test = 200, 1 << 12
    plain, dec, zero, truth = _zero_predictor_losses(d, seeds, n_test)
    assert all(z.test_loss_dec == pytest.approx(1.0, abs=1e-12) and z.test_loss_dec_se < 1e-10 for z in zero)
    m, se = seed_mean(plain[:, None])
    assert abs(m[0] - 1.0) < 3 * se[0]                          # the mean over seeds: honest
    m, se = seed_mean(dec[:, None])
    assert abs(m[0] - truth) < 3 * se[0] and se[0] < 0.02       # the decomposed loss: honest and tight
    rng = np.random.default_rng(0)
    med = float(np.median(plain))
    med_se = float(np.median(plain[rng.integers(0, seeds, (1000, seeds))], axis=1).std(ddof=1))
    assert 1.0 - med > 3 * med_se, (med, med_se)                # the median: biased low, fails

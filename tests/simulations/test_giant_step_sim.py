"""Tests of simulations.giant_step: Algorithm 1 (giant first-layer steps, ridge readout)."""
import math

import numpy as np
import pytest

from asymptotics import functions
from asymptotics.conventions import lam_from_scaled_features
from simulations.giant_step import (
    RULES,
    TARGETS,
    GiantStepSpec,
    first_layer_gradient,
    giant_step_task,
    lam_from_paper,
    learning_rate,
    make_problem,
    make_target,
    simulate,
)
from simulations.ridge import ridge_path
from simulations.spec import spec_from_json
from simulations.sweep import run_sweep


def _loss(W, a, Z, y, act):
    p = W.shape[0]
    f = act.numpy(Z @ W.T) @ a / np.sqrt(p)
    return 0.5 * np.mean((y - f) ** 2)


# --------------------------------------------------------------------------- gradient
def _minus_fd_gradient(W, a, Z, y, act, h):
    """−∇_W L by central differences (G = −∇L is what the simulator returns)."""
    fd = np.empty_like(W)
    for j in range(W.shape[0]):
        for i in range(W.shape[1]):
            E = np.zeros_like(W)
            E[j, i] = h
            fd[j, i] = -(_loss(W + E, a, Z, y, act) - _loss(W - E, a, Z, y, act)) / (2 * h)
    return fd


@pytest.mark.parametrize("name", ["tanh", "erf", "softplus"])
def test_gradient_matches_finite_differences(name):
    rng = np.random.default_rng(1)
    p, d, n = 5, 4, 37
    act = functions.get(name)
    W = rng.standard_normal((p, d)) / np.sqrt(d)
    a = rng.standard_normal(p)
    Z = rng.standard_normal((n, d))
    y = np.sin(Z[:, 0]) + Z[:, 1]
    # small blocks and chunks: the accumulation over blocks and chunks is exercised
    G = first_layer_gradient(W, a, Z, y, name, block=8, chunk=16)
    fd = _minus_fd_gradient(W, a, Z, y, act, 1e-6)
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-9)
    # float32 compute: same gradient to single precision
    G32 = first_layer_gradient(W, a, Z, y, name, dtype="float32", block=8, chunk=16)
    np.testing.assert_allclose(G32, G, rtol=2e-4, atol=2e-6)


def test_gradient_relu_matches_finite_differences_away_from_kinks():
    rng = np.random.default_rng(2)
    p, d, n = 4, 3, 25
    act = functions.get("relu")
    W = rng.standard_normal((p, d))
    a = rng.standard_normal(p)
    Z = rng.standard_normal((n, d))
    y = Z[:, 0] ** 2
    assert np.abs(Z @ W.T).min() > 1e-4  # no pre-activation within h of the kink
    G = first_layer_gradient(W, a, Z, y, "relu")
    fd = _minus_fd_gradient(W, a, Z, y, act, 1e-7)
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- reference
def _reference(problem, n, steps, eta, lam, n_test, preprocess, reuse):
    """Algorithm 1 written out with whole in-memory batches and np.linalg.solve."""
    act = problem.activation.numpy
    p = problem.p
    W = problem.W0.copy()
    a = problem.a0
    A = B = None
    Z = y = None
    for t in range(steps):
        Z, y = problem.batch("gd", n, t)
        yt = y
        if preprocess:
            A, B = y.mean(), Z.T @ y / n
            yt = y - A - Z @ B
        H = Z @ W.T
        r = yt - act(H) @ a / np.sqrt(p)
        R = np.outer(r, a / np.sqrt(p)) * problem.activation.numpy_derivative(H)
        W = W + eta * (R.T @ Z / n)
    if not (reuse and steps >= 1):
        Z, y = problem.batch("ridge", n)
        if preprocess and steps == 0:
            A, B = y.mean(), Z.T @ y / n
    yt = y - A - Z @ B if preprocess else y
    F = act(Z @ W.T)
    theta = np.linalg.solve(F.T @ F / n + lam * np.eye(p), F.T @ yt / n)
    Zt, ytest = problem.batch("test", n_test)
    pred = act(Zt @ W.T) @ theta + ((A + Zt @ B) if preprocess else 0.0)
    return np.mean((ytest - pred) ** 2), W, theta


@pytest.mark.parametrize("steps, preprocess, reuse", [(0, False, False), (1, True, False),
                                                      (1, True, True), (2, False, False),
                                                      (2, True, True), (0, True, False)])
def test_matches_in_memory_reference(steps, preprocess, reuse):
    kw = dict(target="T2", activation="tanh", d=12, p=20, seed=5, a_init="pm1")
    n, n_test, eta, lam = 150, 400, 30.0, 0.05
    res = simulate(n=n, steps=steps, eta=eta, lam=lam, n_test=n_test, preprocess=preprocess,
                   reuse_batch=reuse, block=32, chunk=64, return_weights=True, **kw)
    problem = make_problem(kw["target"], kw["activation"], kw["d"], kw["p"], seed=kw["seed"],
                           a_init="pm1", block=32)
    err, W, theta = _reference(problem, n, steps, eta, lam, n_test, preprocess, reuse)
    np.testing.assert_allclose(res.W, W, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.theta, theta, rtol=1e-8, atol=1e-10)
    assert res.test_error == pytest.approx(err, rel=1e-9)
    assert len(res.overlaps) == steps + 1


def test_steps_zero_is_random_features_ridge():
    d, p, n, n_test = 16, 24, 90, 300
    lams = [0.0, 0.01, 0.3]
    res = simulate("erf(h1) + h1*h2", "relu", d, p, n, 0, None, lams, n_test, seed=3,
                   return_weights=True, block=64)
    problem = make_problem("erf(h1) + h1*h2", "relu", d, p, seed=3, block=64)
    np.testing.assert_array_equal(res.W, problem.W0)  # no step taken
    Z, y = problem.batch("ridge", n)
    F = np.maximum(Z @ problem.W0.T, 0.0)
    path = ridge_path(F, y, lams)
    np.testing.assert_allclose(res.theta, path.theta, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.train_error, path.train_error, rtol=1e-8, atol=1e-12)
    Zt, yt = problem.batch("test", n_test)
    Ft = np.maximum(Zt @ problem.W0.T, 0.0)
    test = np.mean((yt[:, None] - Ft @ path.theta) ** 2, axis=0)
    np.testing.assert_allclose(res.test_error, test, rtol=1e-8)
    assert res.eta is None and len(res.overlaps) == 1
    # the learning rate is irrelevant without steps
    other = simulate("erf(h1) + h1*h2", "relu", d, p, n, 0, 123.0, lams, n_test, seed=3, block=64)
    np.testing.assert_array_equal(other.test_error, res.test_error)


# --------------------------------------------------------------------------- chunking / seeds
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_identical_for_any_chunk_size(dtype):
    kw = dict(target="T2", activation="tanh", d=24, p=40, n=300, steps=2, eta="sqrt",
              lam=[0.0, 0.01, 0.1], n_test=500, preprocess=True, noise_var=0.1, block=32,
              return_weights=True, dtype=dtype)
    ref = simulate(**kw, chunk=32, threads=1)
    for chunk, threads in ((96, 1), (100, 3), (10**6, 2)):
        res = simulate(**kw, chunk=chunk, threads=threads)
        np.testing.assert_array_equal(res.W, ref.W)
        np.testing.assert_array_equal(res.theta, ref.theta)
        np.testing.assert_array_equal(res.test_error, ref.test_error)
        np.testing.assert_array_equal(res.train_error, ref.train_error)


def test_float32_close_to_float64():
    kw = dict(target="T1", activation="relu", d=32, p=64, n=512, steps=1, eta="notebook",
              lam=64 / 512, n_test=2000, seed=4)
    r64 = simulate(**kw)
    r32 = simulate(**kw, dtype="float32")
    assert r32.test_error == pytest.approx(r64.test_error, rel=1e-4)
    assert r32.mean_cosines[1] == pytest.approx(r64.mean_cosines[1], rel=1e-4)


def test_reproducible_with_seed():
    kw = dict(target="T3", activation="relu", d=20, p=30, n=100, steps=2, eta="const",
              lam=0.1, n_test=200, a_init="pm1", return_weights=True)
    a = simulate(**kw, seed=11)
    b = simulate(**kw, seed=11)
    c = simulate(**kw, seed=12)
    assert a.test_error == b.test_error
    np.testing.assert_array_equal(a.W, b.W)
    assert a.test_error != c.test_error
    assert not np.array_equal(a.W_star, c.W_star)
    ss = np.random.SeedSequence(7)
    assert simulate(**kw, seed=ss).test_error == simulate(**kw, seed=np.random.SeedSequence(7)).test_error


def test_no_test_labels_in_training():
    kw = dict(target="T1", activation="relu", d=16, p=32, n=200, steps=1, eta="notebook",
              lam=0.1, preprocess=True, seed=2)
    a = simulate(**kw, n_test=300)
    b = simulate(**kw, n_test=700)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.train_error == b.train_error
    assert a.linear_part[0] == b.linear_part[0]
    assert a.test_error != b.test_error


# --------------------------------------------------------------------------- physics
def test_one_giant_step_learns_the_direction():
    d, p, n = 64, 128, 256
    target = "tanh(h1)"  # single index, mu_1 = 0.606
    cos0, cos1, err0, err1 = [], [], [], []
    for seed in range(3):
        common = dict(target=target, activation="relu", d=d, p=p, n=n, lam=p / n,
                      n_test=4000, seed=seed)
        rf = simulate(steps=0, eta=None, **common)
        gd = simulate(steps=1, eta="notebook", **common)
        cos0.append(gd.mean_cosines[0])
        cos1.append(gd.mean_cosines[1])
        err0.append(rf.test_error)
        err1.append(gd.test_error)
    random_level = math.sqrt(1 / d)
    assert np.mean(cos0) == pytest.approx(random_level, rel=0.3)
    # one-step cosine (docs/theory/giant_step.md, a = +-1/sqrt p, eta~ = 14): cos ~ 0.79; gauss a0
    # is a bit lower
    assert np.mean(cos1) > 5 * random_level
    assert np.mean(err1) < 0.7 * np.mean(err0)
    assert gd.gradient_mean_cosines[0] > 3 * random_level
    # the learned direction is theta_1: the overlap matrix concentrates on it
    sub = gd.overlaps[1].subspace
    assert sub.shape == (1, 1) and sub[0, 0] == pytest.approx(np.mean(gd.overlaps[1].cosines ** 2))


def test_t1_learning_curve_point_agrees_with_the_reference_run():
    """Reference run of the paper's notebook setting (independent numpy implementation): T1,
    gauss a0, eta = 10 sqrt(np), d = 64, p = 128, n = 1024, T = 1, lambda_P = 1:
    E_test = 0.2222 +- 0.0127 over 10 seeds; mean row cosine 0.861."""
    errs, cos = [], []
    for seed in range(6):
        r = simulate("T1", "relu", 64, 128, 1024, 1, "notebook", lam_from_scaled_features(1.0, 128, 1024),
                     10000, seed=seed, dtype="float32")
        errs.append(r.test_error)
        cos.append(r.mean_cosines[1])
    se = math.hypot(0.0127 / math.sqrt(10), np.std(errs) / math.sqrt(len(errs)))
    assert abs(np.mean(errs) - 0.2222) < 4 * se
    assert np.mean(cos) == pytest.approx(0.861, abs=0.05)


# --------------------------------------------------------------------------- targets / rules
def test_string_and_callable_targets_agree():
    def t2(h):
        return ((h[:, 0] + h[:, 0] ** 2) + (h[:, 1] - h[:, 1] ** 2)) / 2

    kw = dict(activation="relu", d=10, p=16, n=64, steps=1, eta=20.0, lam=0.1, n_test=100, seed=1)
    a = simulate("T2", **kw)
    b = simulate(t2, k=2, **kw)
    c = simulate("(h1 + h1**2 + h2 - h2**2)/2", **kw)
    assert a.test_error == pytest.approx(b.test_error, rel=1e-12)
    assert a.test_error == pytest.approx(c.test_error, rel=1e-12)


def test_target_parsing_registered_functions():
    tf = make_target("relu(h1) + he2(h2) + sign(h3)")
    h = np.array([[-1.0, 2.0, 0.5], [0.5, 0.0, -2.0]])
    np.testing.assert_allclose(tf(h), [0.0 + 3.0 + 1.0, 0.5 - 1.0 - 1.0])
    assert tf.k == 3
    assert make_target("h2", k=4).k == 4
    for name, text in TARGETS.items():
        assert make_target(name).k == 2


def test_learning_rate_rules():
    assert learning_rate("notebook", 262144, 512, 1024) == pytest.approx(10 * math.sqrt(262144 * 1024))
    assert learning_rate("const", 100, 10, 64) == 2 * 64
    assert learning_rate("sqrt", 400, 100, 64, c=3) == 3 * 64 * 2
    assert set(RULES) == {"const", "sqrt", "notebook"}
    r = simulate("h1", "relu", 8, 16, 32, 1, "sqrt", 0.1, 50, eta_c=0.5)
    assert r.eta == pytest.approx(0.5 * 16 * 2)
    with pytest.warns(DeprecationWarning, match="lam_from_scaled_features"):
        assert lam_from_paper(1.0, 1024, 4096) == 0.25


def test_pm1_forced_signs():
    pr = make_problem("h1", "relu", 8, 50, a_init="pm1", forced_signs=20)
    assert np.all(pr.a0[:20] > 0) and np.all(pr.a0[20:40] < 0)
    np.testing.assert_allclose(np.abs(pr.a0), 1 / np.sqrt(50))
    W = make_problem("h1", "relu", 8, 5, w_init="sphere").W0
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), 1.0)


def test_sweep_task():
    params = [GiantStepSpec(target="T1", activation="relu", d=16, p=32, n=64, steps=2, eta="sqrt",
                            lam=lam_from_scaled_features(1.0, 32, 64), n_test=100, a_init="gauss", rows=True)]
    out = run_sweep(giant_step_task, params, 2, experiment="gs-test", quiet=True)
    r0, r1 = out.results
    assert r0["test_error"].shape == () and r0["mean_cosine"].shape == (3,)
    assert r0["row_overlaps"].shape == (3, 32, 2) and r0["gradient_overlaps"].shape == (2, 32, 2)
    assert r0["test_error"] != r1["test_error"]
    # the task is simulate() with lam = lambda_P p / n and the task's seed
    seed = out.tasks[0]
    from simulations.sweep import task_seed
    ref = simulate("T1", "relu", 16, 32, 64, 2, "sqrt", 32 / 64, 100,
                   seed=task_seed(0, "gs-test", params[0], seed.seed_index))
    assert float(r0["test_error"]) == ref.test_error


def test_sweep_task_accepts_the_old_dict_form():
    """The dict of earlier releases (with the deprecated ``lam_paper`` = the paper's lambda_P) is
    the same task as its spec."""
    old = {"target": "T1", "activation": "relu", "d": 16, "p": 32, "n": 64, "steps": 2, "eta": "sqrt",
           "lam_paper": 1.0, "n_test": 100, "a_init": "gauss", "rows": True}
    seed = np.random.SeedSequence(3)
    with pytest.warns(DeprecationWarning, match="lam_paper"):
        a = giant_step_task(old, seed)
    spec = GiantStepSpec(**{**{k: v for k, v in old.items() if k != "lam_paper"}, "lam": 0.5})
    b = giant_step_task(spec, seed)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    with pytest.warns(DeprecationWarning):
        assert GiantStepSpec.from_dict(old) == spec
    with pytest.raises(ValueError, match="exactly one"):
        GiantStepSpec.from_dict({**old, "lam": 0.5})
    with pytest.raises(ValueError, match="colour"):
        giant_step_task({**spec.to_dict(), "colour": 1}, seed)


def test_spec_validates_once_and_round_trips():
    spec = GiantStepSpec(target="h1 + h2", activation="relu", d=np.int64(8), p=12, n=20, steps=1, eta=5,
                         lam=np.array([0.0, 0.1]), n_test=10, W_star=np.eye(2, 8), dtype=np.float32)
    assert spec.d == 8 and type(spec.d) is int and spec.eta == 5.0 and spec.lam == (0.0, 0.1)
    assert spec.W_star == tuple(tuple(r) for r in np.eye(2, 8).tolist()) and spec.dtype == "float32"
    assert spec_from_json(spec.to_json()) == spec
    assert spec.replace(n=21).key() != spec.key()
    res = simulate(seed=1, **spec.arguments())
    assert res.test_error.shape == (2,)
    for change, match in [({"eta": None}, "eta"), ({"n": 0}, "n"), ({"target": "h3", "k": 2}, "k"),
                          ({"activation": "nope"}, "activation"), ({"dtype": "float16"}, "dtype"),
                          ({"reuse_batch": True, "n_ridge": 30}, "n_ridge"), ({"lam": -1.0}, "lam")]:
        with pytest.raises(ValueError, match=match):
            spec.replace(**change)


# --------------------------------------------------------------------------- bad inputs
BASE = dict(target="T1", activation="relu", d=8, p=12, n=20, steps=1, eta=5.0, lam=0.1, n_test=10)


@pytest.mark.parametrize("change, match", [
    ({"eta": 0.0}, "eta"),
    ({"eta": -1.0}, "eta"),
    ({"eta": None}, "eta"),
    ({"eta": "bogus"}, "eta"),
    ({"eta": float("nan")}, "eta"),
    ({"steps": -1}, "steps"),
    ({"steps": 1.5}, "steps"),
    ({"d": 0}, "d"),
    ({"n": 0}, "n"),
    ({"n_test": -3}, "n_test"),
    ({"lam": -0.1}, "lam"),
    ({"lam": [[0.1]]}, "lam"),
    ({"a_init": np.ones(13)}, "a_init"),
    ({"a_init": "uniform"}, "a_init"),
    ({"w_init": np.ones((12, 9))}, "w_init"),
    ({"W_star": np.eye(2, 9)}, "W_star"),
    ({"W_star": np.eye(3, 8), "k": 2}, "W_star"),
    ({"W_star": 2 * np.eye(2, 8)}, "W_star"),
    ({"target": "x1 + h1"}, "target"),
    ({"target": "foo(h1)"}, "target"),
    ({"target": "h1 +"}, "target"),
    ({"target": lambda h: h[:, 0]}, "k"),
    ({"target": "h1", "k": 0}, "k"),
    ({"target": "h3", "k": 2}, "k"),
    ({"target": "h9", "d": 8}, "k"),
    ({"activation": "nope"}, "activation"),
    ({"reuse_batch": True, "n_ridge": 30}, "n_ridge"),
    ({"dtype": "float16"}, "dtype"),
    ({"noise_var": -1.0}, "noise_var"),
    ({"prep_estimate": "test"}, "prep_estimate"),
    ({"chunk": 0}, "chunk"),
])
def test_bad_inputs(change, match):
    with pytest.raises(ValueError, match=match):
        simulate(**{**BASE, **change})


def test_bad_callable_target_shape_and_unknown_option():
    with pytest.raises(ValueError, match="target"):
        simulate(**{**BASE, "target": lambda h: h, "k": 2})
    with pytest.raises(TypeError, match="option"):
        simulate(**BASE, colour="red")
    with pytest.raises(ValueError, match="Z"):
        first_layer_gradient(np.ones((3, 2)), np.ones(3), np.ones((5, 4)), np.ones(5), "relu")
    with pytest.raises(ValueError, match="a"):
        first_layer_gradient(np.ones((3, 2)), np.ones(4), np.ones((5, 2)), np.ones(5), "relu")
    with pytest.raises(ValueError, match="y"):
        first_layer_gradient(np.ones((3, 2)), np.ones(3), np.ones((5, 2)), np.ones(4), "relu")
    # eta may be anything when no step is taken
    assert simulate(**{**BASE, "steps": 0, "eta": 0.0}).eta is None

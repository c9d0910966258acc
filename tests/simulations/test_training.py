"""Adam-trained MLPs: gradients, the Adam update, training, snapshots, reproducibility."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.training import Adam, init_mlp, loss_and_gradients, train


def _data(n=64, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.tanh(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]


@pytest.mark.parametrize("acts", [["tanh", "tanh"], ["relu"], ["erf", "sigmoid", "tanh"]])
def test_gradients_match_finite_differences(acts):
    X, y = _data()
    mlp = init_mlp(5, [7] * len(acts), acts, seed=3, init="gauss")
    loss, grads = loss_and_gradients(mlp, X, y)
    rng = np.random.default_rng(1)
    for p, g in zip(mlp.parameters(), grads):
        for _ in range(4):
            idx = tuple(rng.integers(s) for s in p.shape)
            old = p[idx]
            h = 1e-6
            p[idx] = old + h
            up = loss_and_gradients(mlp, X, y)[0]
            p[idx] = old - h
            down = loss_and_gradients(mlp, X, y)[0]
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)
    assert loss == pytest.approx(np.mean((mlp.predict(X) - y) ** 2), rel=1e-12)


def _adam_reference(w, grads, lr, b1, b2, eps, wd, decoupled):
    """Adam written out step by step in plain Python floats (Kingma & Ba, Algorithm 1; AdamW)."""
    w = list(map(float, w))
    m = [0.0] * len(w)
    v = [0.0] * len(w)
    for t, g in enumerate(grads, start=1):
        for i in range(len(w)):
            gi = float(g[i]) + (0.0 if decoupled else wd * w[i])
            if decoupled:
                w[i] = w[i] * (1 - lr * wd)
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            mhat = m[i] / (1 - b1 ** t)
            vhat = v[i] / (1 - b2 ** t)
            w[i] -= lr * mhat / (math.sqrt(vhat) + eps)
    return np.array(w)


@pytest.mark.parametrize("decoupled", [True, False])
def test_adam_matches_hand_computed_reference(decoupled):
    w0 = np.array([0.5, -1.0, 2.0])
    grads = [np.array([0.1, -0.2, 0.3]), np.array([-0.4, 0.0, 1.0]), np.array([0.05, 0.5, -2.0])]
    w = w0.copy()
    opt = Adam([w], lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1, decoupled=decoupled)
    for g in grads:
        opt.step([g])
    np.testing.assert_allclose(w, _adam_reference(w0, grads, 0.01, 0.9, 0.99, 1e-8, 0.1, decoupled), rtol=1e-14)
    # first step without decay: every coordinate moves by exactly lr·sign(g) (up to eps)
    w = w0.copy()
    Adam([w], lr=0.01).step([grads[0]])
    np.testing.assert_allclose(w, w0 - 0.01 * np.sign(grads[0]), rtol=1e-6)


def _adam_numpy(w, grads, lrs, b1, b2, eps, wd, decoupled):
    """The same algorithm on whole arrays in numpy (float64), independent of the Numba kernels."""
    w = np.array(w, dtype=np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        g = g + (0.0 if decoupled else wd * w)
        if decoupled:
            w = w * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


@pytest.mark.parametrize("size", [(1 << 15) - 1, 1 << 15, (1 << 16) + 3])  # serial, parallel from 2**15
@pytest.mark.parametrize("decoupled", [True, False])
def test_adam_whole_array_matches_numpy_on_both_kernels(size, decoupled):
    """Every element of arrays around the parallel threshold (2**15), with coupled L2 (decoupled=False)
    and AdamW, over steps with a changing learning rate, equals the numpy reference."""
    rng = np.random.default_rng(size)
    w0 = rng.standard_normal(size)
    grads = [rng.standard_normal(size) * s for s in (1.0, 0.3, 2.0, 0.01)]
    lrs = [1e-2, 5e-3, 2e-2, 1e-3]
    w = w0.copy()
    opt = Adam([w], lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.3, decoupled=decoupled)
    for g, lr in zip(grads, lrs):
        opt.step([g], lr=lr)
    ref = _adam_numpy(w0, grads, lrs, 0.9, 0.99, 1e-8, 0.3, decoupled)
    np.testing.assert_allclose(w, ref, rtol=1e-13, atol=1e-15)
    # the weight decay matters here (a kernel that dropped it would be far off)
    assert np.max(np.abs(_adam_numpy(w0, grads, lrs, 0.9, 0.99, 1e-8, 0.0, True) - ref)) > 1e-4


@pytest.mark.parametrize("decoupled", [True, False])
def test_adam_serial_and_parallel_kernels_agree_element_by_element(decoupled):
    """The two compiled loops on the same 2**16-element state: identical results, every element
    (the parallel loop must cover the whole array and update m, v, w like the serial one)."""
    from simulations import optim

    rng = np.random.default_rng(7)
    n = 1 << 16
    state = [rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n) * 0.1,
             rng.random(n) * 0.1]  # w, g, m, v
    args = (1e-2, 0.9, 0.99, 1 / (1 - 0.9**3), 1 / (1 - 0.99**3), 1e-8,
            1.0 if not decoupled else 1 - 1e-2 * 0.3, 0.3 if not decoupled else 0.0)
    a = [x.copy() for x in state]
    b = [x.copy() for x in state]
    optim._adam_serial(*a, *args)
    optim._adam_parallel(*b, *args)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # w, m and v changed in every element, g is read only
    assert np.all(a[0] != state[0]) and np.all(a[2] != state[2]) and np.all(a[3] != state[3])
    np.testing.assert_array_equal(a[1], state[1])


@settings(max_examples=15, deadline=None)
@given(batch=st.sampled_from([None, 8, 25]), lr=st.floats(2e-3, 1e-2))
def test_training_decreases_the_loss(batch, lr):
    X, y = _data(n=100)
    mlp = init_mlp(5, [16, 16], "tanh", seed=1, init="gauss")
    before = loss_and_gradients(mlp, X, y)[0]
    res = train(mlp, X, y, epochs=100, lr=lr, batch_size=batch, seed=2)
    after = loss_and_gradients(mlp, X, y)[0]
    assert after < 0.5 * before
    assert res.loss_history[-1] < res.loss_history[0]


def test_snapshots_reproducible_and_at_the_right_steps():
    X, y = _data(n=50)
    runs = []
    for _ in range(2):
        mlp = init_mlp(5, [8], "tanh", seed=4)
        init = mlp.copy()
        runs.append(train(mlp, X, y, epochs=10, lr=1e-2, batch_size=16, seed=9, snapshots=[0, 0.5, 10]))
    a, b = runs
    assert [s.step for s in a.snapshots] == [0, 2, 40]  # 4 batches per epoch
    np.testing.assert_array_equal(a.snapshots[0].mlp.weights[0], init.weights[0])
    for sa, sb in zip(a.snapshots, b.snapshots):
        for wa, wb in zip(sa.mlp.parameters(), sb.mlp.parameters()):
            np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.snapshots[-1].mlp.readout, a.mlp.readout)
    # another seed gives another batch order, hence other weights
    mlp = init_mlp(5, [8], "tanh", seed=4)
    c = train(mlp, X, y, epochs=10, lr=1e-2, batch_size=16, seed=10)
    assert not np.array_equal(c.mlp.readout, a.mlp.readout)


def test_float32_training_tracks_float64():
    X, y = _data(n=80)
    out = []
    for dt in ("float64", "float32"):
        mlp = init_mlp(5, [12, 12], "tanh", seed=5, dtype=dt)
        train(mlp, X, y, epochs=20, lr=1e-3, seed=1)
        out.append(mlp.predict(X))
    np.testing.assert_allclose(out[1], out[0], atol=1e-3)


def test_bad_inputs():
    X, y = _data()
    with pytest.raises(ValueError, match="widths"):
        init_mlp(5, [], "tanh")
    with pytest.raises(ValueError, match="activations"):
        init_mlp(5, [3, 3], ["tanh"])
    with pytest.raises(ValueError, match="init"):
        init_mlp(5, [3], "tanh", init="he")
    mlp = init_mlp(5, [3], "tanh")
    with pytest.raises(ValueError, match="lr"):
        Adam(mlp.parameters(), lr=-1.0)
    with pytest.raises(ValueError, match="X"):
        train(mlp, X[:, :4], y, epochs=1)
    with pytest.raises(ValueError, match="snapshots"):
        train(mlp, X, y, epochs=2, snapshots=[3])
    with pytest.raises(ValueError, match="batch_size"):
        train(mlp, X, y, epochs=1, batch_size=0)
    with pytest.raises(FloatingPointError, match="diverged"):
        train(init_mlp(5, [3], "linear"), X * 1e200, y, epochs=3, lr=1e10)


def test_snapshot_loss_is_the_training_mse_of_that_network():
    X, y = _data(n=40)
    mlp = init_mlp(5, [6], "tanh", seed=1)
    res = train(mlp, X, y, epochs=3, lr=1e-2, batch_size=16, seed=0, snapshots=[0, 1, 3])
    for snap in res.snapshots:
        assert snap.train_loss == pytest.approx(np.mean((snap.mlp.predict(X) - y) ** 2), rel=1e-12)

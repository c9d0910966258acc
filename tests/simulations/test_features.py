"""Tests of simulations.features: deep random feature maps, random weights, sample streams."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics import functions
from simulations.features import (
    SAMPLE_BLOCK,
    SampleStream,
    Teacher,
    draw_samples,
    feature_map,
    gaussian_inputs,
    iter_features,
    iter_samples,
    random_teacher,
    random_weights,
)
from simulations.rng import make_rng

EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)
# smooth / piecewise-linear activations (no jumps: a last-ulp change of a pre-activation
# must not flip the output, as sign could at 0)
SMOOTH = ["tanh", "relu", "linear", "erf", "cube"]


def _numpy_network(X, weights, acts):
    """The plain composition sigma_L(... sigma_1(X W_1^T) ... W_L^T) in numpy."""
    H = X
    for W, a in zip(weights, acts):
        H = functions.get(a).numpy(H @ W.T)
    return H


def _network(seed, widths, dtype=np.float64):
    rng = make_rng(seed)
    W = random_weights(widths, rng, dtype=dtype)
    X = gaussian_inputs(37, widths[0], rng, dtype=dtype)
    return X, W


# --------------------------------------------------------------------------- feature_map
@settings(max_examples=40, deadline=None)
@given(
    widths=st.lists(st.integers(1, 24), min_size=2, max_size=5),
    n=st.integers(1, 60),
    chunk=st.integers(1, 70),
    acts=st.lists(st.sampled_from(SMOOTH), min_size=4, max_size=4),
    seed=st.integers(0, 2**31),
)
def test_feature_map_is_the_numpy_composition(widths, n, chunk, acts, seed):
    rng = make_rng(seed)
    W = random_weights(widths, rng)
    X = gaussian_inputs(n, widths[0], rng)
    acts = acts[: len(W)]
    F = feature_map(X, W, acts, chunk=chunk)
    ref = _numpy_network(X, W, acts)
    assert F.shape == (n, widths[-1]) and F.dtype == np.float64
    # rows are computed independently; BLAS blocking and the compiled activation may
    # differ from numpy in the last bits only
    np.testing.assert_allclose(F, ref, rtol=1e-11, atol=1e-11 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunk_size_does_not_change_the_result(dtype):
    X, W = _network(3, [40, 64, 48, 56], dtype)
    X = gaussian_inputs(500, 40, make_rng(4), dtype=dtype)
    full = feature_map(X, W, "tanh", chunk=500)
    # rows are computed independently; only BLAS may round a row differently for a
    # different block height (OpenBLAS does for small blocks: ~1e-14 here), so not bitwise
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for chunk in (1, 7, 64, 128, 333, 499, 10_000):
        F = feature_map(X, W, "tanh", chunk=chunk)
        np.testing.assert_allclose(F, full, rtol=0, atol=tol)
        # streaming with the same chunk is the same computation: bitwise equal
        S = np.concatenate(list(iter_features(X, W, "tanh", chunk=chunk)))
        np.testing.assert_array_equal(S, F)
    # a chunk at least n is one block: bitwise the unchunked result
    np.testing.assert_array_equal(feature_map(X, W, "tanh"), full)


def test_feature_map_writes_into_out_and_accepts_views():
    X, W = _network(5, [10, 20, 30])
    out = np.full((37, 30), np.nan)
    res = feature_map(X, W, ["relu", "tanh"], out=out, chunk=8)
    assert res is out
    np.testing.assert_allclose(out, _numpy_network(X, W, ["relu", "tanh"]), rtol=1e-12, atol=1e-14)
    # non-contiguous and integer inputs are cast per chunk
    Xbig = np.zeros((37, 20))
    Xbig[:, ::2] = X
    np.testing.assert_array_equal(feature_map(Xbig[:, ::2], W, ["relu", "tanh"], chunk=8), out)
    Xi = np.arange(37 * 10).reshape(37, 10) % 5 - 2
    np.testing.assert_allclose(feature_map(Xi, W, "tanh"), _numpy_network(Xi.astype(float), W, ["tanh"] * 2),
                               rtol=1e-12, atol=1e-14)


def _rounding_bound(X, W, lip=1.0):
    """Bound on |F32 - F64| for a network with 1-Lipschitz activations, from the standard
    forward error of a dot product of length k, |fl(a.b) - a.b| <= gamma_k |a|.|b|, the
    rounding of the inputs/weights to float32, and a few ulps in the activation."""
    u = EPS32 / 2
    H = np.abs(X)
    err = u * H  # rounding of X
    for Wl in W:
        k = Wl.shape[1]
        gamma = (k + 2) * u / (1 - (k + 2) * u)  # dot product + rounded weights
        A = np.abs(Wl)
        pre = H @ A.T
        err = lip * (err @ A.T + gamma * pre) + 4 * u * np.minimum(pre, 1.0)
        H = np.minimum(pre, 1.0)  # |tanh| <= min(|z|, 1)
    return err


def test_float32_within_float32_rounding_of_float64():
    X, W = _network(7, [100, 200, 150, 120])
    F64 = feature_map(X, W, "tanh")
    W32 = [w.astype(np.float32) for w in W]
    F32 = feature_map(X.astype(np.float32), W32, "tanh")
    assert F32.dtype == np.float32
    bound = _rounding_bound(X, W)
    diff = np.abs(F32.astype(np.float64) - F64)
    assert np.all(diff <= bound)
    # and float32 is really float32: it differs from float64 (the test above can fail)
    assert diff.max() > 10 * EPS64
    # dtype=float32 on float64 inputs casts: same result as casting by hand
    np.testing.assert_array_equal(feature_map(X, W, "tanh", dtype=np.float32), F32)
    # mixed dtypes compute in float64
    assert feature_map(X.astype(np.float32), W, "tanh").dtype == np.float64


def test_linear_activations_give_the_product_of_the_weights():
    X, W = _network(11, [30, 50, 20, 40])
    F = feature_map(X, W, ["linear"] * 3, chunk=X.shape[0])
    # the same GEMMs in the same order: bitwise
    np.testing.assert_array_equal(F, X @ W[0].T @ W[1].T @ W[2].T)
    # and X (W3 W2 W1)^T up to the reassociation rounding
    P = W[2] @ W[1] @ W[0]
    ref = X @ P.T
    scale = np.abs(X) @ (np.abs(W[2]) @ np.abs(W[1]) @ np.abs(W[0])).T
    assert np.all(np.abs(F - ref) <= 4 * 60 * EPS64 * scale)


# --------------------------------------------------------------------------- random draws
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_random_weights_shapes_scaling_and_row_norms(dtype):
    widths = [300, 400, 200]
    W = random_weights(widths, make_rng(0), dtype=dtype)
    assert [w.shape for w in W] == [(400, 300), (200, 400)]
    assert all(w.dtype == dtype and w.flags.c_contiguous for w in W)
    for w, fan_in in zip(W, widths[:-1]):
        r2 = np.sum(w.astype(np.float64) ** 2, axis=1)  # rows ~ N(0, I/fan_in): E||row||^2 = 1
        se = r2.std(ddof=1) / np.sqrt(r2.size)
        assert abs(r2.mean() - 1.0) <= 5 * se
        assert se == pytest.approx(np.sqrt(2 / fan_in / r2.size), rel=0.2)  # chi^2 variance
        # entries have variance 1/fan_in
        assert w.astype(np.float64).var() * fan_in == pytest.approx(1.0, abs=5 * np.sqrt(2 / w.size))
    # float32 weights are the float64 draw rounded
    W64 = random_weights(widths, make_rng(0))
    for a, b in zip(W, W64):
        np.testing.assert_array_equal(a, b.astype(dtype))


def test_random_weights_with_row_covariance():
    d, p = 6, 40_000
    A = make_rng(1).standard_normal((d, d))
    C = A @ A.T / d + np.diag(np.arange(1, d + 1))
    (W,) = random_weights([d, p], make_rng(2), covariances=[C])
    # rows are i.i.d. N(0, C/d): E[W^T W] d / p = C, with SE of entry (i, j)
    # sqrt((C_ii C_jj + C_ij^2)/p)
    est = W.T @ W * d / p
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / p)
    assert np.all(np.abs(est - C) <= 5 * se)
    r2 = np.sum(W**2, axis=1)
    assert abs(r2.mean() - np.trace(C) / d) <= 5 * r2.std(ddof=1) / np.sqrt(p)


def test_gaussian_inputs_covariance():
    d, n = 5, 100_000
    A = make_rng(3).standard_normal((d, d))
    C = A @ A.T
    C[:, 0] = C[0, :] = 0.0  # singular covariance is allowed
    X = gaussian_inputs(n, d, make_rng(4), covariance=C)
    assert np.all(X[:, 0] == 0)
    est = X.T @ X / n
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    assert np.all(np.abs(est - C) <= 5 * se + 1e-12)
    X32 = gaussian_inputs(n, d, make_rng(4), covariance=C, dtype=np.float32)
    np.testing.assert_array_equal(X32, X.astype(np.float32))


# --------------------------------------------------------------------------- sample streams
def _student_teacher(seed, d=24, widths=(32, 16), k=12):
    rng = make_rng(seed)
    W = random_weights([d, *widths], rng)
    T = random_teacher([d, k], "erf", rng, noise=0.3)
    return W, T


@settings(max_examples=10, deadline=None)
@given(chunk=st.integers(1, 2 * SAMPLE_BLOCK + 5), seed=st.integers(0, 2**31))
def test_samples_do_not_depend_on_the_chunk_size(chunk, seed):
    W, T = _student_teacher(seed)
    n = SAMPLE_BLOCK + 300  # spans a block boundary
    ref = draw_samples(n, W, "tanh", make_rng(seed), teacher=T)
    rng = make_rng(seed)
    parts = list(iter_samples(n, W, "tanh", rng, teacher=T, chunk=chunk))
    assert [c.start for c in parts] == list(range(0, n, chunk))
    after = rng.integers(2**62)  # the stream takes nothing from rng (it spawns a child seed)
    rng2 = make_rng(seed)
    SampleStream(W, "tanh", rng2, teacher=T)
    assert after == rng2.integers(2**62)
    X = np.concatenate([c.X for c in parts])
    np.testing.assert_array_equal(X, ref.X)  # inputs are drawn per fixed block: bitwise
    for name in ("phi", "psi", "y"):
        got = np.concatenate([getattr(c, name) for c in parts])
        np.testing.assert_allclose(got, getattr(ref, name), rtol=0, atol=1e-12)


def test_stream_prefix_dtype_and_features():
    W, T = _student_teacher(8)
    long = draw_samples(2500, W, "tanh", make_rng(9), teacher=T)
    short = draw_samples(700, W, "tanh", make_rng(9), teacher=T)
    np.testing.assert_array_equal(short.X, long.X[:700])
    np.testing.assert_allclose(short.y, long.y[:700], rtol=0, atol=1e-12)
    # features are the feature maps of the drawn inputs
    np.testing.assert_allclose(long.phi, _numpy_network(long.X, W, ["tanh", "tanh"]), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(long.psi, _numpy_network(long.X, T.weights, ["erf"]), rtol=1e-12, atol=1e-13)
    # float32 stream: the same samples rounded
    s32 = draw_samples(700, W, "tanh", make_rng(9), teacher=T, dtype=np.float32)
    assert s32.X.dtype == s32.phi.dtype == s32.y.dtype == np.float32
    np.testing.assert_array_equal(s32.X, short.X.astype(np.float32))
    np.testing.assert_allclose(s32.phi, short.phi, rtol=0, atol=1e-4)


def test_labels_have_the_teacher_moments():
    """Linear teacher y = theta^T x/sqrt(d) + sigma eps: the residual y - theta^T x/sqrt(d)
    has variance sigma^2 and is uncorrelated with x; E[y^2] = |theta|^2/d + sigma^2."""
    d, n, sigma = 8, 40_000, 0.5
    rng = make_rng(12)
    W = random_weights([d, 4], rng)
    theta = rng.standard_normal(d)
    s = draw_samples(n, W, "tanh", rng, teacher=Teacher(theta, noise=sigma))
    np.testing.assert_array_equal(s.psi, s.X)
    r = s.y - s.X @ theta / np.sqrt(d)
    assert abs(r.var() - sigma**2) <= 5 * sigma**2 * np.sqrt(2 / n)
    assert np.all(np.abs(s.X.T @ r / n) <= 5 * sigma / np.sqrt(n))
    y2 = theta @ theta / d + sigma**2
    assert abs(np.mean(s.y**2) - y2) <= 5 * y2 * np.sqrt(2 / n)
    # noiseless: exactly the readout
    s0 = draw_samples(50, W, "tanh", make_rng(1), teacher=Teacher(theta))
    np.testing.assert_allclose(s0.y, s0.X @ theta / np.sqrt(d), rtol=1e-13, atol=1e-14)


# --------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_value_errors_naming_the_argument():
    X, W = _network(0, [10, 20, 5])
    with pytest.raises(ValueError, match="X"):
        feature_map(X[:, :9], W, "tanh")
    with pytest.raises(ValueError, match="X"):
        feature_map(X[0], W, "tanh")
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        feature_map(X, [W[0], W[1][:, :19]], "tanh")
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        feature_map(bad, W, "tanh")
    Wn = [W[0], W[1].copy()]
    Wn[1][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"weights\[1\] contains NaN"):
        feature_map(X, Wn, "tanh")
    with pytest.raises(ValueError, match="activations"):
        feature_map(X, W, ["tanh"])
    with pytest.raises(ValueError, match="activations"):
        feature_map(X, W, ["tanh", "tanh", "tanh"])
    with pytest.raises(ValueError, match=r"activations\[1\]"):
        feature_map(X, W, ["tanh", "no-such-activation"])
    for chunk in (0, -3, 2.5):
        with pytest.raises(ValueError, match="chunk"):
            feature_map(X, W, "tanh", chunk=chunk)
        with pytest.raises(ValueError, match="chunk"):
            iter_features(X, W, "tanh", chunk=chunk)
        with pytest.raises(ValueError, match="chunk"):
            iter_samples(10, W, "tanh", make_rng(0), chunk=chunk)
    with pytest.raises(ValueError, match="out"):
        feature_map(X, W, "tanh", out=np.empty((37, 4)))
    with pytest.raises(ValueError, match="out"):
        feature_map(X, W, "tanh", out=np.empty((37, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="out"):
        feature_map(X, W, "tanh", out=np.empty((5, 37)).T)
    with pytest.raises(ValueError, match="dtype"):
        feature_map(X, W, "tanh", dtype=np.int64)
    with pytest.raises(ValueError, match="weights"):
        feature_map(X, [], "tanh")
    with pytest.raises(ValueError, match=r"widths\[1\]"):
        random_weights([10, 0, 3], make_rng(0))
    with pytest.raises(ValueError, match="covariances"):
        random_weights([10, 3], make_rng(0), covariances=[np.eye(9)])
    with pytest.raises(ValueError, match="covariances"):
        random_weights([10, 3, 4], make_rng(0), covariances=[None])
    with pytest.raises(ValueError, match="covariance"):
        gaussian_inputs(5, 2, make_rng(0), covariance=np.array([[1.0, 2.0], [2.0, 1.0]]))  # not PSD
    with pytest.raises(ValueError, match="n"):
        gaussian_inputs(0, 2, make_rng(0))
    with pytest.raises(ValueError, match="theta"):
        Teacher(np.ones(4), weights=(W[0],), activations="tanh")
    with pytest.raises(ValueError, match="noise"):
        Teacher(np.ones(4), noise=-1.0)
    with pytest.raises(ValueError, match="theta"):
        SampleStream(W, "tanh", make_rng(0), teacher=Teacher(np.ones(4)))  # linear needs k = d
    with pytest.raises(ValueError, match="input_covariance"):
        SampleStream(W, "tanh", make_rng(0), input_covariance=np.eye(3))
    with pytest.raises(TypeError, match="rng"):
        random_weights([3, 3], 0)

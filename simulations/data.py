"""Synthetic data for the finite-size simulators.

Gaussian features with prescribed second moments
------------------------------------------------
The ridge theory only sees the population moments of (features, label)::

    Omega = E[phi phi^T] = U diag(w) U^T,    b = E[phi y],    E[y^2] = y2,

so the cleanest finite-size check draws jointly Gaussian (phi, y) with exactly these
moments. In the eigenbasis of Omega (``b_eigen = U^T b``)::

    phi_eig = sqrt(w) * z,                      z ~ N(0, I_p)
    y       = beta^T phi_eig + sigma_res * xi,  xi ~ N(0, 1) independent of z,
    beta_i  = b_i / w_i  on w_i > 0   (0 where w_i = 0),   i.e. beta = Omega^+ b,
    sigma_res^2 = y2 - sum_{w_i > 0} b_i^2 / w_i = y2 - b^T Omega^+ b  >= 0,

which gives E[phi_eig y] = b_eigen and E[y^2] = y2. ``sigma_res^2`` is the error of the
best linear predictor (label noise plus misspecification). A component of ``b`` on a
zero eigenvalue is impossible (Cauchy-Schwarz: b_i^2 <= w_i E[y^2]) and is rejected.

Conventions: samples are rows (F is n x p); randomness comes only from the
``numpy.random.Generator`` passed in (see :mod:`simulations.rng`).
"""
from __future__ import annotations

import gzip
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asymptotics.validation import finite_float, float_dtype, pos_int

__all__ = [
    "power_law_spectrum",
    "spectrum_from_spec",
    "check_spectrum",
    "SPECTRUM_KINDS",
    "PopulationMoments",
    "GaussianMoments",
    "validate_moments",
    "sample_gaussian_features",
    "sample_from_moments",
    "load_digits",
    "load_mnist",
    "read_idx",
    "MAX_DATA_BYTES",
    "MAX_PIXEL",
    "MNIST_FILES",
    "even_odd_labels",
    "SPLITS",
    "Splits",
    "split_and_normalise",
]

#: Eigenvalues down to ``-NEG_EIG_RTOL * max(eigenvalues)`` are round-off and clipped to 0.
NEG_EIG_RTOL = 1e-12
#: Relative tolerance on ``y2 >= b^T Omega^+ b`` (inside it, sigma_res^2 is clipped at 0).
RESIDUAL_RTOL = 1e-8


@dataclass(frozen=True)
class PopulationMoments:
    """Validated population moments of (phi, y) in the eigenbasis of Omega.

    Omega = E[phi phi^T] = U diag(w) U^T, b = E[phi y], E[y^2]: what :func:`validate_moments`
    returns and the Gaussian samplers draw from. (Not to be confused with
    :class:`asymptotics.gaussian.GaussianMoments`, the Gaussian expectations of an activation.)

    Attributes
    ----------
    eigenvalues : (p,) float64, clipped at 0 (w).
    b_eigen : (p,) float64, b in the eigenbasis.
    y2 : float, E[y^2].
    positive : (p,) bool, w_i > 0.
    explained : float, b^T Omega^+ b = sum_{w>0} b_i^2/w_i (variance of the best linear
        predictor).
    sigma_res2 : float, y2 - explained, clipped at 0 within tolerance.
    """

    eigenvalues: np.ndarray
    b_eigen: np.ndarray
    y2: float
    positive: np.ndarray
    explained: float
    sigma_res2: float

    @property
    def p(self) -> int:
        return self.eigenvalues.shape[0]

    @property
    def beta(self) -> np.ndarray:
        """Best linear predictor Omega^+ b in the eigenbasis."""
        out = np.zeros_like(self.b_eigen)
        pos = self.positive
        out[pos] = self.b_eigen[pos] / self.eigenvalues[pos]
        return out


#: Backward-compatible alias of :class:`PopulationMoments` (its name before release 13; it
#: clashed with :class:`asymptotics.gaussian.GaussianMoments`).
GaussianMoments = PopulationMoments


def _finite_vector(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def validate_moments(eigenvalues, b_eigen, y2) -> PopulationMoments:
    """Check (w, b, E[y^2]) describe a valid joint distribution of (phi, y).

    Raises ``ValueError`` naming the argument for: non-1-D / empty / non-finite arrays,
    shape mismatch, eigenvalues below ``-1e-12 * max(w)`` (those above are clipped to 0),
    a component of ``b_eigen`` on a zero eigenvalue (beyond the Cauchy-Schwarz bound
    implied by the clipping tolerance), non-finite or negative ``y2``, and
    ``y2 < b^T Omega^+ b`` beyond a relative tolerance of 1e-8.
    """
    w = _finite_vector(eigenvalues, "eigenvalues")
    b = _finite_vector(b_eigen, "b_eigen")
    if b.shape != w.shape:
        raise ValueError(
            f"b_eigen must have the same shape as eigenvalues, got {b.shape} and {w.shape}"
        )
    try:
        y2f = float(y2)
    except (TypeError, ValueError) as exc:
        raise ValueError("y2 must be a real number") from exc
    if not np.isfinite(y2f) or y2f < 0:
        raise ValueError(f"y2 = E[y^2] must be finite and non-negative, got {y2!r}")

    wmax = float(w.max())
    if wmax < 0 or w.min() < -NEG_EIG_RTOL * max(wmax, 0.0):
        raise ValueError(
            f"eigenvalues must be non-negative (Omega is PSD); smallest is {w.min():.3e}"
        )
    w = np.clip(w, 0.0, None)
    pos = w > 0
    zero = ~pos
    if np.any(zero):
        # Cauchy-Schwarz: b_i^2 <= w_i y2, and a clipped eigenvalue was <= 1e-12 max(w).
        bound = np.sqrt(NEG_EIG_RTOL * max(wmax, 0.0) * y2f) * (1 + 1e-6)
        bad = np.abs(b[zero]) > bound
        if np.any(bad):
            i = np.flatnonzero(zero)[np.argmax(bad)]
            raise ValueError(
                f"b_eigen has a component on a zero eigenvalue (index {i}, b = {b[i]:.3e}): "
                "E[phi_i y] must vanish where Var(phi_i) = 0"
            )
    explained = float(np.sum(b[pos] ** 2 / w[pos]))
    sigma_res2 = y2f - explained
    if sigma_res2 < 0:
        if -sigma_res2 > RESIDUAL_RTOL * max(y2f, explained):
            raise ValueError(
                f"y2 = {y2f!r} is smaller than b^T Omega^+ b = {explained!r}: "
                "no joint distribution has these moments"
            )
        sigma_res2 = 0.0
    return PopulationMoments(w, b, y2f, pos, explained, sigma_res2)


def _check_basis(basis, p: int) -> np.ndarray:
    U = np.asarray(basis)
    if U.shape != (p, p):
        raise ValueError(f"basis must be a ({p}, {p}) orthogonal matrix, got shape {U.shape}")
    if not np.issubdtype(U.dtype, np.floating):
        U = U.astype(np.float64)
    if not np.all(np.isfinite(U)):
        raise ValueError("basis contains NaN or inf")
    tol = np.sqrt(np.finfo(U.dtype).eps) * max(1.0, np.sqrt(p))
    if np.abs(U.T @ U - np.eye(p)).max() > tol:
        raise ValueError("basis must be orthogonal (U^T U = I)")
    return U


def sample_gaussian_features(
    eigenvalues,
    b_eigen,
    y2,
    n: int,
    rng: np.random.Generator,
    dtype=np.float64,
    basis=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw n i.i.d. jointly Gaussian (features, label) pairs with given moments.

    Parameters
    ----------
    eigenvalues : (p,) array
        Eigenvalues w of Omega = E[phi phi^T] (non-negative; round-off negatives down
        to -1e-12 max(w) are clipped to 0).
    b_eigen : (p,) array
        b = E[phi y] in the eigenbasis of Omega (U^T b).
    y2 : float
        E[y^2]; must satisfy y2 >= b^T Omega^+ b.
    n : int
        Number of samples (rows), > 0.
    rng : numpy.random.Generator
        The only source of randomness (e.g. ``simulations.rng.stream(seed, "train")``).
    dtype : float64 (default) or float32
        With float32 the standard normals are drawn directly in float32
        (``rng.standard_normal(size, dtype=np.float32)``), halving memory and time.
    basis : (p, p) orthogonal array, optional
        U with Omega = U diag(w) U^T. If given the features are returned in the
        original basis, ``F_eig @ U.T`` (covariance Omega, E[phi y] = U b_eigen).

    Returns
    -------
    F : (n, p) array of ``dtype``, rows are samples.
    y : (n,) array of ``dtype``.

    Notes
    -----
    F_eig = Z diag(sqrt(w)), y = Z (b/sqrt(w)) + sigma_res xi with Z (n x p) and xi (n,)
    standard normal, drawn in that order; hence E[F^T F/n] = diag(w), E[F^T y/n] = b,
    E[y^2] = y2 exactly (see the module docstring).
    """
    mom = validate_moments(eigenvalues, b_eigen, y2)
    n = pos_int(n, "n")
    dt = float_dtype(dtype)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    U = None if basis is None else _check_basis(basis, mom.p)
    return sample_from_moments(mom, n, rng, dt, U)


def sample_from_moments(
    mom: PopulationMoments, n: int, rng: np.random.Generator, dtype=np.float64, basis=None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_gaussian_features` for already validated moments (no input checks).

    Useful in loops that draw many samples from the same model.
    """
    dt = np.dtype(dtype)
    U = basis
    sqrt_w = np.sqrt(mom.eigenvalues)
    gamma = np.zeros(mom.p)  # y = Z @ gamma + sigma_res xi, gamma_i = b_i / sqrt(w_i)
    gamma[mom.positive] = mom.b_eigen[mom.positive] / sqrt_w[mom.positive]

    Z = rng.standard_normal((n, mom.p), dtype=dt)
    xi = rng.standard_normal(n, dtype=dt)
    y = Z @ gamma.astype(dt)
    y += dt.type(np.sqrt(mom.sigma_res2)) * xi
    Z *= sqrt_w.astype(dt)  # in place: Z is now F in the eigenbasis
    if U is not None:
        Z = Z @ U.T.astype(dt, copy=False)
    return Z, y


def power_law_spectrum(p: int, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """ω_i = i^-α and b_i = i^-β/√S, S = Σ_{j≤p} j^(α−2β), i = 1..p, so that bᵀΩ⁻¹b = 1."""
    p = pos_int(p, "p")
    i = np.arange(1, p + 1, dtype=np.float64)
    s = np.sum(i ** (alpha - 2 * beta))
    return i**-alpha, i**-beta / np.sqrt(s)


#: The spectrum descriptions and their fields (besides ``kind``).
SPECTRUM_KINDS = {"isotropic": ("p",), "power-law": ("p", "alpha", "beta")}


def check_spectrum(spec: dict) -> dict:
    """The canonical form of a spectrum description (see :func:`spectrum_from_spec`).

    Checks ``kind`` (one of :data:`SPECTRUM_KINDS`) and its fields (p a positive int, α and β
    finite floats); unknown fields are an error. Returns a new dict with normalised values.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"spectrum must be a dict with a 'kind', got {spec!r}")
    kind = spec.get("kind")
    if kind not in SPECTRUM_KINDS:
        raise ValueError(f"spec['kind'] must be 'isotropic' or 'power-law', got {kind!r}")
    fields = SPECTRUM_KINDS[kind]
    unknown = sorted(set(spec) - set(fields) - {"kind"})
    missing = [f for f in fields if f not in spec]
    if unknown or missing:
        raise ValueError(f"a {kind!r} spectrum has the fields {list(fields)}; "
                         f"missing {missing}, unknown {unknown}")
    out = {"kind": kind, "p": pos_int(spec["p"], "p")}
    for name in fields[1:]:
        out[name] = finite_float(spec[name], name)
    return out


def spectrum_from_spec(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues, b_eigen) from a small JSON-like description (used by sweep tasks).

    ``{"kind": "isotropic", "p": p}``: Ω = I_p, b = 1/√p (‖b‖² = 1);
    ``{"kind": "power-law", "p": p, "alpha": α, "beta": β}``: see :func:`power_law_spectrum`.
    """
    spec = check_spectrum(spec)
    if spec["kind"] == "isotropic":
        p = spec["p"]
        return np.ones(p), np.full(p, 1.0 / np.sqrt(p))
    return power_law_spectrum(spec["p"], spec["alpha"], spec["beta"])


# ============================================================================ real data
#: The four standard MNIST IDX files (each may also be gzipped, NAME.gz).
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


#: The largest data size (bytes) one IDX file or one npz array may declare in its header: 1 GiB
#: (MNIST's training images are 47 MB). A larger declaration is refused before anything is read or
#: decompressed, and no file is ever decompressed beyond what its header declares.
MAX_DATA_BYTES = 1 << 30
#: The largest pixel magnitude accepted: squares and sums of 10⁸ such values stay finite in float64.
MAX_PIXEL = 1e150
_CHUNK = 1 << 24


def _read_into(fh, buf: bytearray) -> int:
    """Fill ``buf`` from ``fh`` (raw or gzip stream) in chunks; the number of bytes read."""
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = fh.readinto(view[got:got + _CHUNK])
        if not n:
            break
        got += n
    return got


def read_idx(path, *, max_bytes: int = MAX_DATA_BYTES) -> np.ndarray:
    """Read one IDX file (raw or gzipped): magic 0x0000TTNN (T = element type, N = number of
    dimensions), N big-endian uint32 sizes, then the data.

    The file is read as a stream: the header first, then exactly the number of bytes it declares
    (decompressing no further: a gzip bomb costs at most the declared size). A missing file raises
    ``FileNotFoundError``; a truncated, malformed or oversized file (declared data above
    ``max_bytes``, default :data:`MAX_DATA_BYTES`; more or fewer data bytes than declared) raises
    ``ValueError``, each naming the file and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        if path.exists():  # a folder, FIFO or device: never opened (a FIFO would block)
            raise ValueError(f"{path}: not a regular file (expected an MNIST IDX file)")
        raise FileNotFoundError(f"{path}: no such file (expected an MNIST IDX file)")
    try:
        with open(path, "rb") as raw_fh:
            gz = raw_fh.read(2) == b"\x1f\x8b" or path.suffix == ".gz"
            raw_fh.seek(0)
            with (gzip.GzipFile(fileobj=raw_fh, mode="rb") if gz else raw_fh) as fh:
                return _read_idx_stream(fh, path, gz, max_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        kind = "gzip" if path.suffix == ".gz" or "gzip" in str(exc).lower() else "IDX"
        raise ValueError(f"{path}: not a readable {kind} file ({exc})") from None


def _read_idx_stream(fh, path: Path, gz: bool, max_bytes: int) -> np.ndarray:
    magic = bytearray(4)
    got = _read_into(fh, magic)
    if got < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES or magic[3] == 0:
        raise ValueError(f"{path}: not an IDX file (expected magic bytes 00 00 <type> <ndim>, "
                         f"got {bytes(magic[:got]).hex(' ') or 'an empty file'})")
    dtype, ndim = np.dtype(_IDX_TYPES[magic[2]]), magic[3]
    sizes = bytearray(4 * ndim)
    if _read_into(fh, sizes) < len(sizes):
        raise ValueError(f"{path}: truncated IDX header (expected {ndim} dimension sizes)")
    shape = tuple(int(x) for x in np.frombuffer(bytes(sizes), dtype=">u4"))
    size = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    if size > max_bytes:
        raise ValueError(f"{path}: the IDX header declares shape {shape} ({size} bytes of data), more than "
                         f"the limit of {max_bytes} bytes (corrupt header, or not an MNIST file)")
    header = 4 + 4 * ndim
    if not gz:
        found = path.stat().st_size - header
        if found != size:
            raise ValueError(f"{path}: expected {size} data bytes for shape {shape}, found {found} "
                             "(truncated or corrupt file)")
    data = bytearray(size)
    found = _read_into(fh, data)
    if found < size:
        raise ValueError(f"{path}: expected {size} data bytes for shape {shape}, found {found} "
                         "(truncated or corrupt file)")
    if fh.read(1):
        raise ValueError(f"{path}: expected {size} data bytes for shape {shape}, found more "
                         "(corrupt file, or not an MNIST file)")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _find_idx(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / (name + ".gz"), folder / name.replace("-idx", ".idx")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{folder}: missing MNIST file {name} (or {name}.gz); expected the four files "
                            f"{', '.join(MNIST_FILES)}")


def _check_images(X: np.ndarray, what) -> None:
    """Images (N, 28, 28) of finite real pixel values of magnitude <= MAX_PIXEL."""
    if X.dtype.kind not in "uif":
        raise ValueError(f"{what}: pixel values must be real numbers, got dtype {X.dtype}")
    if X.ndim != 3 or X.shape[1:] != (28, 28):
        raise ValueError(f"{what}: expected images of shape (N, 28, 28), got {X.shape}")
    if X.dtype.kind == "f" and X.size:
        bad = ~np.isfinite(X) | (np.abs(X) > MAX_PIXEL)
        if bad.any():
            i = int(np.flatnonzero(bad.reshape(-1))[0])
            raise ValueError(f"{what}: pixel values must be finite numbers of magnitude <= {MAX_PIXEL:g}; "
                             f"image {i // 784} has {X.reshape(-1)[i].item()!r}")


def _check_labels(y: np.ndarray, n: int, what) -> None:
    """Labels: n integer digits 0..9 (floats only if they are exactly such integers)."""
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{what}: expected {n} labels, got shape {y.shape}")
    if y.dtype.kind not in "uif":
        raise ValueError(f"{what}: labels must be digits 0..9, got dtype {y.dtype}")
    if y.size:
        bad = ~np.isin(y, np.arange(10))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{what}: labels must be digits 0..9; label {i} is {y[i].item()!r}")


def _check_images_labels(X: np.ndarray, y: np.ndarray, what: str, labels_what: str | None = None) -> None:
    _check_images(X, what)
    _check_labels(y, X.shape[0], what if labels_what is None else labels_what)


_NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _check_npz_headers(path: Path, max_bytes: int) -> None:
    """Refuse an npz whose members declare more than ``max_bytes`` (zip entry or .npy header) or
    hold objects, before numpy allocates or decompresses anything."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a readable .npz file (not a zip archive of .npy arrays)")
    try:
        with zipfile.ZipFile(path) as zf:
            sizes = {info.filename: info.file_size for info in zf.infolist()}  # the last entry of a name wins,
            missing = [k for k in _NPZ_ARRAYS if k + ".npy" not in sizes]   # as in np.load
            headers = {}
            for key in [k for k in _NPZ_ARRAYS if k not in missing]:
                if sizes[key + ".npy"] > max_bytes + 65536:  # a .npy header is at most 64 kB
                    raise ValueError(f"{path}: array {key} is {sizes[key + '.npy']} bytes, more than the limit "
                                     f"of {max_bytes} bytes")
                with zf.open(key + ".npy") as fh:
                    version = np.lib.format.read_magic(fh)
                    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read_header is None:
                        raise ValueError(f"{path}: array {key} has an unsupported .npy format version {version}")
                    headers[key] = read_header(fh, max_header_size=65536)
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    except Exception as exc:  # a broken zip: bad archive, corrupt deflate stream, truncation, unsupported compression
        raise ValueError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if missing:
        raise ValueError(f"{path}: missing array(s) {missing}; expected x_train, y_train, x_test, y_test")
    for key, (shape, _, dtype) in headers.items():
        if dtype.hasobject:
            raise ValueError(f"{path}: array {key} holds Python objects (dtype {dtype}); expected numbers")
        declared = math.prod(shape) * dtype.itemsize
        if declared > max_bytes:
            raise ValueError(f"{path}: array {key} declares shape {shape} ({declared} bytes), more than the "
                             f"limit of {max_bytes} bytes")


def load_mnist(path):
    """All MNIST images (train then t10k, 70 000 rows for the full set) and their digit labels.

    ``path``: a folder with the four IDX files :data:`MNIST_FILES` (raw or ``.gz``), or an
    ``.npz`` file with arrays ``x_train, y_train, x_test, y_test`` (Keras' ``mnist.npz``).
    Returns ``(X, labels)``: X (N, 784) float64 pixel values as stored (0..255), labels (N,) int.

    Guarantees: pixel values are real, finite and of magnitude <= :data:`MAX_PIXEL`; labels are the
    integers 0..9 (float labels only when exactly integral: NaN, 3.5 or a string is refused); no
    file or array declaring more than :data:`MAX_DATA_BYTES` bytes is read, and nothing is
    decompressed beyond its declared size (gzip and zip bombs are refused, not expanded). A missing
    file raises ``FileNotFoundError``; a truncated, malformed, oversized or invalid one
    ``ValueError``; each message names the file and what was expected.
    """
    path = Path(path)
    if path.is_dir():
        parts = []
        for img_name, lab_name in ((MNIST_FILES[0], MNIST_FILES[1]), (MNIST_FILES[2], MNIST_FILES[3])):
            img_path, lab_path = _find_idx(path, img_name), _find_idx(path, lab_name)
            X, y = read_idx(img_path), read_idx(lab_path)
            _check_images_labels(X, y, str(img_path), str(lab_path))
            parts.append((X, y))
    elif path.is_file():
        _check_npz_headers(path, MAX_DATA_BYTES)
        try:
            with np.load(path, allow_pickle=False) as z:
                parts = [(z["x_train"], z["y_train"]), (z["x_test"], z["y_test"])]
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
        except Exception as exc:  # zipfile.BadZipFile and friends for corrupt archives
            raise ValueError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
        for X, y in parts:
            _check_images_labels(np.asarray(X), np.asarray(y), str(path))
    elif path.exists():  # a FIFO, a device, a socket: never opened (a FIFO would block)
        raise ValueError(f"{path}: neither a folder nor a regular file (expected a folder with the MNIST IDX "
                         "files or an mnist.npz)")
    else:
        raise FileNotFoundError(f"{path}: no such file or folder (expected a folder with the MNIST IDX files "
                                "or an mnist.npz)")
    X = np.concatenate([np.asarray(X, dtype=np.float64).reshape(len(X), -1) for X, _ in parts])
    labels = np.concatenate([np.asarray(y).astype(np.int64) for _, y in parts])
    return X, labels


def load_digits():
    """scikit-learn's shipped 8×8 digits (1797 images; works offline): ``(X (1797, 64) float64 in 0..16,
    labels (1797,) int)``. Needs the ``data`` extra (scikit-learn)."""
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("load_digits needs scikit-learn: pip install 'asymptotics[data]'") from None
    bunch = _sk_digits()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def even_odd_labels(labels) -> np.ndarray:
    """+1 for an even digit, −1 for an odd one. Labels must be integers (ValueError for NaN, inf,
    3.5 or a string: none of them is even or odd)."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "uif" or (labels.dtype.kind == "f" and not np.all(np.isfinite(labels)
                                                                                 & (labels == np.round(labels)))):
        raise ValueError(f"labels must be integers, got {labels.dtype} values that are not all integers")
    return np.where(labels % 2 == 0, 1.0, -1.0)


#: Names and default fractions of the splits of the MNIST experiment (test, Adam training of the
#: feature map, ridge regression, covariance estimation).
SPLITS = {"test": 0.10, "adam": 0.25, "regression": 0.25, "covariance": 0.40}


@dataclass(frozen=True)
class Splits:
    """Disjoint splits of (X, y) (rows normalised with the training parts' statistics) and their
    row indices into the original data; ``mean`` (pixel-wise) and ``scale`` are what was applied."""

    X: dict
    y: dict
    index: dict
    mean: np.ndarray
    scale: float


def split_and_normalise(X, y, rng: np.random.Generator, fractions: dict | None = None) -> Splits:
    """Random disjoint splits with the given fractions (default :data:`SPLITS`), then
    x ↦ (x − m)/s with m the pixel-wise mean and s the global standard deviation of the centred
    pixels, both computed on the non-test rows only (no test information in any statistic).
    X and y must be finite (ValueError otherwise), and so must the scale."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (N, d) with N = len(y); got X {X.shape}, y {y.shape}")
    for name, arr in (("X", X), ("y", y)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf")
    fractions = dict(SPLITS if fractions is None else fractions)
    if "test" not in fractions or any(not (0 < f < 1) for f in fractions.values()) or sum(fractions.values()) > 1 + 1e-12:
        raise ValueError(f"fractions must include 'test', each in (0, 1), summing to <= 1; got {fractions}")
    n = X.shape[0]
    order = rng.permutation(n)
    index, cum = {}, 0.0
    for name, frac in fractions.items():  # cumulative rounding: sizes add up to round(Σ fractions · n)
        start, cum = int(round(cum * n)), cum + frac
        index[name] = np.sort(order[start:int(round(cum * n))])
        if index[name].size == 0:
            raise ValueError(f"fractions: part {name!r} is empty with {n} rows")
    train_rows = np.concatenate([idx for name, idx in index.items() if name != "test"])
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow shows as a non-finite scale
        mean = X[train_rows].mean(axis=0)
        scale = float(np.std(X[train_rows] - mean))
    if not (scale > 0 and np.isfinite(scale)):
        raise ValueError(f"X has zero or non-finite variance on the training rows (scale {scale!r})")
    return Splits({k: (X[idx] - mean) / scale for k, idx in index.items()}, {k: y[idx] for k, idx in index.items()},
                  index, mean, scale)

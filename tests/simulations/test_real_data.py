"""Real-data loaders (IDX / npz / digits), even/odd labels, splits and train-only normalisation."""
import gzip
import os
import struct

import numpy as np
import pytest

from asymptotics import cli
from simulations.data import (MNIST_FILES, even_odd_labels, load_digits, load_mnist, read_idx,
                              split_and_normalise)


def _idx(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()


def _write_mnist(folder, n_train=12, n_test=5, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    data = {}
    for (img, lab), n in (((MNIST_FILES[0], MNIST_FILES[1]), n_train), ((MNIST_FILES[2], MNIST_FILES[3]), n_test)):
        X = rng.integers(0, 256, size=(n, 28, 28))
        y = rng.integers(0, 10, size=n)
        for name, arr in ((img, X), (lab, y)):
            raw = _idx(arr)
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
        data[img], data[lab] = X, y
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_idx_files(tmp_path, gz):
    data = _write_mnist(tmp_path, gz=gz)
    X, labels = load_mnist(tmp_path)
    assert X.shape == (17, 784) and labels.shape == (17,)
    np.testing.assert_array_equal(X[:12], data[MNIST_FILES[0]].reshape(12, -1))
    np.testing.assert_array_equal(labels[12:], data[MNIST_FILES[3]])


def test_load_mnist_from_npz(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.integers(0, 256, (6, 28, 28)), "y_train": rng.integers(0, 10, 6),
              "x_test": rng.integers(0, 256, (3, 28, 28)), "y_test": rng.integers(0, 10, 3)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    X, labels = load_mnist(tmp_path / "mnist.npz")
    assert X.shape == (9, 784)
    np.testing.assert_array_equal(labels, np.concatenate([arrays["y_train"], arrays["y_test"]]))
    np.savez(tmp_path / "bad.npz", x_train=arrays["x_train"])
    with pytest.raises(ValueError, match="bad.npz.*missing"):
        load_mnist(tmp_path / "bad.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ValueError, match="corrupt.npz"):
        load_mnist(tmp_path / "corrupt.npz")


def test_corrupt_or_missing_idx_files_raise_clear_errors(tmp_path):
    _write_mnist(tmp_path)
    lab = tmp_path / MNIST_FILES[3]
    raw = lab.read_bytes()
    lab.write_bytes(raw[:-2])  # truncated
    with pytest.raises(ValueError, match=f"{MNIST_FILES[3]}.*truncated"):
        load_mnist(tmp_path)
    lab.write_bytes(b"\x01\x02\x03\x04" + raw[4:])  # bad magic
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(lab)
    lab.unlink()
    with pytest.raises(FileNotFoundError, match=f"missing MNIST file {MNIST_FILES[3]}"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_mnist(tmp_path / "nowhere")
    # images and labels that disagree in count
    _write_mnist(tmp_path)
    (tmp_path / MNIST_FILES[1]).write_bytes(_idx(np.zeros(3, dtype=np.uint8)))
    with pytest.raises(ValueError, match="expected 12 labels"):
        load_mnist(tmp_path)


def test_cli_turns_data_errors_into_one_line_and_status_2(tmp_path, capsys):
    _write_mnist(tmp_path)
    (tmp_path / MNIST_FILES[0]).write_bytes(b"\x00\x00\x08\x03garbage")
    assert cli.main(["reproduce", "mnist-even-odd", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and MNIST_FILES[0] in err[0] and "Traceback" not in err[0]
    assert cli.main(["reproduce", "mnist-even-odd", "--out", str(tmp_path / "o")]) == 2
    assert "--data PATH" in capsys.readouterr().err


def test_digits_and_even_odd_labels():
    X, labels = load_digits()
    assert X.shape == (1797, 64) and set(np.unique(labels)) == set(range(10))
    y = even_odd_labels(labels)
    assert set(np.unique(y)) == {-1.0, 1.0}
    np.testing.assert_array_equal(y == 1, labels % 2 == 0)


def test_splits_are_disjoint_and_normalised_with_training_rows_only():
    X, labels = load_digits()
    y = even_odd_labels(labels)
    sp = split_and_normalise(X, y, np.random.default_rng(0))
    sizes = {k: len(v) for k, v in sp.index.items()}
    assert sizes == {"test": 180, "adam": 449, "regression": 449, "covariance": 719}
    allidx = np.concatenate(list(sp.index.values()))
    assert len(np.unique(allidx)) == len(allidx) == 1797
    train = np.concatenate([sp.index[k] for k in ("adam", "regression", "covariance")])
    Z = np.concatenate([sp.X[k] for k in ("adam", "regression", "covariance")])
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    assert np.std(Z) == pytest.approx(1.0, rel=1e-12)
    # changing the test rows changes no statistic: no test information leaks
    X2 = X.copy()
    X2[sp.index["test"]] *= 100.0
    sp2 = split_and_normalise(X2, y, np.random.default_rng(0))
    np.testing.assert_array_equal(sp2.mean, sp.mean)
    assert sp2.scale == sp.scale
    np.testing.assert_array_equal(sp2.X["adam"], sp.X["adam"])
    np.testing.assert_array_equal(sp.y["test"], y[sp.index["test"]])
    assert set(train) & set(sp.index["test"]) == set()
    with pytest.raises(ValueError, match="fractions"):
        split_and_normalise(X, y, np.random.default_rng(0), {"adam": 0.5})


def test_corrupt_gzip_stream_is_a_clear_error(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / (MNIST_FILES[0] + ".gz")
    raw = bytearray(path.read_bytes())
    raw[10] ^= 0xFF  # break the deflate stream itself (not only the CRC)
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"{MNIST_FILES[0]}.gz: not a readable gzip file"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("n", [6, 7, 11, 1797])
def test_split_sizes_add_up(n):
    X = np.arange(n * 2, dtype=float).reshape(n, 2) + np.random.default_rng(n).standard_normal((n, 2))
    sp = split_and_normalise(X, np.ones(n), np.random.default_rng(0))
    sizes = [len(v) for v in sp.index.values()]
    assert sum(sizes) == n and min(sizes) >= 1
    with pytest.raises(ValueError, match="empty"):
        split_and_normalise(X[:3], np.ones(3), np.random.default_rng(0))


def test_one_network_experiments_refuse_several_seeds(tmp_path, capsys):
    assert cli.main(["reproduce", "mnist-even-odd", "--quick", "--seeds", "3", "--out", str(tmp_path)]) == 2
    assert "--seeds must be 1" in capsys.readouterr().err


def _npz_with(path, **replace):
    rng = np.random.default_rng(5)
    arrays = {"x_train": rng.integers(0, 256, (6, 28, 28)), "y_train": rng.integers(0, 10, 6),
              "x_test": rng.integers(0, 256, (3, 28, 28)), "y_test": rng.integers(0, 10, 3)}
    arrays.update(replace)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 1, 2, np.nan, 4, 5]), "label 3 is nan"),
    (np.array([0, 1, 2, 3.5, 4, 5]), "label 3 is 3.5"),
    (np.array([0, 1, 2, 3, 4, 10]), "label 5 is 10"),
    (np.array(list("012345")), "dtype <U1"),
])
def test_labels_must_be_digits(tmp_path, labels, message):
    """NaN labels became -9.2e18 (and the run went on); a string label was a numpy traceback."""
    path = _npz_with(tmp_path / "labels.npz", y_train=labels)
    with pytest.raises(ValueError, match=f"labels.npz: labels must be digits 0..9.*{message}"):
        load_mnist(path)


def test_integral_float_labels_are_accepted(tmp_path):
    path = _npz_with(tmp_path / "float-labels.npz", y_train=np.array([0.0, 1, 2, 3, 4, 9]))
    _, labels = load_mnist(path)
    np.testing.assert_array_equal(labels[:6], [0, 1, 2, 3, 4, 9])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e200])
def test_pixels_must_be_finite_and_bounded(tmp_path, bad):
    x = np.zeros((6, 28, 28))
    x[4, 2, 3] = bad
    path = _npz_with(tmp_path / "pixels.npz", x_train=x)
    with pytest.raises(ValueError, match="pixels.npz: pixel values must be finite.*image 4"):
        load_mnist(path)


def test_idx_header_sizes_are_checked_before_reading(tmp_path):
    """Sizes multiply as Python integers (no int64 wrap-around) and are capped before any data is
    read or decompressed; the message names the file."""
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 4) + struct.pack(">4I", *(2 ** 16,) * 4))  # 2^64 bytes
    with pytest.raises(ValueError, match="images-idx3-ubyte: the IDX header declares shape .* more than the limit"):
        read_idx(path)
    raw = _idx(np.zeros((2, 28, 28)))
    path.write_bytes(raw)
    assert read_idx(path, max_bytes=2 * 784).shape == (2, 28, 28)
    with pytest.raises(ValueError, match="more than the limit of 1567 bytes"):
        read_idx(path, max_bytes=2 * 784 - 1)


def test_gzip_stream_is_read_no_further_than_the_header_declares(tmp_path):
    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(_idx(np.zeros((2, 28, 28))) + b"\0" * (1 << 20))
    with pytest.raises(ValueError, match="bomb-idx3-ubyte.gz: expected 1568 data bytes .* found more"):
        read_idx(path)


def test_labels_and_splits_refuse_non_finite_values():
    with pytest.raises(ValueError, match="labels must be integers"):
        even_odd_labels(np.array([0.0, np.nan]))
    X = np.random.default_rng(0).standard_normal((20, 3))
    X[5, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        split_and_normalise(X, np.ones(20), np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-finite variance"):
        split_and_normalise(np.full((20, 3), 1e200) * np.arange(20)[:, None], np.ones(20), np.random.default_rng(0))


def test_a_fifo_or_device_is_refused_without_opening_it(tmp_path):
    """Opening a FIFO would block the run forever; it is refused by its type."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(ValueError, match="neither a folder nor a regular file"):
            load_mnist(path)
        with pytest.raises(ValueError, match="not a regular file"):
            read_idx(path)

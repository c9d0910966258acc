"""Every user error of the command line is one line on stderr and exit status 2, never a traceback.

Each probe is a hand-written bad input (a flag value, an output path, a data file); the command
must refuse it before any simulation runs, in one line that names what is wrong.
"""
import gzip
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from asymptotics import cli
from simulations.data import MNIST_FILES

# ------------------------------------------------------------------ data files


def _idx(array: np.ndarray, type_code: int = 0x08, shape=None) -> bytes:
    shape = array.shape if shape is None else shape
    dt = {0x08: np.uint8, 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}[type_code]
    return (struct.pack(">BBBB", 0, 0, type_code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
            + np.asarray(array).astype(dt).tobytes())


def _mnist_folder(folder, n_train=40, n_test=10, images=None, labels=None):
    """Four IDX files; ``images`` / ``labels``: replacement bytes for the training files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for (img, lab), n in (((MNIST_FILES[0], MNIST_FILES[1]), n_train), ((MNIST_FILES[2], MNIST_FILES[3]), n_test)):
        (folder / img).write_bytes(_idx(rng.integers(0, 256, size=(n, 28, 28))))
        (folder / lab).write_bytes(_idx(rng.integers(0, 10, size=n)))
    if images is not None:
        (folder / MNIST_FILES[0]).write_bytes(images)
    if labels is not None:
        (folder / MNIST_FILES[1]).write_bytes(labels)
    return folder


def _npz(path, **replace):
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.integers(0, 256, (40, 28, 28)).astype(np.float64), "y_train": rng.integers(0, 10, 40),
              "x_test": rng.integers(0, 256, (10, 28, 28)).astype(np.float64), "y_test": rng.integers(0, 10, 10)}
    arrays.update(replace)
    np.savez(path, **arrays)
    return path


def _nan_pixels(tmp):
    x = np.random.default_rng(2).integers(0, 256, (40, 28, 28)).astype(np.float64)
    x[3, 4, 5] = np.nan
    return _npz(tmp / "nan-pixels.npz", x_train=x)


def _inf_pixels(tmp):
    x = np.random.default_rng(2).integers(0, 256, (40, 28, 28)).astype(np.float64)
    x[0, 0, 0] = -np.inf
    return _npz(tmp / "inf-pixels.npz", x_train=x)


def _nan_labels(tmp):
    y = np.random.default_rng(2).integers(0, 10, 40).astype(np.float64)
    y[7] = np.nan
    return _npz(tmp / "nan-labels.npz", y_train=y)


def _fractional_labels(tmp):
    return _npz(tmp / "frac-labels.npz", y_train=np.full(40, 3.5))


def _string_labels(tmp):
    return _npz(tmp / "str-labels.npz", y_train=np.array(list("0123456789") * 4))


def _complex_pixels(tmp):
    return _npz(tmp / "complex.npz", x_train=np.ones((40, 28, 28), dtype=complex))


def _npz_declared_huge(tmp):
    """An npz whose x_train header declares 10⁹ images (784 GB) over a few bytes of data."""
    import io

    path = tmp / "huge.npz"
    _npz(tmp / "ok.npz")
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 28, 28)))
    header["shape"] = (10 ** 9, 28, 28)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(tmp / "ok.npz") as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, buf.getvalue() + b"\0" * 64 if name == "x_train.npy" else src.read(name))
    return path


def _idx_overflow(tmp):
    """IDX images whose header sizes multiply to more than 2⁶⁴ (np.prod wraps around)."""
    return _mnist_folder(tmp / "overflow", images=struct.pack(">BBBB", 0, 0, 0x08, 3)
                         + struct.pack(">3I", 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF) + b"\0" * 100)


def _idx_wraparound(tmp):
    """Sizes whose product overflows int64 to exactly the number of data bytes present."""
    shape = (2 ** 16, 2 ** 16, 2 ** 16, 2 ** 16)  # 2^64 elements: np.prod gives 0, and 0 bytes follow
    assert int(np.prod(np.array(shape, dtype=np.int64))) == 0
    return _mnist_folder(tmp / "wrap", images=struct.pack(">BBBB", 0, 0, 0x08, 4) + struct.pack(">4I", *shape))


def _idx_nan_float_pixels(tmp):
    x = np.random.default_rng(3).random((40, 28, 28))
    x[1, 1, 1] = np.nan
    return _mnist_folder(tmp / "idx-nan", images=_idx(x, 0x0E))


def _idx_nan_float_labels(tmp):
    y = np.arange(40) % 10.0
    y[5] = np.nan
    return _mnist_folder(tmp / "idx-nan-labels", labels=_idx(y, 0x0E))


def _gzip_bomb(tmp, payload=64 << 20):
    """A gzipped IDX file whose header declares one 28×28 image followed by 64 MB of zeros."""
    folder = _mnist_folder(tmp / "bomb")
    (folder / MNIST_FILES[0]).unlink()
    head = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 40, 28, 28)
    with gzip.open(folder / (MNIST_FILES[0] + ".gz"), "wb", compresslevel=9) as fh:
        fh.write(head)
        zeros = b"\0" * (1 << 20)
        for _ in range(payload >> 20):
            fh.write(zeros)
    return folder


def _gzip_huge_header(tmp):
    """A small gzipped IDX file whose header declares 2³² − 1 images of 28 × 28 (3.4 TB)."""
    folder = _mnist_folder(tmp / "bomb-header")
    (folder / MNIST_FILES[0]).unlink()
    head = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 2 ** 32 - 1, 28, 28)
    (folder / (MNIST_FILES[0] + ".gz")).write_bytes(gzip.compress(head + b"\0" * 4096))
    return folder


DATA_PROBES = {  # name: (builder, a word the message must contain)
    "nan-pixels": (_nan_pixels, "nan-pixels.npz"),
    "inf-pixels": (_inf_pixels, "inf-pixels.npz"),
    "nan-labels": (_nan_labels, "nan-labels.npz"),
    "fractional-labels": (_fractional_labels, "frac-labels.npz"),
    "string-labels": (_string_labels, "str-labels.npz"),
    "complex-pixels": (_complex_pixels, "complex.npz"),
    "npz-declared-huge": (_npz_declared_huge, "huge.npz"),
    "idx-size-overflow": (_idx_overflow, MNIST_FILES[0]),
    "idx-size-wraparound": (_idx_wraparound, MNIST_FILES[0]),
    "idx-nan-pixels": (_idx_nan_float_pixels, MNIST_FILES[0]),
    "idx-nan-labels": (_idx_nan_float_labels, MNIST_FILES[1]),
    "gzip-bomb": (_gzip_bomb, MNIST_FILES[0]),
    "gzip-huge-header": (_gzip_huge_header, MNIST_FILES[0]),
}


# ------------------------------------------------------------------ flag probes

def _a_file(tmp):
    (tmp / "a-file").write_text("x")
    return str(tmp / "a-file")


FLAG_PROBES = {  # name: (argv builder, a word the message must contain)
    "seeds-huge": (lambda t: ["ridge-isotropic", "--seeds", "1000000000"], "--seeds"),
    "seeds-zero": (lambda t: ["ridge-isotropic", "--seeds", "0"], "--seeds"),
    "seeds-not-int": (lambda t: ["ridge-isotropic", "--seeds", "many"], "--seeds"),
    "seed-negative": (lambda t: ["ridge-isotropic", "--seed", "-1"], "--seed"),
    "workers-zero": (lambda t: ["ridge-isotropic", "--workers", "0"], "--workers"),
    "backend-unknown": (lambda t: ["ridge-isotropic", "--backend", "gpu"], "--backend"),
    "out-is-a-file": (lambda t: ["ridge-isotropic", "--out", _a_file(t)], "--out"),
    "out-under-a-file": (lambda t: ["ridge-isotropic", "--out", _a_file(t) + "/sub"], "--out"),
    "out-in-proc": (lambda t: ["ridge-isotropic", "--out", "/proc/self/no-such-dir/x"], "--out"),
    "out-proc-not-writable": (lambda t: ["ridge-isotropic", "--out", "/proc/self"], "--out"),
    "out-dev-null": (lambda t: ["ridge-isotropic", "--out", "/dev/null"], "--out"),
    "out-empty": (lambda t: ["ridge-isotropic", "--out", ""], "--out"),
    "out-name-too-long": (lambda t: ["ridge-isotropic", "--out", str(t / ("n" * 300))], "--out"),
    "out-not-utf8": (lambda t: ["ridge-isotropic", "--out", os.fsdecode(os.fsencode(str(t)) + b"/r\xff\xfe")],
                     "--out"),
    "cache-is-a-file": (lambda t: ["ridge-isotropic", "--cache", _a_file(t), "--out", str(t / "o")], "--cache"),
    "cache-under-a-file": (lambda t: ["ridge-isotropic", "--cache", _a_file(t) + "/c", "--out", str(t / "o")],
                           "--cache"),
    "set-dims-1e400": (lambda t: ["hierarchical-layerwise", "--set", "dims=[1e400]"], "dims"),
    "set-dims-nan": (lambda t: ["hierarchical-layerwise", "--set", "dims=[NaN]"], "dims"),
    "set-dims-infinity": (lambda t: ["hierarchical-layerwise", "--set", "dims=[-Infinity]"], "dims"),
    "set-dims-huge-int": (lambda t: ["hierarchical-layerwise", "--set", "dims=[" + "9" * 30 + "]"], "dims"),
    "set-dims-5000-digits": (lambda t: ["hierarchical-layerwise", "--set", "dims=[" + "9" * 5000 + "]"], "dims"),
    "set-max-steps-1e400": (lambda t: ["hierarchical-adam", "--set", "max_steps=1e400"], "max_steps"),
    "set-no-equals": (lambda t: ["hierarchical-layerwise", "--set", "dims"], "--set"),
    "set-no-key": (lambda t: ["hierarchical-layerwise", "--set", "=[8]"], "--set"),
    "set-unknown-option": (lambda t: ["ridge-isotropic", "--set", "dims=[8]"], "dims"),
    "set-dims-too-small": (lambda t: ["hierarchical-layerwise", "--set", "dims=[1]"], "dims"),
    "data-for-non-data-experiment": (lambda t: ["ridge-isotropic", "--data", str(t)], "--data"),
    "data-missing": (lambda t: ["mnist-even-odd", "--quick", "--data", str(t / "nowhere")], "nowhere"),
    "scheduler-without-dask": (lambda t: ["ridge-isotropic", "--scheduler", "tcp://127.0.0.1:1"], "scheduler"),
    "unknown-experiment": (lambda t: ["no-such-experiment"], "no-such-experiment"),
    "unknown-flag": (lambda t: ["ridge-isotropic", "--no-such-flag"], "--no-such-flag"),
    "connect-timeout-negative": (lambda t: ["ridge-isotropic", "--connect-timeout", "-1"], "--connect-timeout"),
    "connect-timeout-nan": (lambda t: ["ridge-isotropic", "--connect-timeout", "nan"], "--connect-timeout"),
    "several-seeds-one-network": (lambda t: ["mnist-even-odd", "--quick", "--seeds", "3"], "--seeds"),
}


def _one_line_exit_2(argv, capsys):
    """(exit status, stderr lines) of the command line; a traceback fails the test."""
    try:
        status = cli.main(["reproduce", *argv])
    except SystemExit as exc:  # argparse
        status = exc.code
    err = capsys.readouterr().err
    return status, [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("probe", sorted(FLAG_PROBES))
def test_bad_flags_are_one_line_and_exit_2(probe, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build, word = FLAG_PROBES[probe]
    argv = build(tmp_path)
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    if "--quick" not in argv:
        argv.append("--quick")
    status, lines = _one_line_exit_2(argv, capsys)
    assert status == 2 and len(lines) == 1, (status, lines)
    assert lines[0].startswith("asymptotics") and word in lines[0], lines
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing written


@pytest.mark.parametrize("probe", sorted(DATA_PROBES))
def test_bad_data_files_are_one_line_naming_the_file_and_exit_2(probe, tmp_path, capsys):
    build, word = DATA_PROBES[probe]
    data = build(tmp_path)
    status, lines = _one_line_exit_2(["mnist-even-odd", "--quick", "--data", str(data),
                                      "--out", str(tmp_path / "out")], capsys)
    assert status == 2 and len(lines) == 1, (status, lines)
    assert word in lines[0], lines


def test_gzip_bomb_is_refused_without_decompressing_it(tmp_path):
    """A 64 MB payload behind a header that declares 31 kB: the reader stops after the declared
    size, so the process never holds the payload (peak resident memory grows < 32 MB)."""
    folder = _gzip_bomb(tmp_path)
    code = ("import sys\n"
            "from simulations.data import load_mnist\n"
            "def hwm():  # peak resident memory of this process (kB), reset at exec unlike ru_maxrss\n"
            "    return int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
            "before = hwm()\n"
            "try:\n    load_mnist(sys.argv[1])\nexcept ValueError as exc:\n    print('ERR', exc)\n"
            "print('GROWTH_KB', hwm() - before)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ERR" in proc.stdout and MNIST_FILES[0] in proc.stdout
    growth_kb = int(proc.stdout.split("GROWTH_KB")[1])
    assert growth_kb < 32 * 1024, growth_kb


def test_list_into_a_closed_pipe_is_quiet(tmp_path):
    """`asymptotics list | head -1`: no BrokenPipeError traceback."""
    proc = subprocess.run(f"{sys.executable} -m asymptotics.cli list | head -c 10", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr


def test_no_command_and_no_name_are_one_line(capsys):
    for argv in ([], ["reproduce"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("asymptotics"), lines


def test_non_utf8_out_in_a_subprocess(tmp_path):
    out = os.fsencode(str(tmp_path)) + b"/r\xff"
    proc = subprocess.run([os.fsencode(sys.executable), b"-m", b"asymptotics.cli", b"reproduce", b"ridge-isotropic",
                           b"--quick", b"--seeds", b"2", b"--out", out], capture_output=True, timeout=300)
    err = proc.stderr.decode("utf-8", "backslashreplace").strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "--out" in err[0], err

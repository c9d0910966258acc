"""The sweep engine under faults and hostile files (issue 16, items 2, 4, 5, 8 and 9's cache byte).

* cache: no pickles (npz read with allow_pickle=False + JSON header with its own key and a
  SHA-256 of header and arrays), every task's result round-trips bit for bit, forged / swapped /
  truncated / byte-flipped entries are detected and recomputed, only regular files are opened,
  an unusable cache is a CacheError before anything is computed;
* no orphans: after SIGKILL of a sweep on ``processes`` its workers, fork server and resource
  tracker end by themselves; ``workers`` is capped with a warning;
* dask: a closed port, an HTTP server and a silent listener give a one-line SchedulerError within
  the connect timeout (plus a few seconds); a real scheduler still works;
* the same bits on every backend: every task runs with the same thread configuration.

Everything is bounded in time (timeouts on subprocesses, sockets and waits) and runs on 127.0.0.1.
"""
import contextlib
import io
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import simulations.sweep as sw
from simulations.ridge import ridge_task
from simulations.sweep import CorruptCacheWarning, run_sweep

SPEC = {"kind": "power-law", "p": 40, "alpha": 1.5, "beta": 1.0}
POINTS = [{"spectrum": SPEC, "y2": 1.01, "n": n, "lams": [0.0, 1e-2]} for n in (20, 60, 120)]

HELPERS = '''
"""Tasks for test_sweep_faults (a module on sys.path: worker processes import tasks by name)."""
import os
import time

import numpy as np


def marker_task(params, seed):
    """Leaves a file per run (to count computations across processes), then sleeps ``t`` s."""
    open(os.path.join(params["dir"], "ran-%s-%d" % (params["i"], os.getpid())), "w").close()
    time.sleep(params.get("t", 0.0))
    return {"i": params["i"], "x": np.random.default_rng(seed).standard_normal(3)}


def thread_report(params, seed):
    """The thread configuration a task sees: every BLAS/OpenMP pool and Numba."""
    from threadpoolctl import threadpool_info
    import numba

    pools = sorted([os.path.basename(d["filepath"]), d["user_api"], d["num_threads"]] for d in threadpool_info())
    return {"pools": pools, "numba": numba.get_num_threads()}


def object_task(params, seed):
    """A result the cache cannot store without pickles."""
    return {"x": np.array([1, "a", None], dtype=object), "i": params["i"]}
'''


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep_helpers")
    (folder / "sweep_fault_tasks.py").write_text(HELPERS)
    sys.path.insert(0, str(folder))
    try:
        import sweep_fault_tasks

        yield sweep_fault_tasks
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("sweep_fault_tasks", None)


def ran(folder: Path) -> int:
    return len(list(folder.glob("ran-*")))


# ----------------------------------------------------------------- exact comparison
def same(a, b, where="result") -> None:
    """a and b are equal bit for bit, with the same types (arrays: dtype, shape, bytes)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, complex):
        same(a.real, b.real, where), same(a.imag, b.imag, where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            same(getattr(a, name), getattr(b, name), f"{where}.{name}")
    else:
        assert a == b, where


def test_same_can_fail():
    with pytest.raises(AssertionError):
        same({"x": np.array([0.1])}, {"x": np.array([np.nextafter(0.1, 1)])})
    with pytest.raises(AssertionError):
        same(float("nan"), -float("nan"))
    with pytest.raises(AssertionError):
        same((1,), [1])


# ------------------------------------------------------------------------ codec
def edge_result():
    nan_payload = struct.unpack("<d", struct.pack("<Q", 0x7FF0_0000_0000_0ABC))[0]
    return {
        "floats": [0.1, -0.0, float("inf"), -float("inf"), float("nan"), -float("nan"), nan_payload, 5e-324,
                   1.7976931348623157e308],
        "ints": [0, -1, 2**62, -(2**100), True, False],
        "text": ["", "λ = 0", "$array", "\ud800"],
        "none": None,
        "tuple": (1, (2.5, "x"), []),
        "keys": {1: "int", (1, 2): "tuple", "$dollar": 3, None: 0, 2.5: "float"},
        "nested": {"a": {"b": {"c": [{"d": np.arange(3)}]}}},
        "arrays": [np.array(3.5), np.zeros((0, 4)), np.asfortranarray(np.arange(6.0).reshape(2, 3)),
                   np.array([1 + 2j]), np.array([True, False]), np.array(["ab", "λ"]), np.array([b"x", b"yz"]),
                   np.array(["2020-01-01"], dtype="datetime64[ns]"), np.arange(4, dtype=">i2"),
                   np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]), np.float32([np.nan, 1e-45])],
        "scalars": [np.float64(0.1), np.float32(1.5), np.int64(-7), np.bool_(True), np.uint8(255),
                    np.complex128(1j), np.str_("s")],
        "bytes": b"\x00\xff",
        "complex": complex(float("nan"), -0.0),
        "empty": {},
    }


def test_codec_round_trips_bit_for_bit():
    value = edge_result()
    tree, arrays = sw.encode_result(value)
    json.dumps(tree, allow_nan=False)  # plain JSON: no NaN constants, no objects
    same(sw.decode_result(json.loads(json.dumps(tree)), arrays), value)
    from simulations.ridge import RidgeSpec

    spec = RidgeSpec(spectrum=SPEC, y2=1.01, n=20, lams=(0.0,))
    tree, arrays = sw.encode_result({"spec": spec})
    back = sw.decode_result(tree, arrays)["spec"]
    assert type(back) is RidgeSpec and back == spec


@pytest.mark.parametrize("value", [np.array([object()], dtype=object), {1, 2}, lambda: 0, Path("x"),
                                   type("X", (tuple,), {})((1,)), 2**5000])
def test_codec_refuses_what_it_cannot_store_exactly(value):
    with pytest.raises(TypeError):
        sw.encode_result({"v": value})


@pytest.mark.parametrize("tree", [{"$pickle": "x"}, {"$float": "zz"}, {"$array": "a9"}, {"$tuple": 3},
                                  {"$dataclass": "os:system", "fields": {}},
                                  {"$dataclass": "subprocess:Popen", "fields": {}}, {"$items": [[[1], 2]]},
                                  {"$scalar": "a0"}])
def test_decoder_refuses_trees_it_could_not_have_written(tree):
    with pytest.raises(ValueError):
        sw.decode_result(tree, {"a0": np.zeros(2)})


def _tiny_task_cases():
    from simulations.deep import deep_ridge_task, moments_task
    from simulations.giant_step import GiantStepSpec, giant_step_task, lam_from_scaled_features
    from simulations.hierarchical import hierarchical_task
    from simulations.trained import (SyntheticTrainedSpec, TrainedSpec, mnist_even_odd_task,
                                     synthetic_trained_task)

    net = {"d": 8, "widths": [10], "activations": ["tanh"], "teacher": {"widths": [8], "noise": 0.1},
           "weight_seed": 3}
    return [
        (ridge_task, {"spectrum": SPEC, "y2": 1.01, "n": 10, "lams": [0.0, 0.1], "n_test": 30}),
        (deep_ridge_task, {"network": net, "n": 20, "lams": [0.0, 0.1], "n_test": 50}),
        (moments_task, {"network": net, "n_samples": 100}),
        (giant_step_task, GiantStepSpec(target="T1", activation="relu", d=8, p=16, n=32, steps=2, eta="sqrt",
                                        lam=lam_from_scaled_features(1.0, 16, 32), n_test=50, a_init="gauss",
                                        rows=True)),
        (hierarchical_task, {"method": "layerwise", "d": 4, "n": 256, "m1": 10, "m2": 10, "n_test": 256}),
        (hierarchical_task, {"method": "adam", "d": 4, "n": 128, "m1": 8, "m2": 8, "n_test": 128, "max_steps": 3,
                             "betas": [0.9, 0.99]}),
        (mnist_even_odd_task, TrainedSpec(data="digits", widths=[4], activation="relu", epochs=1, lr=1e-3,
                                          snapshots=[0], ns=[5], lams=[1.0], repeats=2)),
        (synthetic_trained_task, SyntheticTrainedSpec(d=6, k=5, widths=(8,), activation="tanh", init="gauss",
                                                      epochs=3, lr=1e-2, snapshots=(0, 3), n_adam=40, n_test=60,
                                                      ns=(10, 20), lams=(0.01, 0.1), repeats=2)),
    ]


def test_every_task_result_round_trips_through_the_cache(tmp_path):
    """Each task function of simulations/*.py: the result loaded from the cache is the computed
    one, bit for bit, and the entry is a plain npz (no pickle) with a JSON header."""
    for k, (fn, params) in enumerate(_tiny_task_cases()):
        exp = f"rt{k}"
        first = run_sweep(fn, [params], 1, experiment=exp, cache=tmp_path, quiet=True)
        again = run_sweep(fn, [params], 1, experiment=exp, cache=tmp_path, quiet=True)
        assert first.stats.computed == 1 and again.stats.cached == 1 and again.stats.computed == 0, fn.__name__
        same(again.results[0], first.results[0], fn.__name__)
        (entry,) = (tmp_path / exp).glob("*.npz")
        with np.load(entry, allow_pickle=False) as npz:  # every array readable without pickles
            for name in npz.files:
                if name != "header.json":
                    assert not npz[name].dtype.hasobject
        with zipfile.ZipFile(entry) as zf:
            header = json.loads(zf.read("header.json"))
        assert header["key"] == entry.stem and header["experiment"] == exp
        assert header["task"]["fn"].endswith(fn.__name__) and header["task"]["seed"] == 0
        assert len(header["sha256"]) == 64


# ------------------------------------------------------------ hostile cache files
def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npz"))


def as_array(res):
    return np.array([np.concatenate([r["test_error"], r["train_error"]]) for r in res.results])


def test_a_byte_flipped_inside_a_cached_number_is_detected(tmp_path):
    first = run_sweep(ridge_task, POINTS, 2, experiment="t", cache=tmp_path)
    by_key = {e.stem: e for e in _entries(tmp_path / "t")}
    assert len(by_key) == 6
    # the file of task 0 holds test_error[0] as 8 little-endian bytes: flip the lowest bit of the
    # mantissa (the number changes by one unit in the last place)
    value = first.results[0]["test_error"][0]
    target = next(e for e in by_key.values() if struct.pack("<d", value) in e.read_bytes())
    raw = bytearray(target.read_bytes())
    at = raw.index(struct.pack("<d", value))
    raw[at] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.warns(CorruptCacheWarning, match="corrupt"):
        second = run_sweep(ridge_task, POINTS, 2, experiment="t", cache=tmp_path)
    assert second.stats.corrupt == 1 and second.stats.computed == 1 and second.stats.cached == 5
    assert np.array_equal(as_array(first), as_array(second))


def _rezip(path: Path, change) -> None:
    """Rewrite an entry as a valid zip (correct CRCs) after ``change(members)``: only the
    entry's own checks can then notice."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    change(members)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())


def test_forged_and_swapped_entries_are_detected(tmp_path):
    first = run_sweep(ridge_task, POINTS, 2, experiment="t", cache=tmp_path)
    e = _entries(tmp_path / "t")

    def change_number(members):  # a different number in a valid zip: the SHA-256 no longer matches
        name = next(n for n in members if n.endswith(".npy"))
        raw = bytearray(members[name])
        raw[-1] ^= 0x01
        members[name] = bytes(raw)

    def change_header(members):  # a header edited to claim other numbers
        header = json.loads(members["header.json"])
        header["task"]["seed"] = 1 - header["task"]["seed"]
        members["header.json"] = json.dumps(header).encode()

    _rezip(e[0], change_number)
    _rezip(e[1], change_header)
    a, b = e[2].read_bytes(), e[3].read_bytes()  # two entries swapped: each holds the other's key
    e[2].write_bytes(b)
    e[3].write_bytes(a)
    e[4].write_bytes(e[4].read_bytes()[:300])  # truncated
    with pytest.warns(CorruptCacheWarning) as record:
        second = run_sweep(ridge_task, POINTS, 2, experiment="t", cache=tmp_path)
    messages = " | ".join(str(w.message) for w in record)
    assert "checksum" in messages and "another key" in messages
    assert second.stats.corrupt == 5 and second.stats.cached == 1 and second.stats.computed == 5
    assert np.array_equal(as_array(first), as_array(second))
    third = run_sweep(ridge_task, POINTS, 2, experiment="t", cache=tmp_path)
    assert third.stats.cached == 6 and third.stats.corrupt == 0


def test_a_forged_pickle_in_the_cache_never_runs(tmp_path):
    """An entry whose array is a pickle (object dtype) that would create a file when unpickled."""
    run_sweep(ridge_task, POINTS[:1], 1, experiment="t", cache=tmp_path)
    (entry,) = _entries(tmp_path / "t")
    witness = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (open, (str(witness), "w"))

    def inject(members):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array([Evil()], dtype=object), allow_pickle=True)
        name = next(n for n in members if n.endswith(".npy"))
        members[name] = buf.getvalue()

    _rezip(entry, inject)
    with pytest.warns(CorruptCacheWarning, match="pickle"):
        res = run_sweep(ridge_task, POINTS[:1], 1, experiment="t", cache=tmp_path)
    assert not witness.exists() and res.stats.corrupt == 1 and res.stats.computed == 1
    # an old-format .pkl next to the entries is ignored
    (tmp_path / "t" / (entry.stem + ".pkl")).write_bytes(b"\x80\x04N.")
    assert run_sweep(ridge_task, POINTS[:1], 1, experiment="t", cache=tmp_path).stats.cached == 1


@contextlib.contextmanager
def deadline(seconds: int):
    """Raise TimeoutError in this (main) thread after ``seconds``: a hang fails, not blocks."""
    def alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_fifo_directory_and_symlink_entries_are_reported_not_followed(tmp_path):
    first = run_sweep(ridge_task, POINTS, 1, experiment="t", cache=tmp_path)
    e = _entries(tmp_path / "t")
    outside = tmp_path / "outside.npz"
    outside.write_bytes(e[2].read_bytes())
    for path in e:
        path.unlink()
    os.mkfifo(e[0])  # a FIFO: opening it for reading used to block forever
    e[1].mkdir()  # a directory
    e[2].symlink_to(outside)  # a symlink (even to a valid entry) is not followed
    with deadline(60), pytest.warns(CorruptCacheWarning) as record:
        second = run_sweep(ridge_task, POINTS, 1, experiment="t", cache=tmp_path)
    messages = " | ".join(str(w.message) for w in record)
    assert "FIFO" in messages and "directory" in messages and "symbolic link" in messages
    assert second.stats.corrupt == 3 and second.stats.computed == 3
    assert np.array_equal(as_array(first), as_array(second))
    assert e[1].is_dir() and outside.exists()  # a directory is left alone, a link's target untouched
    assert e[0].is_file() and e[2].is_file() and not e[2].is_symlink()  # replaced by real entries


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_an_unusable_cache_is_refused_before_computing(tmp_path, helpers, backend):
    runs = tmp_path / "runs"
    runs.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    exp_file = tmp_path / "c2"
    exp_file.mkdir()
    (exp_file / "t").write_text("the experiment folder is a file")
    params = [{"dir": str(runs), "i": i} for i in range(4)]
    for cache, reason in ((a_file, "not a directory"), (a_file / "sub", "cannot be used"),
                          (dangling, "symbolic link"), (fifo, "FIFO"), (exp_file, "not a directory")):
        with deadline(60), pytest.raises(sw.CacheError, match=reason) as info:
            run_sweep(helpers.marker_task, params, 1, experiment="t", cache=cache, backend=backend, workers=2)
        assert "\n" not in str(info.value) and str(cache) in str(info.value)
        assert isinstance(info.value, ValueError)
    assert ran(runs) == 0, "no task may be computed with an unusable cache"


def test_results_that_cannot_be_cached_are_kept(tmp_path, helpers):
    runs = tmp_path / "runs"
    runs.mkdir()
    params = [{"dir": str(runs), "i": i} for i in range(2)]
    with pytest.warns(sw.CacheWriteWarning, match="not cached"):
        res = run_sweep(helpers.object_task, params, 1, experiment="o", cache=tmp_path / "c", backend="processes",
                        workers=2)
    assert res.stats.computed == 2 and res.stats.failed == 0
    assert [r["i"] for r in res.results] == [0, 1] and res.results[0]["x"][1] == "a"
    assert not list((tmp_path / "c" / "o").glob("*.npz"))


# ------------------------------------------------------------------- no orphans
def _group(pgid: int) -> list[tuple[int, str]]:
    """Live (non-zombie) processes of process group ``pgid``, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] not in "ZX":
                with open(f"/proc/{d}/cmdline", "rb") as fh:
                    out.append((int(d), fh.read().replace(b"\0", b" ").decode(errors="replace")[:120]))
        except (OSError, ValueError, IndexError):
            pass
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_no_orphans_after_sigkill_of_a_processes_sweep(tmp_path, helpers):
    runs = tmp_path / "runs"
    runs.mkdir()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(helpers.__file__).parent)!r})
        from sweep_fault_tasks import marker_task
        from simulations.sweep import run_sweep
        if __name__ == "__main__":
            params = [{{"dir": {str(runs)!r}, "i": i, "t": 30.0}} for i in range(8)]
            run_sweep(marker_task, params, 1, experiment="orphans", backend="processes", workers=2, quiet=True)
    """)
    main = tmp_path / "main.py"
    main.write_text(script)
    proc = subprocess.Popen([sys.executable, str(main)], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while ran(runs) < 2 and time.monotonic() - t0 < 120 and proc.poll() is None:
            time.sleep(0.05)
        assert ran(runs) == 2, "both workers must be running a task"
        members = _group(proc.pid)
        assert len(members) >= 4, members  # the sweep, the fork server, 2 workers (+ resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        t0 = time.monotonic()
        while _group(proc.pid) and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        left = _group(proc.pid)
        assert not left, f"still alive 10 s after SIGKILL of the sweep: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for pid, _ in _group(proc.pid):  # only processes of the session this test started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_workers_are_capped_at_cores_and_tasks(helpers, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    params = [{"dir": str(runs), "i": i} for i in range(2)]
    with pytest.warns(RuntimeWarning, match=r"workers=64 capped at [12]") as record:
        res = run_sweep(helpers.marker_task, params, 1, experiment="w", backend="processes", workers=64)
    assert res.stats.computed == 2
    pids = {p.name.rsplit("-", 1)[1] for p in runs.glob("ran-*")}
    assert len(pids) <= 2 and "2 task(s)" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        run_sweep(helpers.marker_task, params[:1], 1, experiment="w", backend="processes")  # default: no warning


# ------------------------------------------------------------------------- dask
dask_distributed = pytest.importorskip("distributed")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _http_server():
    class Quiet(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def _silent_listener():
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    held, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=10)
        for c in held:
            c.close()
        sock.close()


@pytest.mark.parametrize("kind", ["closed port", "http server", "silent listener"])
def test_a_scheduler_address_that_is_no_scheduler_fails_fast(kind):
    timeout = 2.0
    server = {"closed port": lambda: contextlib.nullcontext(f"tcp://127.0.0.1:{_closed_port()}"),
              "http server": _http_server, "silent listener": _silent_listener}[kind]
    with server() as address, deadline(60):
        t0 = time.monotonic()
        with pytest.raises(sw.SchedulerError) as info:
            run_sweep(ridge_task, POINTS[:1], 1, experiment="t", backend="dask", scheduler=address,
                      connect_timeout=timeout)
        elapsed = time.monotonic() - t0
    message = str(info.value)
    assert address in message and "\n" not in message and len(message) < 300, message
    assert elapsed < timeout + 5, f"{kind}: {elapsed:.1f} s"
    assert info.value.__suppress_context__ or info.value.__cause__ is None


def test_a_real_scheduler_is_still_used(tmp_path):
    from distributed import LocalCluster

    with deadline(240), LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                     silence_logs=40) as cluster:
        res = run_sweep(ridge_task, POINTS, 1, experiment="t", backend="dask", scheduler=cluster.scheduler_address,
                        connect_timeout=10)
    assert np.array_equal(as_array(res), as_array(run_sweep(ridge_task, POINTS, 1, experiment="t")))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "5", True, None])
def test_connect_timeout_is_validated(bad):
    with pytest.raises(ValueError, match="connect_timeout"):
        sw.SweepConfig(backend="dask", connect_timeout=bad)
    assert sw.SweepConfig().connect_timeout == 30.0 and sw.SweepConfig(connect_timeout=1).connect_timeout == 1.0


# ------------------------------------------------------------ same bits everywhere
def test_every_backend_runs_tasks_with_the_same_thread_configuration(helpers):
    """Every BLAS/OpenMP pool and Numba at ``threads`` (1) in the task, whatever the backend,
    including libraries a worker loads after it started (scipy's own OpenBLAS)."""
    reports = {b: run_sweep(helpers.thread_report, [{"i": 0}, {"i": 1}], 1, experiment="t", backend=b,
                            workers=2).results for b in ("serial", "processes")}
    for backend, results in reports.items():
        for r in results:
            assert r["numba"] == 1, (backend, r)
            assert r["pools"] and all(n == 1 for _, _, n in r["pools"]), (backend, r)
            assert any(api == "blas" for _, api, _ in r["pools"])


def test_serial_and_processes_give_the_same_bits_when_threads_matter():
    """n > p: the fit goes through multi-threadable BLAS calls of scipy (as ridge-power-law)."""
    spectrum = {"kind": "power-law", "p": 200, "alpha": 1.5, "beta": 1.0}
    pts = [{"spectrum": spectrum, "y2": 1.0 + 0.1**2, "n": n, "lams": [0.0, 1e-4, 1e-2, 1.0]} for n in (2523, 4000)]
    serial = run_sweep(ridge_task, pts, 2, experiment="ridge-power-law-quick")
    procs = run_sweep(ridge_task, pts, 2, experiment="ridge-power-law-quick", backend="processes", workers=2)
    assert as_array(serial).tobytes() == as_array(procs).tobytes()


def test_ridge_power_law_csv_is_byte_identical_on_serial_and_processes(tmp_path):
    from asymptotics import experiments

    for backend in ("serial", "processes"):
        experiments.run("ridge-power-law", quick=True, seeds=2, out=tmp_path / backend, backend=backend, workers=2)
    serial = (tmp_path / "serial" / "ridge-power-law.csv").read_bytes()
    assert serial == (tmp_path / "processes" / "ridge-power-law.csv").read_bytes()
    assert serial.count(b"simulation") > 50

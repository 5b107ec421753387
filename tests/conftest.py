"""Suite-wide: every TFF worker started by a test dies with its parent, and a test that leaves
one running fails (the worker is ended then)."""

import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest
from process_reuse import reusing


def _patch_tff() -> None:
    """Start TFF's workers through fedlm's patch (with a parent-death signal, recorded, and TFF's
    context dropped at exit) once a test module has imported TFF; no 13 s import otherwise. And
    once a test module has imported the round loop, its runs reuse the processes built before."""
    if "tensorflow_federated" in sys.modules:
        from fedlm.federated import workers

        workers.patch_worker_start()
    experiment = sys.modules.get("fedlm.experiment")
    if experiment is not None and not hasattr(experiment.build_learning_process, "built"):
        experiment.build_learning_process = reusing(experiment.build_learning_process)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``-n``, in pyproject's addopts), the tests that share a module- or
    class-scoped fixture (a run made once for several tests) go to one worker together, so the
    fixture is made once; every other test goes wherever a worker is free (``--dist loadgroup``).

    The groups come first, the largest first: xdist hands out work in collection order, and a
    group of minutes collected last (tests/tracking sorts last) would keep one worker busy while
    the others had nothing left to do."""
    groups = {}
    for item in items:
        fixturedefs = getattr(item, "_fixtureinfo", None)
        shared = fixturedefs is not None and any(
            fixturedef.scope in ("module", "class")
            for defs in fixturedefs.name2fixturedefs.values()
            for fixturedef in defs
        )
        if shared:
            group = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group))
            groups.setdefault(group, []).append(item)
    grouped = [item for group in sorted(groups.values(), key=len, reverse=True) for item in group]
    in_a_group = set(map(id, grouped))
    items[:] = grouped + [item for item in items if id(item) not in in_a_group]


def pytest_collection_finish(session):
    # Also when every test is deselected (`-m slow` with none marked): without the patch's exit
    # handler, TFF's ServiceManager.__del__ fails at interpreter exit with a traceback.
    _patch_tff()


def stray_workers(recorded: list[int]) -> list[int]:
    """Pids of running ``worker_binary`` children of this process not in ``recorded`` (fedlm's
    record): started before or without the patch."""
    stray = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid, rest = text.split(" ", 1)
        comm, fields = rest.rsplit(")", 1)
        state, ppid = fields.split()[:2]
        mine = comm == "(worker_binary" and int(ppid) == os.getpid() and state != "Z"
        if mine and int(pid) not in recorded:
            stray.append(int(pid))
    return stray


@pytest.fixture(autouse=True)
def no_tff_worker_left(request):
    """Fail the test that leaves a TFF worker running, and end the worker."""
    _patch_tff()  # a test may import TFF itself
    yield
    if "tensorflow_federated" not in sys.modules:
        return
    from fedlm.federated import workers

    left = workers.running_workers()
    stray = stray_workers(left)
    if not left and not stray:
        return
    workers.end_workers()
    for pid in stray:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    pytest.fail(
        f"{request.node.nodeid} left TFF workers running (ended now): recorded {left}, "
        f"unpatched {stray}. Run TFF computations inside "
        "fedlm.federated.runtime.execution_context.",
        pytrace=False,
    )


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A fedlm cache of the test's own (FEDLM_CACHE_DIR), so nothing reads or writes
    ~/.cache/fedlm."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FEDLM_CACHE_DIR", str(cache))
    return cache


class TextServer:
    """A local HTTP server (127.0.0.1, a free port) that stands in for Project Gutenberg: it
    serves ``files[path]`` with HTTP ``Range`` support, records each request's ``Range`` header
    in ``ranges``, and for a path in ``cut_after`` sends the full ``Content-Length`` but only that
    many bytes before closing the connection (a download cut off); ``ignore_range`` answers
    every request with the whole file (200)."""

    def __init__(self):
        import http.server
        import threading

        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}
        self.ignore_range = False
        self.ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = server.files.get(self.path)
                requested = self.headers.get("Range")
                server.ranges.append(requested)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if requested and not server.ignore_range:
                    start = int(requested.removeprefix("bytes=").removesuffix("-"))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                sent = body[start:]
                if self.path in server.cut_after:
                    sent = sent[: server.cut_after[self.path]]
                    self.close_connection = True
                self.wfile.write(sent)

            def log_message(self, format, *args):  # quiet
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture
def text_server():
    """A :class:`TextServer` for the test, shut down after it."""
    server = TextServer()
    yield server
    server.close()


@pytest.fixture
def closed_port_url():
    """An http:// address on 127.0.0.1 where nothing listens (a machine offline)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"

"""Shared fixtures: the 64 MiB test corpus (built once per session) and a mount point for tests
that drive the daemon themselves."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mount_util import check_daemon_log, force_cleanup, fuse_unavailable
from zramd.host.rundir import run_name

CORPUS_SHA256 = "fa2184640cee654809bae29d8e63ff9a1950e0d149f11c1ab4b1fc97d2286aea"


@pytest.fixture(scope="session")
def corpus64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test corpus: a reproducible tar of Python's library and the docs, cut at 64 MiB.

    On the machine tests/data/ was recorded on, its sha256 is CORPUS_SHA256; elsewhere the content
    differs, which is fine for side-by-side comparisons (both sides get the same bytes)."""
    path = tmp_path_factory.mktemp("corpus") / "corpus64.img"
    roots = [r for r in ("usr/lib/python3.11", "usr/share/doc") if (Path("/") / r).is_dir()]
    if not roots:
        pytest.skip("no /usr/lib/python3.11 or /usr/share/doc to build the corpus from")
    tar = subprocess.Popen(
        ["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", *roots],
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert tar.stdout is not None
    data = tar.stdout.read(64 << 20)
    tar.kill()
    tar.wait()
    path.write_bytes(data)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session", autouse=True)
def _remove_daemon_logs_of_test_mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Daemons started on this session's temporary mount points log to /run/zramd/<name>.log;
    remove those logs when the session ends (nothing else of the tests' may stay behind), and
    only this session's: another pytest run may be using its own."""
    yield
    stem = run_name(str(tmp_path_factory.getbasetemp()))
    for log in Path("/run/zramd").glob(f"{stem}-*.log"):
        log.unlink(missing_ok=True)


@pytest.fixture
def mountpoint(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """An empty directory to mount zramd on, for tests that drive the daemon themselves; skips
    where FUSE or root is missing, and tears down whatever is left on it afterwards. The daemon's
    log must then hold no error but those the test declares with ``@pytest.mark.daemon_log``."""
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    path = tmp_path / "m"
    path.mkdir()
    marker = request.node.get_closest_marker("daemon_log")
    try:
        yield path
    finally:
        force_cleanup(path)
    check_daemon_log(path, tuple(marker.args) if marker else ())

"""``survey2survey.atomic``: whole files or nothing, the umask's mode, no clobbering."""

import os
import subprocess
import sys

import pytest

from survey2survey import atomic


def test_write_replaces_atomically_with_the_umask_mode(tmp_path):
    path = tmp_path / "a.bin"
    old = os.umask(0o027)
    try:
        atomic.write_bytes(path, b"one")
        atomic.write_bytes(path, b"two")  # overwrite is the default
    finally:
        os.umask(old)
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o640  # 0666 minus the umask, not mkstemp's 0600
    assert os.listdir(tmp_path) == ["a.bin"]


def test_no_overwrite_keeps_the_existing_file(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        atomic.write_bytes(path, b"theirs", overwrite=False)
    with pytest.raises(FileExistsError):  # taken between the check and the rename: the link refuses
        with atomic.atomic_write(tmp_path / "b.bin", overwrite=False) as fh:
            fh.write(b"late")
            (tmp_path / "b.bin").write_bytes(b"first")
    assert path.read_bytes() == b"mine" and (tmp_path / "b.bin").read_bytes() == b"first"
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b.bin"]


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(tmp_path / "a.bin") as fh:
            fh.write(b"half")
            raise RuntimeError("writer died")
    assert os.listdir(tmp_path) == []
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotADirectoryError):  # an OSError for the caller to report; no stray file either
        atomic.write_bytes(tmp_path / "a_file" / "x", b"")
    assert os.listdir(tmp_path) == ["a_file"]


def test_remove_stale_takes_only_dead_writers_of_this_host(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = atomic._HOST
    stale = tmp_path / f".x.fits.{host}-{dead_pid}-0.tmp"
    live = tmp_path / f".y.fits.{host}-{os.getpid()}-3.tmp"
    other_host = tmp_path / f".z.fits.elsewhere-{dead_pid}-0.tmp"
    mine = tmp_path / ".notes.tmp"
    (tmp_path / "sub").mkdir()
    nested = tmp_path / "sub" / stale.name
    for p in (stale, live, other_host, mine, nested):
        p.write_bytes(b"")
    assert atomic.remove_stale(tmp_path) == 1
    assert not stale.exists() and live.exists() and other_host.exists() and mine.exists() and nested.exists()
    assert atomic.remove_stale(tmp_path, recursive=True) == 1 and not nested.exists()

"""``survey2survey.atomic``: whole files or nothing, the umask's mode, no clobbering."""

import errno
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


# --- AtomicGroup: a group of files flushed to disk together, then named ---------------------------------------


def _write_group(group, directory, names, overwrite=True):
    for name in names:
        with atomic.atomic_write(directory / name, overwrite=overwrite, group=group) as fh:
            fh.write(name.encode())


def test_a_group_is_flushed_once_before_any_file_takes_its_name(tmp_path, monkeypatch):
    seen = []

    def syncfs(fd):  # what is there when the data go to disk: temporary files only
        seen.append(sorted(os.listdir(tmp_path)))

    monkeypatch.setattr(atomic, "_SYNCFS", syncfs)
    monkeypatch.setattr(os, "fsync", lambda fd: seen.append("fsync"))
    with atomic.AtomicGroup() as group:
        _write_group(group, tmp_path, ["a.fits", "b.fits", "c.fits"])
        assert all(n.startswith(".") and n.endswith(".tmp") for n in os.listdir(tmp_path))
        assert group.commit() == {}
    assert len(seen) == 2 and len(seen[0]) == 3 and all(n.endswith(".tmp") for n in seen[0])
    assert seen[1] == "fsync"  # the directory, once, after the renames
    assert sorted(os.listdir(tmp_path)) == ["a.fits", "b.fits", "c.fits"]
    assert (tmp_path / "b.fits").read_bytes() == b"b.fits"


def test_a_group_without_syncfs_fsyncs_each_file(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(atomic, "_SYNCFS", None)
    monkeypatch.setattr(os, "fsync", calls.append)
    with atomic.AtomicGroup() as group:
        _write_group(group, tmp_path, ["a", "b"])
        assert group.commit() == {}
    assert len(calls) == 3  # two files, then the directory
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_a_group_left_uncommitted_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C between the writes and the commit
        with atomic.AtomicGroup() as group:
            _write_group(group, tmp_path, ["a", "b"])
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_a_failed_write_in_a_group_leaves_the_others(tmp_path):
    with atomic.AtomicGroup() as group:
        _write_group(group, tmp_path, ["a"])
        with pytest.raises(RuntimeError):
            with atomic.atomic_write(tmp_path / "b", group=group) as fh:
                fh.write(b"half")
                raise RuntimeError("writer died")
        assert group.commit() == {}
    assert os.listdir(tmp_path) == ["a"]


def test_a_name_taken_before_the_commit_fails_that_file_only(tmp_path):
    with atomic.AtomicGroup() as group:
        _write_group(group, tmp_path, ["a", "b"], overwrite=False)
        (tmp_path / "b").write_bytes(b"another writer's")
        failed = group.commit()
    assert list(failed) == [tmp_path / "b"] and isinstance(failed[tmp_path / "b"], FileExistsError)
    assert (tmp_path / "a").read_bytes() == b"a" and (tmp_path / "b").read_bytes() == b"another writer's"
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_a_failed_flush_fails_the_whole_group_and_names_each_file(tmp_path, monkeypatch):
    def syncfs(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(atomic, "_SYNCFS", syncfs)
    with atomic.AtomicGroup() as group:
        _write_group(group, tmp_path, ["a", "b"])
        failed = group.commit()
    assert sorted(failed) == [tmp_path / "a", tmp_path / "b"]
    assert all(e.errno == errno.EIO and e.filename == str(p) for p, e in failed.items())
    assert os.listdir(tmp_path) == []


def test_syncfs_is_found_on_linux():
    if sys.platform.startswith("linux"):
        assert atomic._SYNCFS is not None
        fd = os.open(".", os.O_RDONLY)
        try:
            atomic._SYNCFS(fd)
        finally:
            os.close(fd)

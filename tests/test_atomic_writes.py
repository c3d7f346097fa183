"""Writers never follow planted links, never delete what they did not create, and publish atomically.

Covers core/atomic.py through its two users: TIFF export (core/export.write_tiff) and
model files (core/checkpoint.save_tensors).
"""

from __future__ import annotations

import errno
import os
import stat
import threading

import numpy as np
import pytest
import tifffile
import torch

from napari_biogan.core import atomic, checkpoint
from napari_biogan.core.errors import OutputExistsError, WriteError
from napari_biogan.core.export import write_tiff

posix_only = pytest.mark.skipif(os.name != "posix", reason="symlinks and modes as on POSIX")


def _tiff(path, value: float = 0.5, overwrite: bool = False):
    return write_tiff(path, np.full((2, 8, 8), value, np.float32), "NYX", {"test": True}, overwrite=overwrite)


def _model(path, value: float = 1.0, overwrite: bool = False):
    return checkpoint.save_tensors(path, {"w": torch.full((4,), value)}, {"family": "dcgan2d"},
                                   overwrite=overwrite)


WRITERS = {"tiff": _tiff, "model": _model}


def _value(path) -> float:
    """What the writer put in ``path`` (to tell two writers' files apart)."""
    if path.suffix == ".tif":
        return float(tifffile.imread(path).flat[0])
    return float(checkpoint.load_tensors(path)[0]["w"][0])


def _names(folder) -> set[str]:
    return {p.name for p in folder.iterdir()}


@posix_only
@pytest.mark.parametrize("kind, name", [("tiff", "OUT.tif"), ("model", "m.safetensors")])
def test_planted_temp_link_is_not_followed(tmp_path, kind, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / f".{name}.tmp").symlink_to(victim)  # the old fixed temporary name
    WRITERS[kind](tmp_path / name)
    assert victim.read_text() == "precious"
    assert (tmp_path / f".{name}.tmp").is_symlink()  # not ours: left alone
    assert _value(tmp_path / name) > 0


@pytest.mark.parametrize("kind, name", [("tiff", "OUT.tif"), ("model", "m.safetensors")])
def test_file_with_the_temp_name_is_not_deleted(tmp_path, kind, name):
    squatter = tmp_path / f".{name}.tmp"
    squatter.write_text("someone else's")
    WRITERS[kind](tmp_path / name)
    assert squatter.read_text() == "someone else's"
    assert _names(tmp_path) == {name, squatter.name}  # and no temporary file of ours is left


@posix_only
@pytest.mark.parametrize("kind, name", [("tiff", "OUT.tif"), ("model", "m.safetensors")])
def test_link_at_the_target_is_replaced_not_followed(tmp_path, kind, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / name).symlink_to(victim)
    with pytest.raises(OutputExistsError):
        WRITERS[kind](tmp_path / name)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputExistsError):  # a dangling link is an existing name too
        WRITERS[kind](tmp_path / "dangling")
    WRITERS[kind](tmp_path / name, overwrite=True)
    assert victim.read_text() == "precious"
    assert not (tmp_path / name).is_symlink() and _value(tmp_path / name) > 0


@posix_only
@pytest.mark.parametrize("kind, name", [("tiff", "OUT.tif"), ("model", "m.safetensors")])
def test_published_files_are_readable_by_others(tmp_path, kind, name):
    path = WRITERS[kind](tmp_path / name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("no_links", [False, True], ids=["link", "reservation"])
@pytest.mark.parametrize("kind, name", [("tiff", "OUT.tif"), ("model", "m.safetensors")])
def test_two_writers_of_one_new_file_exactly_one_wins(tmp_path, monkeypatch, kind, name, no_links):
    if no_links:  # a filesystem without hard links: the O_EXCL reservation path
        def refuse(*_args, **_kwargs):
            raise OSError(errno.EPERM, "Operation not permitted")
        monkeypatch.setattr(atomic.os, "link", refuse)
    # both writers have passed the early "exists?" check and finished their temporary files
    # before either publishes: only the atomic publish can keep them apart
    barrier = threading.Barrier(2, timeout=30)
    real_publish = atomic.publish

    def publish_together(tmp, path, overwrite):
        barrier.wait()
        real_publish(tmp, path, overwrite)

    monkeypatch.setattr(atomic, "publish", publish_together)
    results: dict[float, object] = {}

    def writer(value: float):
        try:
            WRITERS[kind](tmp_path / name, value)
            results[value] = "ok"
        except Exception as err:  # noqa: BLE001 - the test inspects what each writer got
            results[value] = err

    threads = [threading.Thread(target=writer, args=(v,)) for v in (0.25, 0.75)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [v for v, r in results.items() if r == "ok"]
    losers = [r for r in results.values() if r != "ok"]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], OutputExistsError), losers[0]
    assert _value(tmp_path / name) == winners[0]  # the winner's file, intact
    assert _names(tmp_path) == {name}  # the loser's temporary file is gone


def test_publish_refuses_an_existing_name_without_links(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOTSUP, "nope")))
    _tiff(tmp_path / "a.tif", 0.25)
    with pytest.raises(OutputExistsError):
        _tiff(tmp_path / "a.tif", 0.75)
    assert _value(tmp_path / "a.tif") == 0.25
    assert _names(tmp_path) == {"a.tif"}


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_leaves_nothing_behind_tiff(tmp_path, monkeypatch):
    real_imwrite = tifffile.imwrite

    def half_then_full(handle, *args, **kwargs):
        handle.write(b"II*\x00" + bytes(1000))  # a partial file, as a real full disk leaves it
        _disk_full()

    monkeypatch.setattr(tifffile, "imwrite", half_then_full)
    with pytest.raises(WriteError, match="the disk is full"):
        _tiff(tmp_path / "new.tif")
    assert _names(tmp_path) == set()
    # an existing file is kept whole when overwriting it fails
    monkeypatch.setattr(tifffile, "imwrite", real_imwrite)
    _tiff(tmp_path / "old.tif", 0.25)
    monkeypatch.setattr(tifffile, "imwrite", half_then_full)
    with pytest.raises(WriteError, match="the disk is full"):
        _tiff(tmp_path / "old.tif", 0.75, overwrite=True)
    assert _names(tmp_path) == {"old.tif"} and _value(tmp_path / "old.tif") == 0.25


def test_full_disk_leaves_nothing_behind_model(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "fsync", _disk_full)  # the data hits the disk at fsync
    with pytest.raises(WriteError, match="the disk is full") as info:
        _model(tmp_path / "m.safetensors")
    assert "\n" not in str(info.value)
    assert _names(tmp_path) == set()


def test_other_write_errors_are_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for writer in WRITERS.values():
        with pytest.raises(WriteError) as info:
            writer(blocker / "sub" / "out")
        message = str(info.value)
        assert message.endswith(".") and "\n" not in message and "Errno" not in message
    assert blocker.read_text() == "x"

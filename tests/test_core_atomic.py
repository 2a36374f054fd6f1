"""tunepilot.core.atomic: whole-file replacement, and a crash mid-write leaves the old file intact."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tunepilot.core import atomic


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_text_bytes_json(tmp_path):
    path = tmp_path / "a.txt"
    assert atomic.write_text(path, "你好\nworld") == path
    assert path.read_text(encoding="utf-8") == "你好\nworld"
    atomic.write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    atomic.write_json(tmp_path / "a.json", {"name": "小星", "n": 1})
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    assert text == json.dumps({"name": "小星", "n": 1}, ensure_ascii=False, indent=2)  # no trailing newline
    atomic.write_json(tmp_path / "b.json", {"when": object}, indent=None, default=str)
    assert json.loads((tmp_path / "b.json").read_text())["when"] == str(object)
    assert _leftovers(tmp_path) == []


def test_an_exception_mid_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "registry.json"
    path.write_text('{"old": true}', encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic.open_atomic(path, "w") as fh:
            fh.write('{"new": ')
            raise RuntimeError("crashed half-way")
    assert path.read_text(encoding="utf-8") == '{"old": true}'
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_failure_while_committing_leaves_the_old_file(tmp_path, monkeypatch, step):
    path = tmp_path / "summary.json"
    path.write_text("old", encoding="utf-8")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, step, boom)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_text(path, "new content")
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "old"
    assert _leftovers(tmp_path) == []


def test_a_reader_never_sees_the_temp_file_under_the_target_name(tmp_path):
    path = tmp_path / "file-abc.meta.json"
    path.write_text("old", encoding="utf-8")
    with atomic.open_atomic(path, "w") as fh:
        fh.write("new")
        fh.flush()
        # Until the block ends the target still holds the old content, and the temp file is hidden
        # from globs such as `file-*.meta.json`.
        assert path.read_text(encoding="utf-8") == "old"
        assert list(tmp_path.glob("file-*.meta.json")) == [path]
        assert len(_leftovers(tmp_path)) == 1 and _leftovers(tmp_path)[0].endswith(".tmp")
    assert path.read_text(encoding="utf-8") == "new"


def test_mode_is_what_a_plain_open_gives(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    atomic.write_text(tmp_path / "c.toml", "x = 1\n")
    (tmp_path / "plain.toml").write_text("x = 1\n")
    assert stat.S_IMODE((tmp_path / "c.toml").stat().st_mode) == stat.S_IMODE((tmp_path / "plain.toml").stat().st_mode)


def test_open_atomic_refuses_append(tmp_path):
    with pytest.raises(ValueError, match="whole files"):
        with atomic.open_atomic(tmp_path / "x", "a"):
            pass


def test_replace_dir_swaps_a_folder(tmp_path):
    target = tmp_path / "final_adapter"
    target.mkdir()
    (target / "old.bin").write_text("old")
    staging = tmp_path / ".staging" / "final_adapter"
    staging.mkdir(parents=True)
    (staging / "new.bin").write_text("new")
    assert atomic.replace_dir(staging, target) == target
    assert [p.name for p in target.iterdir()] == ["new.bin"]
    assert not staging.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".retired")] == []
    # to a folder that does not exist yet
    other = tmp_path / ".staging" / "merged"
    other.mkdir()
    atomic.replace_dir(other, tmp_path / "merged")
    assert (tmp_path / "merged").is_dir()


def test_replace_dir_puts_the_old_folder_back_when_the_swap_fails(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint-2"
    target.mkdir()
    (target / "state.json").write_text("old")
    staging = tmp_path / ".staging" / "checkpoint-2"
    staging.mkdir(parents=True)
    real_replace = os.replace

    def fail_on_staging(src, dst):
        if str(src) == str(staging):
            raise OSError("cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", fail_on_staging)
    with pytest.raises(OSError, match="cross-device"):
        atomic.replace_dir(staging, target)
    monkeypatch.undo()
    assert (target / "state.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".retired")] == []

"""The model zoo, offline: file:// downloads, checksum refusal, the cache, add-local, and the packaged registry."""

from __future__ import annotations

import argparse
import hashlib
import os
import zipfile
from pathlib import Path

import pytest
import yaml

from vlogger.zoo import MissingWeights, ZooError, add_local, cache_dir, fetch, load_registry, resolve, sha256_file
from vlogger.zoo.cli import add_zoo_parser

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)  # several download chunks, not a multiple of one
WRONG = "0" * 64


def _entry(url: str, sha256: str | None, size: int | None, **extra) -> dict:
    return {"url": url, "sha256": sha256, "size": size, "licence": "test", "purpose": "test", "format": "bin", **extra}


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache in tmp_path and a registry whose URLs are file:// paths there; returns the source file."""
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path / "home"))
    src = tmp_path / "src" / "model.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    archive = tmp_path / "src" / "pack.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("pack/readme.txt", "not this one")
        z.writestr("pack/model.onnx", PAYLOAD)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    registry = {
        "good": _entry(src.as_uri(), sha, len(PAYLOAD)),
        "bad_sha": _entry(src.as_uri(), WRONG, len(PAYLOAD)),
        "bad_size": _entry(src.as_uri(), sha, len(PAYLOAD) + 1),
        "unhashed": _entry(src.as_uri(), None, None),
        "zipped": _entry(archive.as_uri(), sha, len(PAYLOAD), member="model.onnx"),
        "gone": _entry((tmp_path / "nowhere" / "w.pth").as_uri(), sha, len(PAYLOAD)),
    }
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("VLOGGER_ZOO_REGISTRY", str(tmp_path / "registry.yaml"))
    return src


def _cache_files() -> list[str]:
    return sorted(p.name for p in cache_dir().rglob("*") if p.is_file())


def test_fetch_verifies_caches_and_does_not_download_again(zoo: Path) -> None:
    path = fetch("good", progress=False)
    assert path.read_bytes() == PAYLOAD
    assert path.is_relative_to(cache_dir()) and cache_dir().is_relative_to(zoo.parents[1] / "home")
    assert resolve("good") == path
    assert not [n for n in _cache_files() if n.endswith(".part")]
    zoo.unlink()  # a second fetch that tried to download would now fail
    assert fetch("good", progress=False) == path
    with pytest.raises(ZooError, match="could not download"):
        fetch("good", force=True, progress=False)
    assert resolve("good") == path  # a failed forced fetch keeps the verified copy


@pytest.mark.parametrize(("name", "message"), [("bad_sha", f"expected sha256 {WRONG}"), ("bad_size", "size mismatch")])
def test_bad_download_is_refused_and_leaves_nothing(zoo: Path, name: str, message: str) -> None:
    with pytest.raises(ZooError, match=message) as err:
        fetch(name, progress=False)
    assert name in str(err.value) and "model.bin" in str(err.value)
    if name == "bad_sha":
        assert hashlib.sha256(PAYLOAD).hexdigest() in str(err.value)
    assert _cache_files() == []
    with pytest.raises(MissingWeights):
        resolve(name)


def test_fetch_without_registry_hash_still_caches(zoo: Path) -> None:
    assert fetch("unhashed", progress=False).read_bytes() == PAYLOAD
    assert resolve("unhashed").name == "model.bin"


def test_fetch_zip_member(zoo: Path) -> None:
    path = fetch("zipped")  # with the progress bar
    assert path.name == "model.onnx" and path.read_bytes() == PAYLOAD
    assert _cache_files() == ["model.onnx", "model.onnx.sha256"]


def test_network_failure_names_url_and_add_local(zoo: Path) -> None:
    with pytest.raises(ZooError) as err:
        fetch("gone", progress=False)
    assert "nowhere/w.pth" in str(err.value)
    assert "vlogger zoo add-local gone /path/to/w.pth" in str(err.value)
    assert _cache_files() == []


def test_add_local_checks_hash(zoo: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(PAYLOAD[:-1] + b"x")
    with pytest.raises(ZooError, match=f"expected sha256 {hashlib.sha256(PAYLOAD).hexdigest()}"):
        add_local("good", wrong)
    assert _cache_files() == []
    path = add_local("good", zoo)
    assert resolve("good") == path and path.read_bytes() == PAYLOAD
    assert path.stat().st_ino == zoo.stat().st_ino  # same filesystem: hard-linked, not copied
    with pytest.raises(ZooError, match="checksum mismatch"):
        add_local("good", wrong)
    assert resolve("good").read_bytes() == PAYLOAD


def test_add_local_unknown_name_records_local_entry(zoo: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.ckpt"
    mine.write_bytes(b"my checkpoint")
    with pytest.raises(ZooError, match="unknown weights 'mine'"):
        resolve("mine")
    path = add_local("mine", mine)
    entry = load_registry()["mine"]
    assert entry.sha256 == sha256_file(mine) and entry.size == len(b"my checkpoint")
    assert resolve("mine") == path and path.read_bytes() == b"my checkpoint"
    assert (cache_dir() / "registry.local.yaml").is_file()
    with pytest.raises(ZooError, match="bad entry name"):
        add_local("../escape", mine)


def test_resolve_missing_says_which_command(zoo: Path) -> None:
    with pytest.raises(MissingWeights) as err:
        resolve("good")
    assert "vlogger zoo fetch good" in str(err.value)
    assert "vlogger zoo add-local good /path/to/model.bin" in str(err.value)


def test_cli(zoo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="vlogger")
    add_zoo_parser(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> int:
        args = parser.parse_args(["zoo", *argv])
        return args.func(args)

    assert run("path", "good") == 2
    assert "error: " in capsys.readouterr().err
    assert run("fetch", "bad_sha") == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert run("fetch", "good") == 0
    assert capsys.readouterr().out.strip() == str(resolve("good"))
    assert run("add-local", "mine", str(zoo)) == 0
    assert run("path", "mine") == 0
    capsys.readouterr()
    assert run("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "here", "size", "licence", "purpose"]
    rows = {line.split()[0]: line.split()[2] for line in lines[1:]}
    assert rows["good"] == "yes" and rows["bad_sha"] == "no" and rows["mine"] == "yes"


def test_packaged_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path))
    monkeypatch.delenv("VLOGGER_ZOO_REGISTRY", raising=False)
    registry = load_registry()
    expected = {"syncnet_v2", "arcface_w600k_r50", "fid_inception_v3", "i3d_torchscript", "blazeface", "3ddfa_v2_mb05"}
    assert expected <= set(registry)
    for entry in registry.values():
        assert entry.licence and entry.purpose and entry.format
        if entry.kind == "weights" and entry.path is None:  # downloaded from its official URL, never a mirror
            assert entry.url.startswith(("http://", "https://"))
    assert registry["arcface_w600k_r50"].member == "w600k_r50.onnx"
    assert registry["blazeface"].sha256 and registry["3ddfa_v2_mb05"].sha256


@pytest.mark.parametrize(
    ("name", "rel"), [("blazeface", "blazeface/blazeface.pth"), ("3ddfa_v2_mb05", "3ddfa_v2/mb05_120x120.pth")]
)
def test_shared_weights_match_packaged_hash(
    name: str, rel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_dir: Path
) -> None:
    src = shared_dir / "weights" / rel
    if not src.is_file():
        pytest.skip(f"{src} not found (set VLOGGER_SHARED to the shared/ folder)")
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path))
    monkeypatch.delenv("VLOGGER_ZOO_REGISTRY", raising=False)
    path = add_local(name, src)
    assert resolve(name) == path
    assert sha256_file(path) == load_registry()[name].sha256

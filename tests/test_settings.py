import pytest

from docqa.errors import SettingsError
from docqa.settings import Settings, update_toml


def test_sources_in_order(tmp_path, monkeypatch):
    f = tmp_path / "docqa.toml"
    f.write_text('top_k = 6\nprofile = "small"\n')
    monkeypatch.setenv("DOCQA_TOP_K", "7")
    s = Settings.load(f, retrieval="bm25")
    assert (s.top_k, s.profile, s.retrieval, s.settings_file) == (7, "small", "bm25", f)
    assert Settings.load(f, top_k=None).top_k == 7  # None overrides are ignored


def test_unknown_keys_are_errors(tmp_path, monkeypatch):
    f = tmp_path / "docqa.toml"
    f.write_text("topk = 3\n")
    with pytest.raises(SettingsError, match="topk"):
        Settings.load(f)
    monkeypatch.setenv("DOCQA_TOPK", "3")
    with pytest.raises(SettingsError, match="DOCQA_TOPK"):
        Settings.load()


def test_bad_values_name_the_key(monkeypatch):
    monkeypatch.setenv("DOCQA_CHUNK_TOKENS", "999")
    with pytest.raises(SettingsError, match="chunk_tokens"):
        Settings.load()


def test_update_toml_keeps_other_keys(tmp_path):
    f = tmp_path / "docqa.toml"
    f.write_text('profile = "small"\n')
    update_toml(f, {"min_score": 0.42})
    s = Settings.load(f)
    assert (s.profile, s.min_score) == ("small", 0.42)

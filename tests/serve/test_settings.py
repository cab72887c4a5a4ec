"""Settings precedence, API keys kept hashed, collection names."""

from __future__ import annotations

import hashlib

import pytest

from embedops.errors import ConfigError
from embedops.serve.auth import KeyChecker, read_keys_file
from embedops.serve.settings import ServeSettings, ServingConfig, check_collection_name, parse_collections


def test_flags_override_env_override_file():
    section = ServingConfig(port=9000, max_inputs=100, models=["a"])
    env = {"EMBEDOPS_PORT": "9100", "EMBEDOPS_MAX_INPUTS": "50", "EMBEDOPS_AUTH": "false",
           "EMBEDOPS_COLLECTIONS": "one=/data/one,two=rel/two", "EMBEDOPS_CORS_ORIGINS": "http://a, http://b"}
    s = ServeSettings.resolve(section, env=env, port=9200)
    assert (s.port, s.max_inputs, s.models, s.auth) == (9200, 50, ["a"], False)
    assert s.collections == {"one": "/data/one", "two": "rel/two"}
    assert s.cors_origins == ["http://a", "http://b"]
    assert ServeSettings.resolve(env={"EMBEDOPS_AUTH": "0"}).cors_origins == []  # CORS off by default


def test_auth_needs_keys_and_keeps_only_hashes(tmp_path):
    with pytest.raises(ConfigError, match="no API key"):
        ServeSettings.resolve(env={})
    keys_file = tmp_path / "keys"
    stored = hashlib.sha256(b"from-file-hashed").hexdigest()
    keys_file.write_text(f"# comment\nfrom-file-plain\nsha256:{stored}\n")
    s = ServeSettings.resolve(env={"EMBEDOPS_API_KEYS": "env-key"}, api_keys_file=str(keys_file))
    assert "env-key" not in repr(s) and "env-key" not in s.model_dump_json()
    checker = KeyChecker(s.api_key_hashes)
    assert all(checker.check(k) for k in ("env-key", "from-file-plain", "from-file-hashed"))
    assert not any(checker.check(k) for k in ("", None, "env-key ", "sha256:" + stored))
    keys_file.write_text("sha256:nothex\n")
    with pytest.raises(ConfigError, match="sha256"):
        read_keys_file(keys_file)


def test_invalid_values_name_the_field():
    with pytest.raises(ConfigError, match="max_queue"):
        ServeSettings.resolve(env={"EMBEDOPS_AUTH": "false", "EMBEDOPS_MAX_QUEUE": "-1"})


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".git", "", "x" * 65, "a..b", "a b"])
def test_bad_collection_names(name):
    with pytest.raises(ValueError):
        check_collection_name(name)


def test_collection_pairs():
    assert parse_collections(["docs=/srv/docs", "/srv/other"]) == {"docs": "/srv/docs", "other": "/srv/other"}

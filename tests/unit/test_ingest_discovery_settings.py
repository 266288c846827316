"""The settings of several workers per host and of forgetting gone consumers."""
import json

import pytest

from core import config
from ingest.metrics import write_atomically


def test_defaults():
    settings = config.load({})
    assert settings.ingest_targets_path == config.REPO_ROOT / "var" / "run" / "prometheus"
    assert settings.ingest_consumer_idle_ms == 60_000


def test_targets_dir_relative_to_the_repository_absolute_as_given_or_off(tmp_path):
    assert config.load({"OG_INGEST_TARGETS_DIR": "x/y"}).ingest_targets_path == config.REPO_ROOT / "x" / "y"
    assert config.load({"OG_INGEST_TARGETS_DIR": str(tmp_path)}).ingest_targets_path == tmp_path
    assert config.load({"OG_INGEST_TARGETS_DIR": ""}).ingest_targets_path is None


@pytest.mark.parametrize("name, value", [("OG_INGEST_CONSUMER_IDLE_MS", "0"),
                                         ("OG_INGEST_CONSUMER_IDLE_MS", "soon"),
                                         ("OG_INGEST_TARGETS_DIR", "README.md")])
def test_bad_values_are_refused_with_their_name(name, value):
    with pytest.raises(config.SettingsError, match=name):
        config.load({name: value})


def test_a_target_file_is_replaced_whole(tmp_path):
    path = tmp_path / "ingest-9108.json"
    write_atomically(path, [{"targets": ["127.0.0.1:9108"], "labels": {"consumer": "a"}}])
    write_atomically(path, [{"targets": ["127.0.0.1:9108"], "labels": {"consumer": "b"}}])
    assert json.loads(path.read_text())[0]["labels"] == {"consumer": "b"}
    assert [p.name for p in tmp_path.iterdir()] == ["ingest-9108.json"]  # no temp file left

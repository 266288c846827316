"""Settings are checked once, at start, with a message that names every bad variable."""
import pytest

from core import config


def test_defaults_need_no_environment():
    settings = config.load({})
    assert settings == config.Settings()
    assert settings.backend == "redis" and settings.stream_partitions == 1
    assert settings.consumer_name  # <hostname>-<pid> by default


def test_values_are_parsed_to_their_types():
    settings = config.load({"OG_STREAM_PARTITIONS": "12", "OG_EPSILON": "0", "OG_SEED": "7",
                            "OG_DATABASE_TIMEOUT": "0.5", "OG_INGEST_METRICS_PORT": "0",
                            "OG_BACKEND": "sqlite", "OG_SEED_UNRELATED": "x"})
    assert (settings.stream_partitions, settings.epsilon, settings.seed) == (12, 0.0, 7)
    assert (settings.database_timeout, settings.ingest_metrics_port) == (0.5, 0)
    assert config.load({"OG_SEED": ""}).seed is None


@pytest.mark.parametrize("name, value", [
    ("OG_STREAM_PARTITIONS", "0"), ("OG_STREAM_PARTITIONS", "two"), ("OG_EPSILON", "1.5"),
    ("OG_EPSILON", "nan"), ("OG_BACKEND", "mongo"), ("OG_REDIS_TIMEOUT", "0"),
    ("OG_DATABASE_TIMEOUT", "-1"), ("OG_INGEST_BATCH_SIZE", "0"), ("REDIS_URL", "127.0.0.1:6379"),
    ("DATABASE_URL", "postgresql://x"), ("OG_CONVERSATION_TTL", "0"), ("OG_LOG_LEVEL", "loud"),
    ("OG_CONVERSATION_TTL", "9223372036854775"),
    ("OG_BIND", "5000"), ("OG_WORKERS", "0"), ("OG_INGEST_METRICS_PORT", "70000"),
])
def test_a_bad_value_is_refused_with_its_name(name, value):
    with pytest.raises(config.SettingsError) as refused:
        config.load({name: value})
    assert name in str(refused.value) and repr(value) in str(refused.value)


def test_every_bad_variable_is_named_at_once():
    with pytest.raises(config.SettingsError) as refused:
        config.load({"OG_STREAM_PARTITIONS": "0", "OG_EPSILON": "2"})
    assert "OG_STREAM_PARTITIONS" in str(refused.value) and "OG_EPSILON" in str(refused.value)

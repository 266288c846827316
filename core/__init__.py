"""The shared core of the API (server/) and the ingest worker (ingest/): settings, the
Redis key layout, the timestamp format and the MariaDB schema with its range buckets."""

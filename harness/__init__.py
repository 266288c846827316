"""Process orchestration shared by the tests and the benchmarks: private Redis, Redis
Cluster, MariaDB, gunicorn, nginx (servers.py), the benchmark stack (stack.py) and
headless Chromium (browser.py)."""

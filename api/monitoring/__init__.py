"""Prometheus metrics of the API (``GET /metrics/prometheus``, ``api.routes.prometheus``): request
latency measured in this process (``http.py``) and job gauges read from the database at scrape
time (``jobs_collector.py``), so every API process reports the same service-wide values."""

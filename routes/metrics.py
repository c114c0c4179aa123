from controller import metrics

# At the root, not under /api: where Prometheus looks by default.
RULES = [("GET", "/metrics", metrics.scrape)]

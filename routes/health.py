from controller import health

RULES = [("GET", "/health", health.health)]

"""Health: dependency status, liveness and readiness, for load balancers and orchestrators. No token needed."""

from controller import health

RULES = [
    ("GET", "/health", health.health),
    ("GET", "/health/live", health.live),
    ("GET", "/health/ready", health.ready),
]

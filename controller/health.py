"""Health check for load balancers and operators."""

from services.health import check_health


def health():
    healthy, report = check_health()
    return report, 200 if healthy else 503

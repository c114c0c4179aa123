"""Health checks for load balancers, orchestrators and operators."""

from services.health import check_health, check_ready
from utils.api import endpoint
from utils.schemas.health import HealthSchema, LiveSchema, ReadySchema


@endpoint(response=HealthSchema(), also=(503,))
def health():
    """Database and message-queue status; 503 when one is down."""
    healthy, report = check_health()
    return report, 200 if healthy else 503


@endpoint(response=LiveSchema())
def live():
    """Liveness: 200 while the process serves (draining included); touches no dependency."""
    return {"status": "ok"}


@endpoint(response=ReadySchema(), also=(503,))
def ready():
    """Readiness: 200 when the database (and Redis, when configured) answer; 503 otherwise and while draining."""
    is_ready, report = check_ready()
    return report, 200 if is_ready else 503

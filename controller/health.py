"""Health check for load balancers and operators."""

from services.health import check_health
from utils.api import endpoint
from utils.schemas.health import HealthSchema


@endpoint(response=HealthSchema(), also=(503,))
def health():
    """Database and message-queue status; 503 when one is down."""
    healthy, report = check_health()
    return report, 200 if healthy else 503

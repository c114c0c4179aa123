"""The one error hierarchy: code raises these, the handlers render them in the contract's shape."""


class AppError(Exception):
    """A failure a client may see: a stable `code`, an HTTP status and optional details."""

    code = "internal_error"
    http_status = 500
    default_message = "internal error"

    def __init__(self, message=None, details=None, headers=None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}

    def to_dict(self):
        """Return the contract's error object."""
        error = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class ValidationFailed(AppError):
    code = "validation_error"
    http_status = 400
    default_message = "invalid input"


class BadJson(AppError):
    code = "bad_json"
    http_status = 400
    default_message = "body must be a JSON object"


class Unauthorized(AppError):
    code = "unauthorized"
    http_status = 401
    default_message = "authentication required"


class Forbidden(AppError):
    code = "forbidden"
    http_status = 403
    default_message = "not allowed"


class NotFound(AppError):
    code = "not_found"
    http_status = 404
    default_message = "not found"

    @classmethod
    def room(cls, room_id):
        return cls(f"room {room_id} not found")

    @classmethod
    def message(cls, message_id):
        return cls(f"message {message_id} not found")

    @classmethod
    def user(cls, user_id):
        return cls(f"user {user_id} not found")


class MethodNotAllowed(AppError):
    code = "method_not_allowed"
    http_status = 405
    default_message = "method not allowed"


class Conflict(AppError):
    code = "conflict"
    http_status = 409
    default_message = "already exists"

    @classmethod
    def taken(cls, field, value, noun=None):
        """The conflict of a unique `field` whose `value` another document holds."""
        return cls(f"{noun or field} {value!r} is taken", {field: ["Already taken."]})


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    http_status = 413
    default_message = "request body too large"


class RangeNotSatisfiable(AppError):
    code = "range_not_satisfiable"
    http_status = 416
    default_message = "the range starts past the end of the file"

    def __init__(self, size):
        super().__init__(headers={"Content-Range": f"bytes */{size}"})


class RateLimited(AppError):
    code = "rate_limited"
    http_status = 429
    default_message = "too many requests"

    def __init__(self, retry_after, message=None):
        retry_after = max(1, int(retry_after))
        super().__init__(message, {"retryAfter": [str(retry_after)]}, {"Retry-After": str(retry_after)})


class InternalError(AppError):
    pass


BY_STATUS = {
    cls.http_status: cls for cls in (BadJson, Unauthorized, Forbidden, NotFound, MethodNotAllowed, PayloadTooLarge)
}

"""Extension singletons, bound to the app in `server.create_app`, importable without it."""

from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_socketio import SocketIO

socketio = SocketIO()
jwt = JWTManager()
limiter = Limiter(key_func=get_remote_address)

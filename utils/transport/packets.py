"""Mixed into python-socketio's Server: what a client may send, and how long it may stay anonymous; and the packets
it makes (`TextFirstPacket`).

- Only the client events of our table are dispatched. Any other name, a reserved one such
  as `disconnect` above all (python-socketio would hand it to our disconnect handler and
  the socket would vanish from presence while still receiving its rooms), or a packet
  whose event is not a string, is answered with the `not_found` error ack.
- Binary packets are refused with an error ack; their attachments are dropped, so a
  binary event that never completes cannot grow memory.
- An event whose JSON cannot be read (malformed, or nested deeper than the parser goes)
  gets the `validation_error` ack when its header names an ack id.
- Events are counted against a budget before anything is decoded or started for them
  (`EventBudgets`: a user's sockets on this process share one, a connection not yet
  authenticated has its own). One over it gets the `rate_limited` ack, unread, and the
  connection stays, as for any limit. The users' own limits (`MESSAGE_RATE_LIMIT`, ...) are counted inside the
  handlers, which thousands of events in one write each reached: the process served nobody
  else for seconds.
- An Engine.IO connection that has not joined the default namespace (authenticated)
  within `auth_timeout` seconds is closed; so is one that left it (the client's
  DISCONNECT packet, or the server's disconnect at a logout) and has not joined again
  within `auth_timeout`. Such a connection counts in `MAX_CONNECTIONS` and in no user's
  `MAX_SOCKETS_PER_USER`: answering pings must not keep it.
"""

import logging
import re
import time

from socketio import packet
from socketio.exceptions import ConnectionRefusedError

from utils import metrics
from utils.errors import Conflict, NotFound, RateLimited, ValidationFailed

log = logging.getLogger("chat.socket")
NAMESPACE = "/"
# A Socket.IO packet's header: type, attachments, namespace (without the query python-socketio drops), ack id
# (socket.io-protocol v5).
_HEADER = re.compile(r"(?P<type>\d)(?:\d+-)?(?:(?P<namespace>/[^,?]*)(?:\?[^,]*)?,)?(?P<id>\d{1,15})?")
# The first character of a packet of each type, as it arrives: read for every packet, so made once.
_BINARY = (str(packet.BINARY_EVENT), str(packet.BINARY_ACK))
_CONNECT = str(packet.CONNECT)
_DISCONNECT = str(packet.DISCONNECT)
_EVENT = str(packet.EVENT)
_EVENTS = (_EVENT, str(packet.BINARY_EVENT))


class TextFirstPacket(packet.Packet):
    """python-socketio's packet, told text or binary by its encoding: the stock one walks all of its data looking for
    bytes when it is made (15 µs for a chat message, made twice a send: the broadcast and the ack), where bytes are
    what the JSON encoder refuses. It is made as text; an encoding that meets bytes is done again as binary."""

    def __init__(self, packet_type=packet.EVENT, data=None, namespace=None, id=None, binary=None, encoded_packet=None):
        binary = False if binary is None else binary
        super().__init__(packet_type, data, namespace, id, binary, encoded_packet)

    def encode(self):
        try:
            return super().encode()
        except TypeError:
            if self.packet_type not in _AS_BINARY or not self.data_is_binary(self.data):
                raise
            self.packet_type = _AS_BINARY[self.packet_type]
            return super().encode()


_AS_BINARY = {packet.EVENT: packet.BINARY_EVENT, packet.ACK: packet.BINARY_ACK}


class EventBudgets:
    """Token buckets of events, each `burst` full and refilled at `rate` a second, by key (a user, or a connection
    before it authenticates)."""

    KEPT = 4096  # buckets kept at least before the full ones are let go (a full bucket is as good as none)

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.buckets = {}  # key -> [events left, when last counted]
        self.kept = self.KEPT  # how many buckets before the next look for full ones: twice what the last kept

    def take(self, key):
        """Count one event: 0 when there was one to take, else the seconds until there is."""
        now = time.monotonic()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.kept:
                self.let_full_go(now)
            bucket = self.buckets[key] = [self.burst, now]
        left = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if left >= 1:
            bucket[0] = left - 1
            return 0
        bucket[0] = left
        return (1 - left) / self.rate

    def let_full_go(self, now):
        """Drop the buckets that are full again; look next once twice as many as are left are kept."""
        self.buckets = {k: b for k, b in self.buckets.items() if b[0] + (now - b[1]) * self.rate < self.burst}
        self.kept = max(self.KEPT, 2 * len(self.buckets))


class GuardedServer:
    client_events = frozenset()
    auth_timeout = 10
    event_budgets = None  # EventBudgets where rate limits are on
    event_owner = None  # sid -> the key of the budget its events are counted against (its user's)

    def _handle_event(self, eio_sid, namespace, id, data):
        name = data[0] if isinstance(data, list) and data and isinstance(data[0], str) else None
        if name in self.client_events:
            return super()._handle_event(eio_sid, namespace, id, data)
        log.info("socket unknown event %r", name, extra={"event": name, "outcome": "not_found"})
        return self._error_ack(eio_sid, namespace, id, NotFound(f"unknown event {name!r}"))

    def _over_budget(self, eio_sid, data):
        """Count an event (`data`, still encoded) against its budget; whether it was over it (then it is answered
        `rate_limited`)."""
        sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        wait = self.event_budgets.take(self.event_owner(sid) if sid is not None else eio_sid)
        if not wait:
            return False
        metrics.refused("socket_event")
        self._error_ack_unread(eio_sid, data, RateLimited(wait, f"at most {self.event_budgets.rate:g} events a second"))
        return True

    def _handle_eio_message(self, eio_sid, data):
        if eio_sid not in self.environ:
            return None  # the session was closed and its client read on: its Socket.IO state is gone, none is made
        if not isinstance(data, str):
            return None  # an attachment of a binary packet, which was refused
        kind = data[:1]
        if kind > "9" and kind.isdecimal():  # python-socketio reads any script's decimal digit as the type (`int`)
            kind = str(int(kind))
            data = kind + data[1:]
        if kind in _EVENTS and self.event_budgets is not None and self._over_budget(eio_sid, data):
            return None
        if kind in _BINARY:
            return self._refuse_binary(eio_sid, data)
        # Leaving the namespace makes the connection anonymous again; a `41` from one that never joined changes nothing.
        joined = kind == _DISCONNECT and self.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is not None
        try:
            result = super()._handle_eio_message(eio_sid, data)
        except (ValueError, RecursionError):  # the packet's JSON cannot be read
            if kind == _EVENT:
                self._error_ack_unread(eio_sid, data, ValidationFailed("the event's payload is not valid JSON"))
            elif kind == _CONNECT:
                namespace = _HEADER.match(data)["namespace"]
                self._refuse_connect(eio_sid, namespace, ValidationFailed("the connect's auth is not valid JSON"))
            return None
        if joined and self.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is None:
            self._watch_anonymous(eio_sid)
        return result

    def disconnect(self, sid, namespace=None, ignore_queue=False):
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace or NAMESPACE)  # None for another process's socket
        super().disconnect(sid, namespace, ignore_queue)
        if eio_sid is not None:
            self._watch_anonymous(eio_sid)

    def _refuse_binary(self, eio_sid, data):
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception:  # not even a readable header: nothing to answer
            return None
        if pkt.packet_type == packet.BINARY_EVENT:
            self._error_ack(eio_sid, pkt.namespace, pkt.id, ValidationFailed("binary attachments are not accepted"))
        return None

    def _error_ack_unread(self, eio_sid, data, error):
        """`_error_ack` for a packet not decoded (`data`): the namespace and ack id read off its header."""
        header = _HEADER.match(data)
        if header and header["id"]:
            self._error_ack(eio_sid, header["namespace"], int(header["id"]), error)

    def _error_ack(self, eio_sid, namespace, id, error):
        namespace = namespace or NAMESPACE
        if id is None or self.manager.sid_from_eio_sid(eio_sid, namespace) is None:
            return
        payload = {"ok": False, **error.to_dict()}
        self._send_packet(eio_sid, self.packet_class(packet.ACK, namespace=namespace, id=id, data=[payload]))

    def _handle_connect(self, eio_sid, namespace, data):
        """A CONNECT the server cannot take (a namespace it does not serve, or the one this connection is already in)
        is refused with the error object as a refused token is, not python-socketio's bare "Unable to connect"."""
        namespace = namespace or NAMESPACE
        if namespace != NAMESPACE:
            error = NotFound(f"namespace {namespace} is not served: connect to {NAMESPACE}")
        elif self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
            error = Conflict("this connection is already in the namespace")
        else:
            return super()._handle_connect(eio_sid, namespace, data)
        self._refuse_connect(eio_sid, namespace, error)

    def _refuse_connect(self, eio_sid, namespace, error):
        # The CONNECT_ERROR python-socketio sends for a connect handler's refusal (sockets.events.connect's).
        refused = ConnectionRefusedError(error.message, error.to_dict()).error_args
        self._send_packet(eio_sid, self.packet_class(packet.CONNECT_ERROR, data=refused, namespace=namespace))

    def _handle_eio_connect(self, eio_sid, environ):
        result = super()._handle_eio_connect(eio_sid, environ)
        self._watch_anonymous(eio_sid)
        return result

    def _watch_anonymous(self, eio_sid):
        """Close the connection in `auth_timeout` seconds unless it is then in the default namespace."""
        anonymous = self.__dict__.setdefault("_anonymous", {})
        if not anonymous:
            self.start_background_task(self._close_anonymous)
        anonymous[eio_sid] = time.monotonic() + self.auth_timeout

    def _close_anonymous(self):
        """Close connections still anonymous past their deadline; end when none is left to watch."""
        anonymous = self._anonymous
        while anonymous:
            self.sleep(1)
            now = time.monotonic()
            for eio_sid, deadline in list(anonymous.items()):
                if eio_sid not in self.environ or self.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is not None:
                    del anonymous[eio_sid]
                elif now >= deadline:
                    del anonymous[eio_sid]
                    self._end_session(eio_sid)

    def _end_session(self, eio_sid):
        """engine.io's disconnect, without waiting for the client to take what is queued: a poller that stopped
        polling, or a WebSocket client that stopped reading, never would, and the watch would wait with it."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            socket.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)
            self.eio.sockets.pop(eio_sid, None)

"""Socket.IO client managers: one process (`LocalManager`) or many over Redis (`QueueManager`).

Both pass every emit through `hub.accept` (control messages to their handlers, a chat
message delivered at most once per process), count what reaches this process's sockets
(`Counted`), then deliver to them through `fanout.FanoutManager` (a broadcast's frame built
once, written straight to idle WebSockets), whether the emit was made here or came from another
process over Redis. The queue manager also:
- publishes off the request path: an emit reaches this process's sockets at once and waits
  in a bounded backlog that one greenlet publishes in order, so a hung or dead Redis never
  holds up a send; what could not be published goes out when Redis is back;
- waits, after queueing a control message (a removal, a logout), at most `publish_timeout`
  until it comes back on its own subscription: Redis has then handed it, and everything
  queued before it, to every process, so the request that caused it answers after the
  others have it (not while its own subscription is down: nothing would come back);
- listens on a connection of its own and, when it comes back after a failure, runs the
  reconnect hooks (the services re-check memberships and tell sockets to `resync`);
- delivers each room's chat messages, made here or come from Redis, in their positions' order,
  and a message's states in its versions' order (`ordering.RoomOrder`), the stamp sent beside
  each broadcast to the other processes.
"""

import time
import uuid
from collections import deque
from functools import partial

from redis import Redis
from socketio import RedisManager

from utils import metrics
from utils.outage import Outage
from utils.transport import hub
from utils.transport.fanout import FanoutManager
from utils.transport.ordering import RoomOrder, Stamped

outage = Outage("redis (message queue)", "broadcasts reach this process's sockets only")


class IndexedRooms(FanoutManager):
    """python-socketio's manager, with each socket's rooms kept beside it, and its sockets waiting to connect kept
    in sets.

    The manager keeps `rooms[namespace][room]` only, so a disconnect looked for the socket in
    every room of the process (a copy of the whole table, then a check a room): with thousands
    of sockets, each in its user's channel, a mass disconnect (a deploy, a network blip) cost
    their number squared, with every other socket waiting. Here it leaves just its own rooms.
    `basic_disconnect` is python-socketio's with that loop replaced (`check_internals` holds
    its source to the version it was written against).

    It keeps the sockets whose connect handler has not answered yet in a list a namespace,
    and looks a socket up in it and removes it from it at every connect: a connect storm,
    thousands waiting while their tokens are checked, cost their number squared there too.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rooms_of = {}  # (namespace, sid) -> every room it is in (None and its own sid room too)
        self.pending_connect = _Pending()

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        rooms = self.rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self.rooms_of[namespace, sid]

    def basic_disconnect(self, sid, namespace, **kwargs):
        for room in list(self.rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            if sid in pending.get(namespace, ()):
                pending[namespace].remove(sid)
                if not pending[namespace]:
                    del pending[namespace]

    def get_rooms(self, sid, namespace):
        return [room for room in self.rooms_of.get((namespace, sid), ()) if room is not None]


def _stamped_state(event, data):
    """What a stamped broadcast other than a new message is a state of (a member's read marker, or a message), and the
    message it follows."""
    if event == "read_receipt":
        return ("receipt", data["room"], data["userId"]), data["messageId"]
    return data["id"], data["id"]


class _Pending(dict):
    """`pending_connect`: each list of sids python-socketio stores in it is kept as an insertion-ordered set."""

    def __setitem__(self, namespace, sids):
        super().__setitem__(namespace, _Sids.fromkeys(sids))


class _Sids(dict):
    """A list's `append`, `remove`, `in`, `len` and iteration, each in constant time."""

    def append(self, sid):
        self[sid] = None

    def remove(self, sid):
        del self[sid]


class Counted(IndexedRooms):
    """Counts each emit's deliveries to this process's sockets before python-socketio hands them out:
    one counter add and one histogram observation per emit, the fan-out read from the room's size."""

    def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kwargs):
        metrics.delivered(event, self._local_recipients(namespace, to or room, skip_sid))
        return super().emit(event, data, namespace, room, skip_sid, callback, to, **kwargs)

    def _local_recipients(self, namespace, room, skip_sid):
        rooms = self.rooms.get(namespace, {})
        if isinstance(room, list | tuple):  # python-socketio accepts several rooms (an upper bound: they may overlap)
            return sum(len(rooms.get(each, ())) for each in room)
        members = rooms.get(room, ())
        skipped = skip_sid if isinstance(skip_sid, list) else (skip_sid,)
        return len(members) - sum(1 for sid in skipped if sid is not None and sid in members)


class LocalManager(Counted):
    """The manager of a single process."""

    def emit(self, event, data, namespace=None, room=None, skip_sid=None, callback=None, to=None, **kwargs):
        if hub.accept(event, data):
            return super().emit(event, data, namespace, room, skip_sid, callback, to, **kwargs)
        return None


class QueueManager(RedisManager, Counted):
    """python-socketio's Redis manager, publishing in the background and reporting reconnects.

    `Counted` (then `FanoutManager`) comes after `PubSubManager` in the method order: its `emit` is
    the local delivery that `PubSubManager._handle_emit` (and an emit with `ignore_queue`) calls.
    """

    def __init__(self, url, channel, publish_timeout=2, order_hold=0.25, order_max_wait=20, max_backlog=10_000):
        super().__init__(url, channel=channel)
        self.publish_timeout = publish_timeout
        self.order_hold, self.order_max_wait = order_hold, order_max_wait
        self.order = None  # set by start(): until then (jobs), deliver as emitted
        self.backlog = deque(maxlen=max_backlog)
        self.publisher = None  # set by start(): until then (jobs), publish synchronously
        self.pending = None
        self.echoes = {}  # echo id -> event set when our own control message comes back
        self.listening = False  # subscribed: other processes' broadcasts reach this one

    def start(self, settle):
        """Publish from a background task from now on, deliver each room's messages in order (asking `settle` what
        the database holds of a room when one is late), and subscribe now (a serving process).

        python-socketio subscribes at the first connection; until then the process would count
        as cut off from the others (`queue_down`, `chat_queue_up` 0) while nothing is wrong.
        """
        self.pending = self.server.eio.create_event()
        self.publisher = self.server.start_background_task(self._publish_backlog)
        self.order = RoomOrder(
            self.server, self._listened, settle, self._deliver_stored, self.order_hold, self.order_max_wait
        )
        if not self.server.manager_initialized:
            self.server.manager_initialized = True
            self.initialize()

    def _handle_emit(self, message):
        """Deliver an emit, made here or come from Redis, to this process's sockets: a room's chat messages in their
        positions' order, a message's states in its versions' order (`ordering`)."""
        data = message["data"][0] if len(message["data"]) == 1 else message["data"]
        stamp = message.get("stamp", getattr(data, "stamp", None))
        if stamp is None or self.order is None:
            self._deliver(message, data)
        elif message["event"] in ("message", hub.SKIPPED):  # a skipped position is delivered to no socket (`hub`)
            self.order.offer(message["room"], stamp, partial(self._deliver, message, data), data.get("id"))
        else:
            key, message_id = _stamped_state(message["event"], data)
            after = message.get("after", getattr(data, "after", None))
            self.order.state(message_id, key, stamp, partial(self._deliver, message, data), data["room"], after)

    def _deliver(self, message, data):
        if hub.accept(message["event"], data):
            super()._handle_emit(message)

    def _deliver_stored(self, room, message_id, payload):
        """A position read from the database whose broadcast has not come: its message to this process's sockets alone
        (none: a tombstone, a message deleted meanwhile); its broadcast, if it comes, is dropped."""
        if payload is None:
            if message_id is not None:
                hub.first_delivery(message_id)
        else:
            self._deliver({"event": "message", "data": [payload], "namespace": "/", "room": room}, payload)

    def _listened(self, room):
        return bool(self.rooms.get("/", {}).get(room))

    def _publish(self, data):
        payload = data.get("data")
        if isinstance(payload, list) and payload and isinstance(payload[0], Stamped):
            stamped = payload[0]  # beside the payload: a key of its own would reach the clients
            data = {**data, "stamp": stamped.stamp, **({} if stamped.after is None else {"after": stamped.after})}
        if self.publisher is None:
            self._send([data])
            return
        arrived = None
        if data.get("event", "").startswith(hub.CONTROL_PREFIX) and self.listening:
            echo = uuid.uuid4().hex
            arrived = self.echoes[echo] = self.server.eio.create_event()
            data = {**data, "echo": echo}
        if len(self.backlog) == self.backlog.maxlen:
            outage.failed("publish backlog full: dropping the oldest broadcast")
        self.backlog.append(data)
        self.pending.set()
        if arrived is not None:
            arrived.wait(self.publish_timeout)
            self.echoes.pop(data["echo"], None)

    def _publish_backlog(self):
        retry = 0.1
        while True:
            self.pending.wait()
            self.pending.clear()
            while self.backlog:
                batch = [self.backlog[i] for i in range(min(len(self.backlog), 100))]
                try:
                    self._send(batch)
                except Exception as error:  # redis-py raises several kinds; all mean "not published"
                    outage.failed(error)
                    self.redis = None
                    time.sleep(retry)
                    retry = min(retry * 2, 2)
                    continue
                outage.recovered()
                retry = 0.1
                for _ in batch:
                    self.backlog.popleft()

    def _send(self, batch):
        if self.redis is None:
            self.redis = Redis.from_url(
                self.redis_url, socket_timeout=self.publish_timeout, socket_connect_timeout=self.publish_timeout
            )
        pipe = self.redis.pipeline(transaction=False)
        for data in batch:
            pipe.publish(self.channel, self.json.dumps(data))
        started = time.perf_counter()
        pipe.execute()
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)

    def _listen(self):
        retry, subscribed_before = 0.5, False
        while True:
            try:
                pubsub = Redis.from_url(self.redis_url, socket_connect_timeout=2).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self.listening = True
                if subscribed_before:
                    hub.reconnected()
                subscribed_before, retry = True, 0.5
                for message in pubsub.listen():
                    if message["type"] == "message":
                        self._notice_echo(message["data"])
                        yield message["data"]
            except Exception as error:  # the listener must outlive any Redis failure
                self.listening = False
                outage.failed(error)
                time.sleep(retry)
                retry = min(retry * 2, 5)

    def _notice_echo(self, data):
        for echo, arrived in list(self.echoes.items()):
            if echo.encode() in data:
                arrived.set()

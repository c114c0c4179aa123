"""The Socket.IO message queue over Redis, quiet while Redis is down.

python-socketio delivers every emit to this process's sockets before publishing it, so with
Redis down a send still reaches the local room; the stock manager then logs two errors per
emit. This one logs the outage once and its end once.
"""

from socketio import RedisManager

from utils.outage import Outage

outage = Outage("redis (message queue)", "broadcasts reach this process's sockets only")


class QueueManager(RedisManager):
    def __init__(self, url, channel):
        super().__init__(url, channel=channel, redis_options={"socket_connect_timeout": 2})

    def _publish(self, data):
        for _attempt in range(2):  # the second try follows a reconnect, e.g. after a Redis restart
            try:
                if not self.connected:
                    self._redis_connect()
                self.redis.publish(self.channel, self.json.dumps(data))
            except Exception as error:  # any failure means "not published"; redis-py raises several kinds
                self.connected = False
                last_error = error
            else:
                outage.recovered()
                return
        outage.failed(last_error)

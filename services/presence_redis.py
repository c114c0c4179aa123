"""Presence shared by every server process through Redis.

Structures, and why:
- `<channel>:presence:<room>`, a hash sid -> "node|userId|userName": one key per room, so a
  join, a leave, the online list and an eviction each touch one key, and a Lua script can
  count a user's other sockets in the same step as it adds or removes one (two tabs on two
  processes cannot both be "first").
- `<channel>:node:<node>`, a string with a TTL refreshed by a heartbeat: a process that dies
  (SIGKILL, a lost machine) stops refreshing it, and its sockets stop counting once it
  expires. Reads skip dead nodes' entries; the heartbeat of the survivors sweeps them out
  and tells the rooms who went offline.
- `<channel>:nodes`, the set of processes that ever beat: a survivor that removes a dead one
  from it (SREM answers 1 to one caller only) re-broadcasts what it may have stored unsent.

While Redis fails, calls answer a default at once for a second before trying it again, so a
hung Redis costs one timeout a second, not one per join or leave.
"""

import functools
import time
import uuid

from redis import BlockingConnectionPool, Redis, RedisError

from utils.outage import Outage

outage = Outage("redis (presence)", "online lists and multi-tab counts are local to each process until it is back")


RETRY_SECONDS = 1
POOL_WAIT_SECONDS = 5  # how long a call waits for one of the pool's connections


def _guarded(default):
    """While Redis is down, answer `default` instead of failing the join, leave or send around it."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args):
            if time.monotonic() < self.retry_at:
                return default() if callable(default) else default
            try:
                result = method(self, *args)
            except RedisError as error:
                outage.failed(error)
                self.retry_at = time.monotonic() + RETRY_SECONDS
                return default() if callable(default) else default
            outage.recovered()
            return result

        return wrapper

    return decorate


# Count the user's sockets (other than ARGV[1]) on live nodes in hash KEYS[1].
_COUNT_OTHERS = """
local function others(key, sid, user, node_prefix)
  local entries = redis.call('HGETALL', key)
  local alive, n = {}, 0
  for i = 1, #entries, 2 do
    if entries[i] ~= sid then
      local node, uid = string.match(entries[i + 1], '^([^|]*)|([^|]*)|')
      if uid == user then
        if alive[node] == nil then alive[node] = redis.call('EXISTS', node_prefix .. node) end
        if alive[node] == 1 then n = n + 1 end
      end
    end
  end
  return n
end
"""
_ADD = (
    _COUNT_OTHERS
    + """
local existed = redis.call('HEXISTS', KEYS[1], ARGV[1])
local n = others(KEYS[1], ARGV[1], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if existed == 1 or n > 0 then return 0 end
return 1
"""
)
_REMOVE = (
    _COUNT_OTHERS
    + """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if others(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) > 0 then return 0 end
return 1
"""
)
# Drop dead nodes' entries from a room; return "userId|userName" of users left with none.
_SWEEP = """
local entries = redis.call('HGETALL', KEYS[1])
local alive, dead, live_users = {}, {}, {}
for i = 1, #entries, 2 do
  local node, uid, name = string.match(entries[i + 1], '^([^|]*)|([^|]*)|(.*)$')
  if alive[node] == nil then alive[node] = redis.call('EXISTS', ARGV[1] .. node) end
  if alive[node] == 1 then
    live_users[uid] = true
  else
    redis.call('HDEL', KEYS[1], entries[i])
    dead[uid] = name
  end
end
local gone = {}
for uid, name in pairs(dead) do
  if not live_users[uid] then table.insert(gone, uid .. '|' .. name) end
end
return gone
"""


class RedisStore:
    """The presence picture in Redis; see the module docstring for the structures."""

    def __init__(self, url, prefix, node_ttl=15, max_connections=50):
        # Callers beyond `max_connections` wait for one (a blocking pool): redis-py's own pool refuses the 101st
        # at once ("Too many connections"), and a mass disconnect then left users online for good.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=POOL_WAIT_SECONDS,
            decode_responses=True,
            socket_connect_timeout=1,
            socket_timeout=1,
        )
        self.redis = Redis(connection_pool=pool)
        self.prefix = prefix
        self.node = uuid.uuid4().hex
        self.node_ttl = node_ttl
        self.retry_at = 0
        self.beating = False
        self._add = self.redis.register_script(_ADD)
        self._remove = self.redis.register_script(_REMOVE)
        self._sweep = self.redis.register_script(_SWEEP)

    def _room(self, room):
        return f"{self.prefix}:presence:{room}"

    @property
    def _node_prefix(self):
        return f"{self.prefix}:node:"

    @_guarded(True)
    def heartbeat(self):
        """Mark this process alive for another node_ttl seconds; False when it had been counted dead."""
        pipe = self.redis.pipeline()
        pipe.sadd(f"{self.prefix}:nodes", self.node).set(self._node_prefix + self.node, 1, ex=self.node_ttl, get=True)
        was_alive = pipe.execute()[1] is not None or not self.beating
        self.beating = True
        return was_alive

    @_guarded(list)
    def claim_dead_nodes(self):
        """Return the processes found dead that this process is the one to clean up after."""
        nodes = self.redis.smembers(f"{self.prefix}:nodes")
        return [
            node
            for node in nodes
            if not self.redis.exists(self._node_prefix + node) and self.redis.srem(f"{self.prefix}:nodes", node)
        ]

    @_guarded(None)
    def retire(self):
        """Mark this process gone at once (graceful shutdown)."""
        self.redis.pipeline().delete(self._node_prefix + self.node).srem(f"{self.prefix}:nodes", self.node).execute()

    @_guarded(True)
    def add(self, room, sid, user_id, user_name):
        value = f"{self.node}|{user_id}|{user_name}"
        return bool(self._add(keys=[self._room(room)], args=[sid, value, user_id, self._node_prefix]))

    @_guarded(True)
    def remove(self, room, sid, user_id):
        return bool(self._remove(keys=[self._room(room)], args=[sid, user_id, self._node_prefix]))

    @_guarded(dict)
    def sockets(self, room):
        entries = {sid: value.split("|", 2) for sid, value in self.redis.hgetall(self._room(room)).items()}
        nodes = sorted({node for node, _, _ in entries.values()})
        pipe = self.redis.pipeline()
        for node in nodes:
            pipe.exists(self._node_prefix + node)
        alive = dict(zip(nodes, pipe.execute(), strict=True))
        return {sid: (uid, name) for sid, (node, uid, name) in entries.items() if alive[node]}

    @_guarded(list)
    def sweep(self):
        """Remove dead processes' sockets; return [(room, userId, userName)] of users now offline."""
        gone = []
        for key in self.redis.scan_iter(match=f"{self.prefix}:presence:*", count=500):
            room = key.rsplit(":", 1)[1]
            gone += [(room, *entry.split("|", 1)) for entry in self._sweep(keys=[key], args=[self._node_prefix])]
        return gone

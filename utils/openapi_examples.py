"""Realistic examples for the OpenAPI document, by operation id: request bodies, path and query
parameters, success answers; and one error example per status. `tests/test_docs.py` checks each
against its schema."""

ALICE_ID, BOB_ID = "6650f1c2a7b3e41d9c8f0a11", "6650f1d8a7b3e41d9c8f0a12"
ROOM_ID, MESSAGE_ID, OLDER_ID = "6650f2d9a7b3e41d9c8f0a20", "6650f3aaa7b3e41d9c8f0a31", "6650f39ea7b3e41d9c8f0a30"
ALICE = {
    "id": ALICE_ID,
    "username": "alice",
    "displayName": "Alice Martin",
    "role": "user",
    "createdAt": "2026-11-21T10:15:30.123Z",
}
BOB = {**ALICE, "id": BOB_ID, "username": "bob", "displayName": "Bob Okafor", "createdAt": "2026-11-21T10:17:02.481Z"}
_JWT_HEAD = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
TOKENS = {
    "accessToken": f"{_JWT_HEAD}.eyJzdWIiOiI2NjUwZjFjMmE3YjNlNDFkOWM4ZjBhMTEiLCJ0eXBlIjoiYWNjZXNzIn0"
    ".kq3c0Jc6ZC1mV8X9nQ0xYyVw2bN4s7T1aR5uE8dF3gM",
    "refreshToken": f"{_JWT_HEAD}.eyJzdWIiOiI2NjUwZjFjMmE3YjNlNDFkOWM4ZjBhMTEiLCJ0eXBlIjoicmVmcmVzaCJ9"
    ".Zp1mQ8rT4vX2cB6nL0sK9wE3yH7uJ5aD1fG8hR2tY6o",
}
ROOM = {
    "id": ROOM_ID,
    "name": "design-team",
    "description": "Mockups, reviews and the weekly demo",
    "private": True,
    "createdBy": ALICE_ID,
    "createdAt": "2026-11-21T10:20:11.904Z",
    "memberCount": 3,
    "myRole": "owner",
    "kind": "room",
    "lastMessageAt": "2026-11-21T10:24:05.310Z",
    "unreadCount": 0,
    "mentionCount": 0,
    "lastReadMessageId": MESSAGE_ID,
}
GENERAL = {
    **ROOM,
    "id": "6650f0a1a7b3e41d9c8f0a01",
    "name": "general",
    "description": "The room everyone is in",
    "private": False,
    "createdBy": None,
    "createdAt": "2026-11-20T08:00:00.000Z",
    "memberCount": 42,
    "myRole": "member",
}
DM = {
    **ROOM,
    "id": "6650f2f1a7b3e41d9c8f0a22",
    "name": None,
    "description": "",
    "memberCount": 2,
    "myRole": "member",
    "kind": "dm",
}
MESSAGE = {
    "id": MESSAGE_ID,
    "room": ROOM_ID,
    "userId": ALICE_ID,
    "userName": "alice",
    "messageBody": "The new mockups are in the shared folder, comments welcome before Friday.",
    "timeStamp": "2026-11-21T10:24:05.310Z",
    "clientId": "0b6d3f0e-8c1a-4f5e-9a57-2f4c1d7e9b21",
    "editedAt": None,
    "deleted": False,
    "archived": False,
    "replyTo": None,
    "replyCount": 0,
    "lastReplyAt": None,
    "reactions": [{"emoji": "👍", "count": 1, "userIds": [BOB_ID]}],
    "mentions": [BOB_ID],
    "mentionsRoom": False,
    "pinned": False,
}
OLDER = {
    **MESSAGE,
    "id": OLDER_ID,
    "userId": BOB_ID,
    "userName": "bob",
    "messageBody": "Morning! Are the mockups ready?",
    "timeStamp": "2026-11-21T10:22:47.052Z",
    "clientId": None,
    "reactions": [],
    "mentions": [],
}
MEMBER = {"user": BOB, "role": "member", "joinedAt": "2026-11-21T10:21:40.377Z", "online": True}
REACTED = {**MESSAGE, "reactions": [{"emoji": "👍", "count": 2, "userIds": [BOB_ID, ALICE_ID]}], "pinned": False}
PINNED = {**MESSAGE, "reactions": [], "pinned": True}

FILE_ID = "6650f3c4a7b3e41d9c8f0a40"
FILE = {
    "id": FILE_ID,
    "room": ROOM_ID,
    "name": "mockup-v3.png",
    "contentType": "image/png",
    "size": 482113,
    "width": 1600,
    "height": 1000,
    "createdAt": "2026-11-21T10:23:58.772Z",
    "url": f"/api/files/{FILE_ID}?expires=1795777438&sig=0G3aK9mX7bQe2LrT5vYw8zN1cP4dF6hJ2sU9iO0kA3E",
    "thumbnailUrl": f"/api/files/{FILE_ID}/thumbnail?expires=1795777438&sig=Vq8Lm2Xr5Tz0Wc3Ny6Bp9Ka1Sd4Fg7Hj0Ek2Rt5",
}

# The path parameters, by name.
PATH = {
    "room_id": ROOM_ID,
    "message_id": MESSAGE_ID,
    "user_id": BOB_ID,
    "user_ref": "bob",
    "emoji": "👍",
    "file_id": FILE_ID,
}

OPERATIONS = {
    "accounts_register": {
        "request": {"username": "alice", "password": "correct-horse-battery", "displayName": "Alice Martin"},
        "201": {"user": ALICE, **TOKENS},
    },
    "accounts_login": {
        "request": {"username": "alice", "password": "correct-horse-battery"},
        "200": {"user": ALICE, **TOKENS},
    },
    "accounts_refresh": {"200": TOKENS},
    "users_me": {"200": ALICE},
    "users_search": {"query": {"q": "bo", "limit": 10}, "200": {"users": [BOB]}},
    "users_get_user": {"200": BOB},
    "rooms_list_rooms": {"query": {"limit": 20, "kind": "room"}, "200": {"rooms": [ROOM, GENERAL], "nextCursor": None}},
    "rooms_create_room": {
        "request": {"name": "design-team", "description": "Mockups, reviews and the weekly demo", "private": True},
        "201": ROOM,
    },
    "rooms_get_room": {"200": ROOM},
    "rooms_update_room": {"request": {"description": "Mockups, reviews and the weekly demo"}, "200": ROOM},
    "rooms_join_room": {"200": {**ROOM, "private": False, "myRole": "member", "memberCount": 4}},
    "rooms_list_members": {"200": {"members": [{**MEMBER, "user": ALICE, "role": "owner"}, MEMBER]}},
    "rooms_set_member": {"request": {"role": "moderator"}, "200": {**MEMBER, "role": "moderator"}},
    "rooms_list_bans": {
        "200": {"bans": [{"user": BOB, "bannedBy": ALICE_ID, "createdAt": "2026-11-22T09:01:12.640Z"}]}
    },
    "rooms_ban": {"200": {"user": BOB, "bannedBy": ALICE_ID, "createdAt": "2026-11-22T09:01:12.640Z"}},
    "dms_open_dm": {"request": {"userIds": [BOB_ID]}, "201": DM, "200": DM},
    "messages_history": {
        "query": {"room": "design-team", "limit": 2},
        "200": {"messages": [MESSAGE, OLDER], "nextCursor": OLDER_ID},
    },
    "messages_send": {
        "request": {"room": ROOM_ID, "messageBody": MESSAGE["messageBody"], "clientId": MESSAGE["clientId"]},
        "201": MESSAGE,
        "200": MESSAGE,
    },
    "mentions_feed": {"query": {"limit": 20}, "200": {"messages": [MESSAGE], "nextCursor": None}},
    "messages_edit": {
        "request": {"messageBody": "The new mockups are in the shared folder, comments welcome before Thursday."},
        "200": {
            **MESSAGE,
            "messageBody": "The new mockups are in the shared folder, comments welcome before Thursday.",
            "editedAt": "2026-11-21T10:31:44.018Z",
        },
    },
    "reactions_add": {"200": REACTED},
    "reactions_remove": {
        "200": {**REACTED, "reactions": [{"emoji": "👍", "count": 1, "userIds": [BOB_ID]}]},
    },
    "pins_pin": {"200": PINNED},
    "pins_unpin": {"200": {**PINNED, "pinned": False}},
    "pins_list_pins": {"200": {"messages": [PINNED, {**OLDER, "pinned": True}]}},
    "files_upload": {"request": {"room": ROOM_ID, "file": "(the file's bytes)"}, "201": FILE},
    "files_download": {"query": {"expires": "1795777438", "sig": "0G3aK9mX7bQe2LrT5vYw8zN1cP4dF6hJ2sU9iO0kA3E"}},
    "rooms_mark_read": {
        "request": {"messageId": MESSAGE_ID},
        "200": {"room": ROOM_ID, "lastReadMessageId": MESSAGE_ID, "unreadCount": 3, "mentionCount": 1},
    },
    "messages_readers": {
        "200": {"readers": [{"userId": BOB_ID, "userName": "bob", "readAt": "2026-11-21T10:25:12.845Z"}]}
    },
    "search_search": {
        "query": {"q": "mockups fri", "room": "design-team", "limit": 20},
        "200": {"messages": [MESSAGE], "nextCursor": None},
    },
    "health_health": {
        "200": {"status": "ok", "db": "ok", "queue": "ok"},
        "503": {"status": "degraded", "db": "ok", "queue": "down"},
    },
    "health_live": {"200": {"status": "ok"}},
    "health_ready": {
        "200": {"status": "ok", "db": "ok", "queue": "ok"},
        "503": {"status": "draining", "db": "ok", "queue": "ok"},
    },
}


def _error(code, message, details=None):
    return {"error": {"code": code, "message": message, **({"details": details} if details else {})}}


ERRORS = {
    400: _error("validation_error", "invalid input", {"messageBody": ["Length must be between 1 and 4000."]}),
    401: _error("unauthorized", "token expired"),
    403: _error("forbidden", "readonly members cannot post in this room"),
    404: _error("not_found", "room design-team not found"),
    409: _error("conflict", "username 'alice' is taken", {"username": ["Already taken."]}),
    413: _error("payload_too_large", "request body too large"),
    416: _error("range_not_satisfiable", "the range starts past the end of the file"),
    429: _error("rate_limited", "at most 10/second message events", {"retryAfter": ["1"]}),
    500: _error("internal_error", "internal error"),
}

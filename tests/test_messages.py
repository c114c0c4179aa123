"""Messages over REST: history pages, idempotent sends, edits, soft deletes."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from tests.support import assert_error, store_messages

FIELDS = {
    *("id", "room", "userId", "userName", "messageBody", "timeStamp", "clientId", "editedAt", "deleted", "archived"),
    *("replyTo", "replyCount", "lastReplyAt", "reactions", "mentions", "mentionsRoom", "pinned", "attachments"),
}


def _send(api, user, body, room=None, client_id=None):
    payload = {
        "messageBody": body,
        **({"room": room} if room else {}),
        **({"clientId": client_id} if client_id else {}),
    }
    response = api.post("/api/send", user.token, json=payload)
    assert response.status_code == 201, response.text
    return response.json()


def test_send_without_room_goes_to_general_as_in_the_original_api(api, make_user):
    user = make_user()
    message = _send(api, user, "  hello  ")
    assert set(message) == FIELDS
    assert message["messageBody"] == "hello" and message["userId"] == user.id and message["userName"] == user.username
    assert message["clientId"] is None and message["editedAt"] is None
    assert message["deleted"] is False and message["archived"] is False
    assert (message["replyTo"], message["replyCount"], message["lastReplyAt"]) == (None, 0, None)
    assert message["attachments"] == []
    assert (message["reactions"], message["mentions"]) == ([], [])
    assert message["mentionsRoom"] is message["pinned"] is False
    general = api.get("/api/rooms/general", user.token).json()
    assert message["room"] == general["id"]
    assert api.get("/api/messages", user.token).json()["messages"] == [message]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"messageBody": ""}, "messageBody"),
        ({"messageBody": "   "}, "messageBody"),
        ({"messageBody": "x" * 4001}, "messageBody"),
        ({"messageBody": 42}, "messageBody"),
        ({"messageBody": ["a"]}, "messageBody"),
        ({}, "messageBody"),
        ({"room": "general", "messageBody": "hi", "userId": "someone-else"}, "userId"),  # legacy only without room
        ({"messageBody": "hi", "$where": "1"}, "$where"),
        ({"messageBody": "hi", "clientId": {"$ne": None}}, "clientId"),
        ({"messageBody": "hi", "room": {"$gt": ""}}, "room"),
    ],
)
def test_send_validation(api, make_user, body, field):
    error = assert_error(api.post("/api/send", make_user().token, json=body), 400, "validation_error")
    assert field in error["details"]


def test_4000_characters_after_trimming_is_accepted(api, make_user):
    assert _send(api, make_user(), "  " + "y" * 4000 + "  ")["messageBody"] == "y" * 4000


def test_unknown_room_is_404(api, make_user):
    user = make_user()
    response = api.post("/api/send", user.token, json={"room": "ffffffffffffffffffffffff", "messageBody": "x"})
    assert_error(response, 404, "not_found")
    assert_error(api.get("/api/messages?room=nope", user.token), 404, "not_found")


def test_same_client_id_returns_the_first_message_and_stores_nothing(api, make_user, db):
    user = make_user()
    first = api.post("/api/send", user.token, json={"messageBody": "once", "clientId": "c-1"})
    retry = api.post("/api/send", user.token, json={"messageBody": "once", "clientId": "c-1"})
    assert first.status_code == 201 and retry.status_code == 200
    assert retry.json() == first.json()
    assert db.messages.count_documents({"gap": None}) == 1  # the retry's position is filled, nothing stored
    other = make_user()
    assert api.post("/api/send", other.token, json={"messageBody": "mine", "clientId": "c-1"}).status_code == 201


def test_racing_identical_sends_store_exactly_one(api, make_user, db):
    user = make_user()

    def send(_):
        return api.post("/api/send", user.token, json={"messageBody": "race", "clientId": "race-1"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(16)))
    assert sorted(r.status_code for r in responses) == [200] * 15 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert db.messages.count_documents({"client_id": "race-1"}) == 1


def _ids(response):
    return [m["messageBody"] for m in response.json()["messages"]]


def test_history_pages_newest_first_then_older(api, make_user):
    user = make_user()
    sent = [_send(api, user, f"m{i}") for i in range(5)]
    first = api.get("/api/messages?limit=2", user.token)
    assert _ids(first) == ["m4", "m3"] and first.json()["nextCursor"] == sent[3]["id"]
    second = api.get(f"/api/messages?limit=2&before={first.json()['nextCursor']}", user.token)
    assert _ids(second) == ["m2", "m1"]
    last = api.get(f"/api/messages?limit=2&before={second.json()['nextCursor']}", user.token)
    assert _ids(last) == ["m0"] and last.json()["nextCursor"] is None


def test_history_after_is_oldest_first(api, make_user):
    user = make_user()
    sent = [_send(api, user, f"m{i}") for i in range(5)]
    page = api.get(f"/api/messages?limit=2&after={sent[0]['id']}", user.token)
    assert _ids(page) == ["m1", "m2"] and page.json()["nextCursor"] == sent[2]["id"]
    rest = api.get(f"/api/messages?limit=2&after={page.json()['nextCursor']}", user.token)
    assert _ids(rest) == ["m3", "m4"] and rest.json()["nextCursor"] is None


def test_history_edges(api, make_user):
    user = make_user()
    empty = api.get("/api/messages", user.token).json()
    assert empty == {"messages": [], "nextCursor": None}
    sent = [_send(api, user, f"m{i}") for i in range(3)]
    exact = api.get("/api/messages?limit=3", user.token).json()
    assert len(exact["messages"]) == 3 and exact["nextCursor"] is None
    assert _ids(api.get(f"/api/messages?before={sent[0]['id']}", user.token)) == []
    assert _ids(api.get(f"/api/messages?after={sent[2]['id']}", user.token)) == []
    assert api.get("/api/messages?limit=1&limit=100", user.token).status_code == 200


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=-1", "limit=abc", "before=nope", "after=123", "before={a}&after={a}", "x=1"],
)
def test_history_bad_queries(api, make_user, query):
    user = make_user()
    anchor = _send(api, user, "anchor")["id"]
    response = api.get("/api/messages?" + query.replace("{a}", anchor), user.token)
    assert_error(response, 400, "validation_error")


def test_deleted_messages_stay_in_place_with_an_empty_body(api, make_user, db):
    user = make_user()
    kept, gone = _send(api, user, "kept"), _send(api, user, "secret")
    assert api.delete(f"/api/messages/{gone['id']}", user.token).status_code == 204
    assert api.delete(f"/api/messages/{gone['id']}", user.token).status_code == 204
    messages = api.get("/api/messages", user.token).json()["messages"]
    assert [(m["id"], m["deleted"], m["messageBody"]) for m in messages] == [
        (gone["id"], True, ""),
        (kept["id"], False, "kept"),
    ]
    assert db.messages.find_one({"message_body": "secret"}) is None
    response = api.patch(f"/api/messages/{gone['id']}", user.token, json={"messageBody": "back"})
    assert_error(response, 404, "not_found")


def test_edit_validation(api, make_user):
    user = make_user()
    message = _send(api, user, "x")
    for body in ({"messageBody": ""}, {"messageBody": None}, {"body": "x"}):
        assert_error(api.patch(f"/api/messages/{message['id']}", user.token, json=body), 400, "validation_error")


def test_archived_history_of_an_empty_archive(api, make_user):
    user = make_user()
    _send(api, user, "live")
    assert api.get("/api/messages?archived=true", user.token).json() == {"messages": [], "nextCursor": None}


def test_rooms_do_not_leak_into_each_other(api, make_user):
    user = make_user()
    room = api.post("/api/rooms", user.token, json={"name": "side"}).json()
    _send(api, user, "in side", room=room["id"])
    _send(api, user, "in general")
    assert _ids(api.get(f"/api/messages?room={room['id']}", user.token)) == ["in side"]
    assert _ids(api.get("/api/messages?room=general", user.token)) == ["in general"]


def test_history_pages_cross_long_quiet_gaps(api, make_user, db):
    user = make_user()
    room = api.get("/api/rooms/general", user.token).json()["id"]
    ages = [timedelta(days=d) for d in (700, 400, 90, 3)] + [timedelta(hours=2), timedelta(minutes=1)]
    ids = []
    for n, age in enumerate(ages):
        stamp = int((datetime.now(UTC) - age).timestamp())
        oid = ObjectId(stamp.to_bytes(4, "big") + n.to_bytes(8, "big"))
        store_messages(db, room, [{"_id": oid, "room": ObjectId(room), "user_id": ObjectId(user.id),
                                   "user_name": user.username, "message_body": f"age {n}",
                                   "time_stamp": oid.generation_time, "deleted": False}])  # fmt: skip
        ids.append(str(oid))
    newest_first, cursor = [], None
    while True:
        page = api.get("/api/messages?limit=2" + (f"&before={cursor}" if cursor else ""), user.token).json()
        newest_first += [m["id"] for m in page["messages"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert newest_first == ids[::-1]
    oldest_first, cursor = [], ids[0]
    while cursor:
        page = api.get(f"/api/messages?limit=2&after={cursor}", user.token).json()
        oldest_first += [m["id"] for m in page["messages"]]
        cursor = page["nextCursor"]
    assert oldest_first == ids[1:]

"""Message search: every word in any order, case and accents aside, the last also as a prefix; readable rooms only;
deletes and edits re-indexed; cursors; answered from an index (explain) on the live server's own queries."""

import re
from contextlib import contextmanager
from datetime import UTC, datetime
from unittest import mock

import mongoengine
import pymongo
import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model import embedded, message_search
from model.message import Message
from tests.support import Api, assert_error, store_messages
from utils.search_keys import HEAD, MAX_KEYS, Query, index, keys_of, normalize, words_of


def _send(api, user, body, room=None):
    response = api.post("/api/send", user.token, json={"messageBody": body, **({"room": room} if room else {})})
    assert response.status_code == 201, response.text
    return response.json()


def _search(api, user, q, **params):
    response = api.get("/api/search", user.token, params={"q": q, **params})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"messages", "nextCursor"}
    return response.json()


def _bodies(api, user, q, **params):
    return [message["messageBody"] for message in _search(api, user, q, **params)["messages"]]


def _room(api, owner, name, private=False):
    response = api.post("/api/rooms", owner.token, json={"name": name, "private": private})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_every_word_in_any_order_whatever_the_case_or_accents(api, make_user):
    user = make_user()
    _send(api, user, "Le Café est OUVERT jusqu'à minuit")
    _send(api, user, "Die Straße ist NASS")
    _send(api, user, "the cafe is closed")
    assert _bodies(api, user, "ouvert CAFÉ") == ["Le Café est OUVERT jusqu'à minuit"]
    assert _bodies(api, user, "minuit jusqu a") == ["Le Café est OUVERT jusqu'à minuit"]
    assert _bodies(api, user, "cafe") == ["the cafe is closed", "Le Café est OUVERT jusqu'à minuit"]
    assert _bodies(api, user, "strasse nass") == ["Die Straße ist NASS"]
    assert _bodies(api, user, "STRASSE") == _bodies(api, user, "straße") == ["Die Straße ist NASS"]
    assert _bodies(api, user, "cafe nass") == [], "every word, not any"


def test_whole_words_only_but_the_last_word_is_also_a_prefix(api, make_user):
    user = make_user()
    _send(api, user, "hello world")
    _send(api, user, "internationalization matters")
    assert _bodies(api, user, "ello") == [] and _bodies(api, user, "orld") == [], "no infix"
    assert _bodies(api, user, "hel") == ["hello world"]
    assert _bodies(api, user, "h") == ["hello world"]
    assert _bodies(api, user, "world hel") == ["hello world"]
    assert _bodies(api, user, "hel world") == [], "only the last word is a prefix"
    assert _bodies(api, user, "hello worlds") == []
    assert _bodies(api, user, "internationaliz") == ["internationalization matters"]
    assert _bodies(api, user, "internationalization mat") == ["internationalization matters"]
    assert _bodies(api, user, "internationalisation") == []


def test_only_rooms_the_caller_may_read(api, make_user):
    alice, bob, carol, admin = make_user(), make_user(), make_user(), make_user(admin=True)
    private = _room(api, alice, "vault", private=True)
    public = _room(api, carol, "kitchen")
    _send(api, alice, "secret banana recipe", room=private)
    _send(api, carol, "banana bread for everyone", room=public)
    assert _bodies(api, bob, "banana") == ["banana bread for everyone"], "public rooms need no membership"
    assert _bodies(api, alice, "banana") == ["banana bread for everyone", "secret banana recipe"]
    assert _bodies(api, admin, "banana") == ["banana bread for everyone", "secret banana recipe"]
    assert_error(api.get("/api/search", bob.token, params={"q": "banana", "room": private}), 404, "not_found")
    assert_error(api.get("/api/search", bob.token, params={"q": "banana", "room": "vault"}), 404, "not_found")
    assert _bodies(api, alice, "banana", room="vault") == ["secret banana recipe"]
    assert _bodies(api, bob, "banana", room=public) == ["banana bread for everyone"]
    api.put(f"/api/rooms/{private}/members/{bob.id}", alice.token, json={"role": "readonly"})
    assert _bodies(api, bob, "banana") == ["banana bread for everyone", "secret banana recipe"]
    api.delete(f"/api/rooms/{private}/members/{bob.id}", alice.token)
    assert _bodies(api, bob, "banana") == ["banana bread for everyone"], "a removed member reads no more"


def test_deleted_messages_are_not_found_and_edits_are_indexed_again(api, make_user, db):
    user = make_user()
    gone = _send(api, user, "delete this pineapple")
    edited = _send(api, user, "apple pie tonight")
    assert api.delete(f"/api/messages/{gone['id']}", user.token).status_code == 204
    assert _bodies(api, user, "pineapple") == []
    assert "search_keys" not in db.messages.find_one({"_id": ObjectId(gone["id"])}), "a deleted message keeps no keys"
    response = api.patch(f"/api/messages/{edited['id']}", user.token, json={"messageBody": "cherry pie tonight"})
    assert response.status_code == 200
    assert _bodies(api, user, "apple") == []
    assert _bodies(api, user, "cherry pie") == ["cherry pie tonight"]
    assert _search(api, user, "cherry")["messages"][0]["editedAt"] is not None


def test_archived_messages_are_not_searched(api, make_user, db):
    user = make_user()
    room = _room(api, user, "attic")
    for body in ("old lamp", "old chair", "old table"):
        _send(api, user, body, room=room)
    db.rooms.update_one({"_id": ObjectId(room)}, {"$set": {"archived_seq": 2}})  # as the archiver leaves it
    assert _bodies(api, user, "old", room=room) == ["old table"]
    assert _bodies(api, user, "old") == ["old table"]


def test_mention_keys_are_never_searched(api, make_user, db):
    owner, bob = make_user(), make_user()
    room = _room(api, owner, "named")
    assert api.post(f"/api/rooms/{room}/join", bob.token).status_code == 200
    body = f"hi @{bob.username} @room"
    message = _send(api, owner, body, room=room)
    keys = db.messages.find_one({"_id": ObjectId(message["id"])})["search_keys"]
    assert {f"@{bob.id}", f"@room:{room}"} <= set(keys), "the keys the mentions feed reads"
    for q in (bob.id, f"@{bob.id}", f"@room:{room}", room):
        assert _bodies(api, owner, q) == [], q
    assert _bodies(api, owner, f"{bob.username} room") == [body], "its words are found"


@pytest.mark.parametrize("scope", ["room", "all"])
def test_pages_hold_every_hit_once_newest_first(api, make_user, scope):
    user = make_user()
    room = _room(api, user, f"pages-{scope}")
    other = _room(api, user, f"other-{scope}")
    expected = []
    for i in range(23):
        expected.append(_send(api, user, f"page turner {i}", room=room)["id"])
        _send(api, user, f"noise {i}", room=room)
        if scope == "all" and i % 3 == 0:
            expected.append(_send(api, user, f"another page {i}", room=other)["id"])
    params = {"room": room} if scope == "room" else {}
    seen, cursor, pages = [], None, 0
    while True:
        page = _search(api, user, "page", limit=5, **params, **({"before": cursor} if cursor else {}))
        assert len(page["messages"]) <= 5
        seen += [message["id"] for message in page["messages"]]
        cursor, pages = page["nextCursor"], pages + 1
        if cursor is None:
            break
        assert cursor == seen[-1]
    assert seen == expected[::-1], "each hit once, newest first"
    assert pages == -(-len(expected) // 5)


def test_a_room_holding_few_of_a_words_messages_is_read_whole_once_that_is_cheaper(api, make_user, db):
    user = make_user()
    small, big = _room(api, user, "orchard"), _room(api, user, "market")
    first = _send(api, user, "apple one", room=small)
    _send(api, user, "pear", room=small)
    second = _send(api, user, "apple two", room=small)
    # Newer, and more than the small room holds and than one read takes: the word's messages elsewhere.
    bodies = [f"apple {i}" for i in range(message_search.CAP + 100)]
    store_messages(
        db,
        big,
        [{"room": ObjectId(big), "user_id": ObjectId(user.id), "user_name": user.username, "message_body": body,
          "time_stamp": datetime.now(UTC), "search_keys": keys_of(body)} for body in bodies],
    )  # fmt: skip
    with _profiled(db) as finds:
        page = _search(api, user, "apple", room=small, limit=1)
        rest = _search(api, user, "apple", room=small, limit=1, before=page["nextCursor"])
    assert [m["id"] for m in page["messages"] + rest["messages"]] == [second["id"], first["id"]]
    assert page["nextCursor"] == second["id"] and rest["nextCursor"] is None
    assert any("seq" in find["filter"] for find in finds), "the room's own messages were read, not every room's"
    _assert_indexed(db, finds)
    assert _bodies(api, user, "7 apple", room=big, limit=2) == ["apple 7"]


def test_validation(api, make_user):
    user = make_user()

    def refused(field, **params):
        error = assert_error(api.get("/api/search", user.token, params=params), 400, "validation_error")
        assert field in error["details"], error

    refused("q", q="?!... -- ;;")
    refused("q", q="")
    refused("q", q="   ")
    refused("q", q="x" * 201)
    refused("q")
    refused("limit", q="hello", limit=0)
    refused("limit", q="hello", limit=101)
    refused("limit", q="hello", limit="ten")
    refused("before", q="hello", before="not-an-id")
    refused("sort", q="hello", sort="oldest")
    assert _search(api, user, "x" * 200, limit=1)["messages"] == []
    assert _search(api, user, "hello", limit=100)["nextCursor"] is None
    assert_error(api.get("/api/search", params={"q": "hello"}), 401, "unauthorized")


@contextmanager
def _profiled(db):
    """Collect the finds on `messages` the live server sends meanwhile (the database's profiler, as MongoDB's)."""
    finds = []
    db.command("profile", 2)
    try:
        yield finds
    finally:
        db.command("profile", 0)
        finds += [entry["command"] for entry in db.system.profile.find({"command.find": "messages"})]
        db.drop_collection("system.profile")


def _plans(explain):
    """Every stage of a query plan, however deep (MongoDB nests them under queryPlan and inputStages)."""
    if isinstance(explain, dict):
        if "stage" in explain:
            yield explain
        for value in explain.values():
            yield from _plans(value)
    elif isinstance(explain, list):
        for value in explain:
            yield from _plans(value)


def test_the_server_answers_every_search_from_an_index(api, make_user, db):
    """Profile what the live server asks the database during searches of every shape, then explain each query."""
    user = make_user()
    room = _room(api, user, "indexed")
    for i in range(30):
        _send(api, user, f"needle number {i} in the haystack", room=room if i % 2 else None)
    with _profiled(db) as finds:
        first = _search(api, user, "needle", limit=4)
        _search(api, user, "needle", limit=4, before=first["nextCursor"])
        in_room = _search(api, user, "haystack nee", limit=4, room=room)
        _search(api, user, "haystack nee", limit=4, room=room, before=in_room["nextCursor"])
        _search(api, user, "numb")
        _search(api, user, "nothing-like-it")
    assert any("search_keys" in command["filter"] for command in finds)
    _assert_indexed(db, finds)


def _assert_indexed(db, finds):
    """Explain each find: none may scan the collection, each must read an index."""
    for command in finds:
        cursor = db.messages.find(command["filter"], command.get("projection"))
        if command.get("sort"):
            cursor = cursor.sort(list(command["sort"].items()))
        stages = [plan["stage"] for plan in _plans(cursor.limit(command.get("limit", 0)).explain())]
        assert "COLLSCAN" not in stages and any(s in ("IXSCAN", "IDHACK", "EXPRESS_IXSCAN") for s in stages), (
            command["filter"],
            stages,
        )


def test_messages_stored_before_search_keys_are_indexed_at_start_up(server_factory, mongo_uri):
    uri = embedded.with_database(mongo_uri, "search_backfill")
    client = pymongo.MongoClient(uri)
    try:
        database = client.get_default_database()
        for name in ("messages", "rooms", "migrations", "users", "memberships"):
            database.drop_collection(name)
        room = database.rooms.insert_one(
            {"name": "general", "name_key": "general", "description": "", "private": False, "created_by": None,
             "created_at": datetime.now(UTC), "seq": 0, "archived_seq": 0}
        ).inserted_id  # fmt: skip
        author = ObjectId()
        old = [
            {"room": room, "user_id": author, "user_name": "old", "message_body": body, "time_stamp": datetime.now(UTC),
             "deleted": body == ""}
            for body in ("Ancient Scrolls", "", "scrolling along")
        ]  # fmt: skip
        store_messages(database, room, old)
        server = server_factory(uri=uri)
        newcomer = Api(server.url).post("/api/auth/register", json={"username": "reader", "password": "password-123"})
        token = newcomer.json()["accessToken"]
        found = Api(server.url).get("/api/search", token, params={"q": "scroll"}).json()["messages"]
        assert [message["messageBody"] for message in found] == ["scrolling along", "Ancient Scrolls"]
        assert database.migrations.find_one({"_id": "message-search-keys"})
        assert database.messages.count_documents({"search_keys": {"$exists": True}}) == 2, "not the deleted one"
    finally:
        client.close()


@pytest.fixture
def connected(mongo_uri, db):
    """This process's mongoengine connection to the test database, for calling the model directly."""
    mongoengine.connect(host=mongo_uri, tz_aware=True, uuidRepresentation="standard")
    Message.ensure_indexes()
    yield db
    mongoengine.disconnect()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # each example clears its own
@given(
    ages=st.lists(st.integers(-600, 40 * 86400), max_size=40),  # seconds before now; some ids from ahead of this clock
    cap=st.integers(1, 6),
    wanted=st.integers(1, 45),
    cut=st.integers(0, 45),
)
def test_windows_read_every_hit_once_newest_first_however_they_are_spread(connected, ages, cap, wanted, cut):
    connected.messages.delete_many({"search_keys": "walk"})
    now = datetime.now(UTC).timestamp()
    ids = sorted((ObjectId.from_datetime(datetime.fromtimestamp(now - age, UTC)) for age in ages), reverse=True)
    ids = [ObjectId(oid.binary[:4] + ObjectId().binary[4:]) for oid in ids]  # distinct within a second
    ids.sort(reverse=True)
    if ids:
        connected.messages.insert_many(
            [{"_id": oid, "room": ObjectId(), "seq": i, "search_keys": ["walk"], "n": i} for i, oid in enumerate(ids)]
        )
    before = ids[cut] if cut < len(ids) else None
    reads = []

    def every_other(docs):
        reads.append(len(docs))
        return [doc for doc in docs if doc["n"] % 2 == 0]

    with mock.patch.object(message_search, "CAP", cap):
        found, below = message_search.newest("walk", before, wanted, every_other)
    assert below is None
    below = [oid for i, oid in enumerate(ids) if i % 2 == 0 and (before is None or oid < before)]
    assert [doc["_id"] for doc in found] == below[:wanted]
    # Windows grow eightfold from a minute (or a second, after a full read) to the ids' beginning: some twenty.
    assert max(reads) <= cap and len(reads) <= 20 + (len(ids) // cap + 1) * 10, reads


# The keys, as pure functions.

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)


@given(_text)
def test_normalising_twice_changes_nothing(text):
    assert normalize(normalize(text)) == normalize(text)
    assert words_of(" ".join(words_of(text))) == words_of(text)


@given(_text)
def test_a_query_looks_up_a_word_key_never_a_mention_key(text):
    query = Query.parse(text)
    assert query is None or query.key.isalnum(), "mention keys start with @"


@given(st.text(st.characters(max_codepoint=127), max_size=200))
def test_ascii_text_is_split_as_any_other_text(text):
    assert words_of(text) == list(dict.fromkeys(re.findall(r"[^\W_]+", normalize(text + "é")[:-1])))


@given(st.lists(st.text(st.characters(categories=("L", "N")), min_size=1, max_size=20), min_size=1, max_size=30))
def test_a_message_is_found_by_its_own_words_in_any_order_and_by_their_starts(words):
    body = " ".join(words)
    indexed, keys = index(body)
    assert len(keys) <= MAX_KEYS and keys == keys_of(body)
    for word in indexed[:5]:
        last = word[: max(1, len(word) // 2)]
        for query in (Query.parse(word), Query.parse(f"{' '.join(reversed(indexed[:3]))} {last}")):
            assert query.key in keys, "the key a query looks up is one the message has"
            assert query.matches(body)


def test_keys_are_bounded_and_a_long_message_is_searchable_only_where_indexed():
    body = " ".join(f"w{i:04d}x" for i in range(1000))
    indexed, keys = index(body)
    assert len(keys) <= MAX_KEYS and indexed == words_of(body)[: len(indexed)] and len(indexed) < 1000
    assert Query.parse(indexed[-1]).matches(body) and not Query.parse("w0999x").matches(body)
    assert max(len(key) for key in keys_of("a" * 4000)) == HEAD

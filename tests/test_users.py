"""User lookup: by username prefix (any case, shortest first, answered from an index) and by id or username."""

from datetime import UTC, datetime

import mongoengine
import pymongo
import pytest
import requests

from model import embedded
from services.users import by_prefix
from tests.support import Api, assert_error, plan_stages

NAMES = ["alice.smith", "Alicia", "bob", "ALI", "al.x", "alice", "albert"]


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in NAMES}


def _names(response):
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"users"}
    return [user["username"] for user in response.json()["users"]]


def test_prefix_lookup_is_case_insensitive_and_shortest_first(api, people):
    token = people["bob"].token
    assert _names(api.get("/api/users?q=AL", token)) == ["ALI", "al.x", "alice", "albert", "Alicia", "alice.smith"]
    assert _names(api.get("/api/users?q=alic&limit=2", token)) == ["alice", "Alicia"]
    assert _names(api.get("/api/users?q=al.", token)) == ["al.x"], "a dot is a dot, not a pattern"
    assert _names(api.get("/api/users?q=zed", token)) == []
    user = api.get("/api/users?q=bob", token).json()["users"][0]
    assert user == {
        "id": people["bob"].id,
        "username": "bob",
        "displayName": "bob",
        "role": "user",
        "createdAt": user["createdAt"],
    }


def test_prefix_lookup_limit_defaults_to_20_and_stops_at_50(api, make_user):
    users = [make_user(f"crowd{i:02}") for i in range(51)]
    assert len(_names(api.get("/api/users?q=crowd", users[0].token))) == 20
    assert len(_names(api.get("/api/users?q=crowd&limit=50", users[0].token))) == 50


@pytest.mark.parametrize(
    "query",
    ["", "?q=", "?q=" + "a" * 33, "?q=a%20b", "?q=a*", "?q=%24gt", "?q=al&limit=0", "?q=al&limit=51",
     "?q=al&limit=x", "?q=al&role=admin"],
)  # fmt: skip
def test_prefix_lookup_validation(api, make_user, query):
    assert_error(api.get("/api/users" + query, make_user().token), 400, "validation_error")


def test_lookups_need_a_token(api, people):
    assert_error(api.get("/api/users?q=al"), 401, "unauthorized")
    assert_error(api.get(f"/api/users/{people['bob'].id}"), 401, "unauthorized")


def test_one_user_by_id_or_username(api, people):
    token, alice = people["bob"].token, people["alice"]
    by_id = api.get(f"/api/users/{alice.id}", token)
    assert by_id.status_code == 200 and by_id.json()["username"] == "alice"
    assert api.get("/api/users/ALICE", token).json() == by_id.json()
    assert api.get("/api/users/me", token).json()["username"] == "bob", "`me` is still the caller"
    error = assert_error(api.get("/api/users/nobody-here", token), 404, "not_found")
    assert "nobody-here" in error["message"]
    assert_error(api.get("/api/users/" + "0" * 24, token), 404, "not_found")


def test_the_prefix_query_is_answered_from_an_index(mongo_uri, db, people):
    mongoengine.connect(host=mongo_uri, tz_aware=True, uuidRepresentation="standard")
    try:
        plan = by_prefix("al").limit(3).explain()
    finally:
        mongoengine.disconnect()
    scans = [s for s in plan_stages(plan) if s["stage"] in ("IXSCAN", "COLLSCAN")]
    assert [s["stage"] for s in scans] == ["IXSCAN"] and "username_key" in scans[0]["keyPattern"]
    examined = plan.get("executionStats", {}).get("totalDocsExamined")
    assert examined is None or examined <= 6, "only the matching users are read"


def test_users_stored_before_lookup_existed_are_found(server_factory, mongo_uri):
    uri = embedded.with_database(mongo_uri, "users_before_lookup")
    client = pymongo.MongoClient(uri)
    try:
        database = client.get_default_database()
        database.users.drop()
        database.users.insert_one(
            {"username": "Oldtimer", "username_key": "oldtimer", "display_name": "Old", "password_hash": "x",
             "role": "user", "created_at": datetime.now(UTC)}
        )  # fmt: skip
        server = server_factory(uri=uri)
        token = requests.post(
            server.url + "/api/auth/register", json={"username": "newcomer", "password": "password-123"}, timeout=10
        ).json()["accessToken"]
        assert _names(Api(server.url).get("/api/users?q=o", token)) == ["Oldtimer"]
    finally:
        client.close()

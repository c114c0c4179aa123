"""Bans, and the readonly role a room remembers: neither is lifted by leaving and rejoining."""

from types import SimpleNamespace

import pytest

from tests.support import assert_error


@pytest.fixture
def square(api, make_user):
    """A public room with its owner, a moderator and a guest who joined it."""
    owner, moderator, guest = make_user(), make_user(), make_user()
    room = api.post("/api/rooms", owner.token, json={"name": "square"}).json()["id"]
    assert api.put(f"/api/rooms/{room}/members/{moderator.id}", owner.token, json={"role": "moderator"}).ok
    assert api.post(f"/api/rooms/{room}/join", guest.token).ok
    return SimpleNamespace(room=room, owner=owner, moderator=moderator, guest=guest)


def _set_role(api, scene, actor, role):
    response = api.put(f"/api/rooms/{scene.room}/members/{scene.guest.id}", actor.token, json={"role": role})
    assert response.status_code == 200, response.text


def _post(api, scene, user):
    return api.post("/api/send", user.token, json={"room": scene.room, "messageBody": "hello"})


def test_readonly_survives_leaving_and_rejoining(api, square):
    _set_role(api, square, square.moderator, "readonly")
    assert api.post(f"/api/rooms/{square.room}/leave", square.guest.token).status_code == 204
    rejoined = api.post(f"/api/rooms/{square.room}/join", square.guest.token)
    assert rejoined.status_code == 200 and rejoined.json()["myRole"] == "readonly"
    assert_error(_post(api, square, square.guest), 403, "forbidden")


@pytest.mark.parametrize("remover", ["guest", "owner"])
def test_readonly_survives_removal_and_a_socket_join(api, connect, square, remover):
    _set_role(api, square, square.owner, "readonly")
    token = getattr(square, remover).token
    assert api.delete(f"/api/rooms/{square.room}/members/{square.guest.id}", token).status_code == 204
    socket = connect(square.guest)
    assert socket.call("join", {"room": square.room})["ok"] is True
    ack = socket.call("message", {"room": square.room, "messageBody": "unmuted?"})
    assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
    members = api.get(f"/api/rooms/{square.room}/members", square.owner.token).json()["members"]
    assert {m["user"]["id"]: m["role"] for m in members}[square.guest.id] == "readonly"


@pytest.mark.parametrize("actor", ["owner", "moderator"])
def test_setting_another_role_forgets_readonly(api, square, actor):
    _set_role(api, square, square.owner, "readonly")
    _set_role(api, square, getattr(square, actor), "member")
    assert api.post(f"/api/rooms/{square.room}/leave", square.guest.token).status_code == 204
    assert api.post(f"/api/rooms/{square.room}/join", square.guest.token).json()["myRole"] == "member"
    assert _post(api, square, square.guest).status_code == 201


def test_readonly_given_to_a_newcomer_is_remembered_too(api, make_user, square):
    newcomer = make_user()
    path = f"/api/rooms/{square.room}/members/{newcomer.id}"
    assert api.put(path, square.moderator.token, json={"role": "readonly"}).json()["role"] == "readonly"
    assert api.delete(path, square.moderator.token).status_code == 204
    assert api.post(f"/api/rooms/{square.room}/join", newcomer.token).json()["myRole"] == "readonly"

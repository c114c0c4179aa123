"""The contract's role table, row by row, for each role: owner, moderator, member, readonly, outsider, admin."""

import itertools
from types import SimpleNamespace

import pytest

from tests.support import Api, make_admin, register

ROLES = ("owner", "moderator", "member", "readonly", "outsider", "admin")
# Every action here is on one room: the users are registered once, and each test casts them in a room of its own.
pytestmark = pytest.mark.shared_db
_rooms = itertools.count(1)


@pytest.fixture(scope="module")
def users(server, db):
    """One user for each role (the admin one promoted), and an author, a target and a second moderator."""
    api = Api(server.url)
    people = {role: register(api) for role in ROLES}
    make_admin(db, people["admin"])
    return SimpleNamespace(people=people, author=register(api), target=register(api), mod2=register(api))


@pytest.fixture
def cast(api, users):
    """A new room (private or public) with one user in each role, plus a member who wrote a message."""

    def build(private):
        people, author, target, mod2 = users.people, users.author, users.target, users.mod2
        name = f"cast {next(_rooms)}"
        room = api.post("/api/rooms", people["owner"].token, json={"name": name, "private": private}).json()
        for user, role in [
            (people["moderator"], "moderator"),
            (people["member"], "member"),
            (people["readonly"], "readonly"),
            (author, "member"),
            (target, "member"),
            (mod2, "moderator"),
        ]:
            response = api.put(f"/api/rooms/{room['id']}/members/{user.id}", people["owner"].token, json={"role": role})
            assert response.status_code == 200
        message = api.post("/api/send", author.token, json={"room": room["id"], "messageBody": "hello"}).json()
        return SimpleNamespace(room=room["id"], people=people, author=author, target=target, mod2=mod2, message=message)

    return build


def _expect(response, status):
    assert response.status_code == status, response.text


PRIVATE = {
    "read": dict(owner=200, moderator=200, member=200, readonly=200, outsider=404, admin=200),
    "post": dict(owner=201, moderator=201, member=201, readonly=403, outsider=404, admin=201),
    "edit_others": dict(owner=403, moderator=403, member=403, readonly=403, outsider=404, admin=403),
    "delete_others": dict(owner=204, moderator=204, member=403, readonly=403, outsider=404, admin=204),
    "add_member": dict(owner=200, moderator=200, member=403, readonly=403, outsider=404, admin=200),
    "make_moderator": dict(owner=200, moderator=403, member=403, readonly=403, outsider=404, admin=200),
    "remove_member": dict(owner=204, moderator=204, member=403, readonly=403, outsider=404, admin=204),
    "remove_moderator": dict(owner=204, moderator=403, member=403, readonly=403, outsider=404, admin=204),
    "edit_room": dict(owner=200, moderator=403, member=403, readonly=403, outsider=404, admin=200),
    "delete_room": dict(owner=204, moderator=403, member=403, readonly=403, outsider=404, admin=204),
    "list_members": dict(owner=200, moderator=200, member=200, readonly=200, outsider=404, admin=200),
    "ban_member": dict(owner=200, moderator=200, member=403, readonly=403, outsider=404, admin=200),
    "ban_moderator": dict(owner=200, moderator=403, member=403, readonly=403, outsider=404, admin=200),
    "unban": dict(owner=204, moderator=204, member=403, readonly=403, outsider=404, admin=204),
    "list_bans": dict(owner=200, moderator=200, member=403, readonly=403, outsider=404, admin=200),
}
# In a public room outsiders can see everything but still hold no role.
PUBLIC = {
    action: {**row, "outsider": 200 if action in ("read", "list_members") else 403} for action, row in PRIVATE.items()
}


def _act(api, cast, action, user):
    room, newcomer = cast.room, cast.target
    bans = f"/api/rooms/{room}/bans"
    return {
        "read": lambda: api.get(f"/api/messages?room={room}", user.token),
        "post": lambda: api.post("/api/send", user.token, json={"room": room, "messageBody": "hi"}),
        "edit_others": lambda: api.patch(f"/api/messages/{cast.message['id']}", user.token, json={"messageBody": "x"}),
        "delete_others": lambda: api.delete(f"/api/messages/{cast.message['id']}", user.token),
        "add_member": lambda: api.put(
            f"/api/rooms/{room}/members/{newcomer.id}", user.token, json={"role": "readonly"}
        ),
        "make_moderator": lambda: api.put(
            f"/api/rooms/{room}/members/{newcomer.id}", user.token, json={"role": "moderator"}
        ),
        "remove_member": lambda: api.delete(f"/api/rooms/{room}/members/{newcomer.id}", user.token),
        "remove_moderator": lambda: api.delete(f"/api/rooms/{room}/members/{cast.mod2.id}", user.token),
        "edit_room": lambda: api.patch(f"/api/rooms/{room}", user.token, json={"description": "new"}),
        "delete_room": lambda: api.delete(f"/api/rooms/{room}", user.token),
        "list_members": lambda: api.get(f"/api/rooms/{room}/members", user.token),
        "ban_member": lambda: api.put(f"{bans}/{newcomer.id}", user.token),
        "ban_moderator": lambda: api.put(f"{bans}/{cast.mod2.id}", user.token),
        "unban": lambda: (
            api.put(f"{bans}/{newcomer.id}", cast.people["owner"].token),
            api.delete(f"{bans}/{newcomer.id}", user.token),
        )[1],
        "list_bans": lambda: api.get(bans, user.token),
    }[action]()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(PRIVATE))
def test_private_room_role_table(api, cast, action, role):
    scene = cast(private=True)
    _expect(_act(api, scene, action, scene.people[role]), PRIVATE[action][role])


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(PUBLIC))
def test_public_room_role_table(api, cast, action, role):
    scene = cast(private=False)
    _expect(_act(api, scene, action, scene.people[role]), PUBLIC[action][role])


def test_author_edits_and_deletes_own_message(api, cast):
    scene = cast(private=True)
    path = f"/api/messages/{scene.message['id']}"
    edited = api.patch(path, scene.author.token, json={"messageBody": "  changed  "})
    assert edited.status_code == 200
    assert edited.json()["messageBody"] == "changed" and edited.json()["editedAt"]
    _expect(api.delete(path, scene.author.token), 204)


def test_the_owner_keeps_the_owner_role(api, cast):
    scene = cast(private=True)
    owner = scene.people["owner"]
    for actor in ("admin", "moderator"):
        token = scene.people[actor].token
        _expect(api.put(f"/api/rooms/{scene.room}/members/{owner.id}", token, json={"role": "member"}), 403)
        _expect(api.delete(f"/api/rooms/{scene.room}/members/{owner.id}", token), 403)
        _expect(api.put(f"/api/rooms/{scene.room}/bans/{owner.id}", token), 403)


def test_moderator_cannot_demote_another_moderator(api, cast):
    scene = cast(private=True)
    path = f"/api/rooms/{scene.room}/members/{scene.mod2.id}"
    _expect(api.put(path, scene.people["moderator"].token, json={"role": "member"}), 403)

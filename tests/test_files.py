"""Files through a live server, once per storage backend (GridFS in the test database, and S3 on a local moto
server) wherever storage takes part: uploads, downloads and ranges, signed URLs, limits, type detection, images,
and the files messages carry."""

import io
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from bson import ObjectId
from PIL import ExifTags, Image

from tests.file_support import image_bytes, png_declaring, storage_independent
from tests.support import ROOT, Api, assert_error

FILE_FIELDS = {"id", "room", "name", "contentType", "size", "width", "height", "createdAt", "url", "thumbnailUrl"}
BLOB = os.urandom(300 * 1024)  # more than one GridFS chunk (255 KiB)


def upload(api, user, content=BLOB, name="report.bin", content_type="application/octet-stream", room=None):
    data = {} if room is None else {"room": room}
    return api.post("/api/files", user.token, files={"file": (name, content, content_type)}, data=data)


def uploaded(api, user, content=BLOB, **kwargs):
    response = upload(api, user, content, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


def test_an_upload_comes_back_byte_for_byte_by_token_and_by_signed_url(files_api, make_user, storage):
    user = make_user()
    general = files_api.get("/api/rooms/general", user.token).json()["id"]
    file = uploaded(files_api, user)
    assert set(file) == FILE_FIELDS
    assert (file["room"], file["name"], file["size"]) == (general, "report.bin", len(BLOB))
    assert file["contentType"] == "application/octet-stream" and file["createdAt"].endswith("Z")
    assert file["width"] is file["height"] is file["thumbnailUrl"] is None
    assert file["url"].startswith(f"/api/files/{file['id']}?expires=") and "&sig=" in file["url"]
    assert storage.keys() == {file["id"]}
    for response in (files_api.get(f"/api/files/{file['id']}", user.token), files_api.get(file["url"])):
        assert response.status_code == 200 and response.content == BLOB
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Length"] == str(len(BLOB))
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "private"
        assert response.headers["Content-Disposition"].startswith('attachment; filename="report.bin"')
        assert "sandbox" in response.headers["Content-Security-Policy"]
    assert_error(files_api.get(f"/api/files/{file['id']}/thumbnail", user.token), 404, "not_found")


def test_ranges_answer_206_and_one_past_the_end_416(files_api, make_user):
    user = make_user()
    path = f"/api/files/{uploaded(files_api, user)['id']}"
    size, edge = len(BLOB), 255 * 1024  # across GridFS's first chunk boundary
    for asked, first, last in (
        ("bytes=0-9", 0, 9),
        (f"bytes={edge - 5}-{edge + 4}", edge - 5, edge + 4),
        ("bytes=-10", size - 10, size - 1),
        (f"bytes={size - 3}-", size - 3, size - 1),
        (f"bytes=10-{size + 100}", 10, size - 1),
    ):
        response = files_api.get(path, user.token, headers={"Range": asked})
        assert response.status_code == 206, (asked, response.text)
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert response.content == BLOB[first : last + 1] and response.headers["Content-Length"] == str(
            last - first + 1
        )
    refused = files_api.get(path, user.token, headers={"Range": f"bytes={size}-"})
    assert_error(refused, 416, "range_not_satisfiable")
    assert refused.headers["Content-Range"] == f"bytes */{size}"
    whole = files_api.get(path, user.token, headers={"Range": "bytes=0-1,5-6"})  # several ranges: the whole file
    assert whole.status_code == 200 and whole.content == BLOB


@pytest.fixture(scope="module")
def short_urls(storage, server_factory):
    return Api(server_factory(FILE_URL_TTL=1, **storage.env()).url)


@storage_independent
def test_signed_urls_expire_and_refuse_any_change(short_urls, make_user):
    user = make_user()
    file = uploaded(short_urls, user, image_bytes())
    assert short_urls.get(file["url"]).status_code == 200 and short_urls.get(file["thumbnailUrl"]).status_code == 200
    path, query = file["url"].split("?")
    expires, sig = (part.split("=", 1)[1] for part in query.split("&"))
    other = uploaded(short_urls, user)["id"]
    for forged in (
        f"{path}?expires={expires}&sig={sig[:-2]}AA",  # tampered signature
        f"{path}?expires={int(expires) + 3600}&sig={sig}",  # a later expiry
        f"/api/files/{other}?expires={expires}&sig={sig}",  # another file
        f"{path}/thumbnail?expires={expires}&sig={sig}",  # the file's signature on its thumbnail
        f"{path}?expires=%C2%B2&sig={sig}",  # not a number
        f"{path}?sig={sig}",
        path,  # neither a token nor a signature
    ):
        assert_error(short_urls.get(forged), 401, "unauthorized")
    assert_error(short_urls.get(file["url"], "not-a-token"), 401, "unauthorized")  # a bad token is not ignored
    time.sleep(2.1)  # FILE_URL_TTL=1: expired now (an expiry is a whole second, so at most 2 s from signing)
    assert_error(short_urls.get(file["url"]), 401, "unauthorized")
    assert_error(short_urls.get(file["thumbnailUrl"]), 401, "unauthorized")
    assert short_urls.get(path, user.token).status_code == 200  # the token still works


@pytest.fixture(scope="module")
def small_uploads(storage, server_factory):
    return Api(server_factory(MAX_UPLOAD_BYTES=1000, **storage.env()).url)


def test_uploads_over_the_limit_are_413_and_leave_nothing(small_uploads, make_user, storage, db):
    user = make_user()
    assert uploaded(small_uploads, user, b"x" * 1000)["size"] == 1000
    db.files.delete_many({})
    stored = storage.keys()
    # Within the body's allowance for the form's other parts, but counted over the limit as it arrives.
    response = upload(small_uploads, user, b"x" * 1001)
    assert_error(response, 413, "payload_too_large")
    assert response.json()["error"]["details"] == {"file": ["Over 1000 bytes."]}
    assert db.files.count_documents({}) == 0 and storage.keys() == stored


@storage_independent
def test_a_body_declared_too_large_is_refused_before_it_is_sent(small_uploads, make_user):
    user = make_user()
    host, port = small_uploads.url.removeprefix("http://").split(":")
    head = (
        f"POST /api/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {user.token}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 1000000000\r\n\r\n--xyz\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(head.encode())  # and nothing more: an answer cannot wait for the rest
        answer = raw.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413") and '"payload_too_large"' in answer


@storage_independent
def test_an_empty_or_missing_file_is_a_validation_error(files_api, make_user, db):
    user = make_user()
    cases = (
        ({"files": {"file": ("empty.txt", b"", "text/plain")}}, "file"),
        ({"data": {"room": "general"}}, "file"),  # no file part
        ({"data": {"file": "just text"}}, "file"),  # a field, not a file
        ({"json": {"file": "x"}}, "file"),  # not a form at all
        ({"files": {"file": ("a.bin", b"abc"), "extra": ("b.bin", b"def")}}, "extra"),
    )
    for request, field in cases:
        error = assert_error(files_api.post("/api/files", user.token, **request), 400, "validation_error")
        assert field in error["details"], (request, error)
    assert db.files.count_documents({}) == 0


@storage_independent
def test_only_those_who_may_post_in_a_room_upload_there(files_api, api, make_user, db):
    owner, reader, stranger = make_user(), make_user(), make_user()
    room = api.post("/api/rooms", owner.token, json={"name": "crew", "private": True}).json()["id"]
    assert api.put(f"/api/rooms/{room}/members/{reader.id}", owner.token, json={"role": "readonly"}).status_code == 200
    assert_error(upload(files_api, reader, room=room), 403, "forbidden")
    assert_error(upload(files_api, stranger, room=room), 404, "not_found")
    assert_error(files_api.post("/api/files", files={"file": ("a.bin", b"abc")}), 401, "unauthorized")
    file = uploaded(files_api, owner, room=room)
    assert file["room"] == room
    assert files_api.get(f"/api/files/{file['id']}", reader.token).status_code == 200  # readers download
    assert_error(files_api.get(f"/api/files/{file['id']}", stranger.token), 404, "not_found")
    assert files_api.get(file["url"]).status_code == 200  # a signed URL works for whoever holds it


def test_the_type_comes_from_the_bytes_never_from_the_client(files_api, make_user):
    user = make_user()
    png = uploaded(files_api, user, image_bytes(), name="notes.txt", content_type="text/plain")
    assert png["contentType"] == "image/png" and (png["width"], png["height"]) == (640, 480)
    shown = files_api.get(png["url"])
    assert shown.headers["Content-Type"] == "image/png"
    assert shown.headers["Content-Disposition"].startswith('inline; filename="notes.txt"')
    html = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
    for content, name, claimed in ((html, "page.html", "text/html"), (svg, "logo.svg", "image/svg+xml")):
        file = uploaded(files_api, user, content, name=name, content_type=claimed)
        assert file["contentType"] == "application/octet-stream" and file["thumbnailUrl"] is None
        response = files_api.get(file["url"])
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith(f'attachment; filename="{name}"')
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]


def _thumbnail(api, file):
    response = api.get(file["thumbnailUrl"])
    assert response.status_code == 200 and response.headers["Content-Disposition"].startswith("inline")
    return response.headers["Content-Type"], Image.open(io.BytesIO(response.content))


def test_images_get_their_size_as_shown_and_a_thumbnail(files_api, make_user):
    user = make_user()
    turned = Image.Exif()
    turned[ExifTags.Base.Orientation] = 6  # a phone held upright: stored 1000 x 500, shown 500 x 1000
    for content, kind, shown, thumbnail in (
        (image_bytes("JPEG", (1000, 500), exif=turned), "image/jpeg", (500, 1000), ("image/jpeg", (160, 320))),
        (image_bytes("GIF", (200, 100)), "image/gif", (200, 100), ("image/png", (200, 100))),
        (image_bytes("WEBP", (900, 300)), "image/webp", (900, 300), ("image/png", (320, 107))),
        (image_bytes("PNG", (640, 480)), "image/png", (640, 480), ("image/png", (320, 240))),
    ):
        file = uploaded(files_api, user, content, name="picture")
        assert (file["contentType"], file["width"], file["height"]) == (kind, *shown)
        content_type, image = _thumbnail(files_api, file)
        assert (content_type, image.size) == thumbnail, kind


@pytest.mark.parametrize(
    "content",
    [
        png_declaring(30000, 30000),  # past twice the limit: Pillow's own error
        png_declaring(9000, 9000),  # past the limit, below twice it: Pillow's warning, refused all the same
        image_bytes("PNG")[:5000],  # truncated
        image_bytes("JPEG")[:3000],
        image_bytes("GIF")[:2000],
        b"\x89PNG\r\n\x1a\n" + os.urandom(2000),  # a PNG signature and noise
    ],
    ids=["bomb", "large", "truncated-png", "truncated-jpeg", "truncated-gif", "noise"],
)
def test_bombs_and_damaged_images_are_refused_and_leave_nothing(files_api, make_user, storage, db, content):
    stored = storage.keys()
    error = assert_error(upload(files_api, make_user(), content, name="x.png"), 400, "validation_error")
    assert "file" in error["details"]
    assert db.files.count_documents({}) == 0 and storage.keys() == stored


@storage_independent
def test_names_are_cleaned_and_offered_in_both_forms(files_api, make_user):
    user = make_user()
    for sent, kept in (
        ("../../etc/passwd", "passwd"),
        ("résumé\u202e.pdf", "résumé.pdf"),
        ("tab\there\x00.txt", "tabhere.txt"),
        (".hidden", "hidden"),
        ("x" * 300 + ".tar.gz", "x" * 252 + ".gz"),
    ):
        assert uploaded(files_api, user, b"content", name=sent)["name"] == kept, sent
    file = uploaded(files_api, user, b"content", name='日本 "quoted".txt')
    disposition = files_api.get(file["url"]).headers["Content-Disposition"]
    assert disposition == (
        "attachment; filename=\"_quoted_.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%20%22quoted%22.txt"
    )


def _send(api, user, attachments, body="", room=None, client_id=None):
    payload = {"messageBody": body, "attachments": attachments, **({"room": room} if room else {})}
    return api.post("/api/send", user.token, json={**payload, **({"clientId": client_id} if client_id else {})})


def test_a_message_carries_its_files_over_rest_and_in_history(files_api, make_user):
    user = make_user()
    picture, document = uploaded(files_api, user, image_bytes()), uploaded(files_api, user, name="minutes.bin")
    response = _send(files_api, user, [document["id"], picture["id"]])
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["messageBody"] == ""
    assert [file["id"] for file in message["attachments"]] == [document["id"], picture["id"]]
    assert all(set(file) == FILE_FIELDS for file in message["attachments"])
    assert message["attachments"][1]["width"] == 640 and message["attachments"][0]["name"] == "minutes.bin"
    page = files_api.get("/api/messages", user.token).json()["messages"]
    assert page[0]["id"] == message["id"] and [file["id"] for file in page[0]["attachments"]] == [
        document["id"],
        picture["id"],
    ]
    assert files_api.get(page[0]["attachments"][0]["url"]).content == BLOB
    assert files_api.get(page[0]["attachments"][1]["thumbnailUrl"]).status_code == 200
    # A file is held by one message: sending it again is refused.
    assert_error(_send(files_api, user, [picture["id"]], "again"), 400, "validation_error")


def test_a_socket_message_carries_files_too(files_api, node, make_user, connect):
    sender, reader = make_user(), make_user()
    sockets = [connect(user, url=node.url) for user in (sender, reader)]
    assert all(socket.call("join", {})["ok"] for socket in sockets)
    file = uploaded(files_api, sender, image_bytes())
    ack = sockets[0].call("message", {"messageBody": "look", "attachments": [file["id"]]})
    assert ack["ok"] is True, ack
    assert [attached["id"] for attached in ack["message"]["attachments"]] == [file["id"]]
    seen = sockets[1].wait_for("message", lambda message: message["id"] == ack["message"]["id"])
    assert files_api.get(seen["attachments"][0]["thumbnailUrl"]).status_code == 200
    refused = sockets[0].call("message", {"attachments": [file["id"]]})
    assert refused["ok"] is False and refused["error"]["code"] == "validation_error"


@storage_independent
def test_only_the_senders_own_free_uploads_to_that_room_are_attached(files_api, api, make_user):
    alice, bob = make_user(), make_user()
    room = api.post("/api/rooms", alice.token, json={"name": "side"}).json()["id"]
    mine, in_general = uploaded(files_api, alice, room=room), uploaded(files_api, alice)
    bobs = uploaded(files_api, bob)
    for attachments, why in (
        ([bobs["id"]], "someone else's upload"),
        ([in_general["id"]], "an upload to another room"),
        ([str(ObjectId())], "no such file"),
        ([mine["id"], str(ObjectId())], "one of them unknown"),
        ([mine["id"], mine["id"]], "the same file twice"),
        (["nope"], "not an id"),
        ([], "an empty list"),
        ([str(ObjectId()) for _ in range(11)], "more than 10"),
    ):
        error = assert_error(_send(files_api, alice, attachments, room=room), 400, "validation_error")
        assert "attachments" in error["details"], why
    assert_error(_send(files_api, alice, [], "", room=room), 400, "validation_error")
    # The refused sends gave back what they had taken: the file is free for the next one.
    sent = _send(files_api, alice, [mine["id"]], room=room)
    assert sent.status_code == 201, sent.text
    assert_error(_send(files_api, alice, [mine["id"]], "again", room=room), 400, "validation_error")


@storage_independent
def test_a_retried_send_returns_the_original_with_its_files(files_api, make_user):
    user = make_user()
    file = uploaded(files_api, user)
    first = _send(files_api, user, [file["id"]], client_id="retry-1")
    again = _send(files_api, user, [file["id"]], client_id="retry-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["attachments"][0]["id"] == file["id"]


@storage_independent
def test_of_two_sends_of_one_file_exactly_one_wins(files_api, make_user):
    user = make_user()

    def send(file_id, body, start, statuses):
        start.wait()
        statuses.append(_send(Api(files_api.url), user, [file_id], body).status_code)

    for _ in range(5):
        file_id, start, statuses = uploaded(files_api, user, b"contested")["id"], threading.Barrier(2), []
        racers = [threading.Thread(target=send, args=(file_id, body, start, statuses)) for body in ("one", "two")]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        assert sorted(statuses) == [201, 400]
    messages = files_api.get("/api/messages", user.token).json()["messages"]
    assert len(messages) == 5 and all(len(message["attachments"]) == 1 for message in messages)


def test_deleting_a_message_deletes_its_files(files_api, make_user, storage, db):
    user = make_user()
    kept, gone = uploaded(files_api, user), uploaded(files_api, user, image_bytes())
    message = _send(files_api, user, [gone["id"]]).json()
    assert files_api.delete(f"/api/messages/{message['id']}", user.token).status_code == 204
    assert_error(files_api.get(gone["url"]), 404, "not_found")
    assert_error(files_api.get(gone["thumbnailUrl"]), 404, "not_found")
    assert_error(files_api.get(f"/api/files/{gone['id']}", user.token), 404, "not_found")
    assert files_api.get("/api/messages", user.token).json()["messages"][0]["attachments"] == []
    assert storage.keys() == {kept["id"]} and db.files.count_documents({}) == 1


def test_deleting_a_room_deletes_its_files(files_api, api, make_user, storage, db):
    user = make_user()
    room = api.post("/api/rooms", user.token, json={"name": "doomed"}).json()["id"]
    kept = uploaded(files_api, user)
    attached, loose = uploaded(files_api, user, room=room), uploaded(files_api, user, image_bytes(), room=room)
    assert _send(files_api, user, [attached["id"]], room=room).status_code == 201
    assert files_api.delete(f"/api/rooms/{room}", user.token).status_code == 204
    for file in (attached, loose):
        assert_error(files_api.get(file["url"]), 404, "not_found")
    deadline = time.monotonic() + 10
    while storage.keys() != {kept["id"]} and time.monotonic() < deadline:  # deleted in the background
        time.sleep(0.1)
    assert storage.keys() == {kept["id"]} and db.files.count_documents({}) == 1


def test_archived_messages_keep_their_files(files_api, node, make_user, db):
    user = make_user()
    file = uploaded(files_api, user, image_bytes())
    message = _send(files_api, user, [file["id"]], "before the archive").json()
    run = subprocess.run(
        [sys.executable, "-m", "jobs.archive", "--older-than-days", "0"],
        cwd=ROOT,
        env=node.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert db.archived_messages.count_documents({"_id": ObjectId(message["id"])}) == 1
    archived = files_api.get("/api/messages?archived=true", user.token).json()["messages"]
    assert [m["id"] for m in archived] == [message["id"]] and archived[0]["archived"] is True
    (carried,) = archived[0]["attachments"]
    assert carried["id"] == file["id"] and carried["width"] == 640
    assert files_api.get(carried["url"]).status_code == 200
    assert files_api.get(carried["thumbnailUrl"]).status_code == 200
    assert files_api.get(f"/api/files/{file['id']}", user.token).status_code == 200


def test_an_upload_that_storage_refuses_is_never_served(s3, server_factory, make_user, db):
    broken = Api(server_factory(**{**s3.env(), "S3_BUCKET": "no-such-bucket"}).url)
    user = make_user()
    assert_error(upload(broken, user), 500, "internal_error")
    # Storage refuses the delete too: the record stays, doomed, for the cleanup job to finish.
    (record,) = db.files.find()
    assert record["doomed"] is True
    assert_error(broken.get(f"/api/files/{record['_id']}", user.token), 404, "not_found")

"""Fuzzing: hypothesis over every request and event schema, and schemathesis against the live OpenAPI."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import Api, SocketClient, register
from utils.errors import ValidationFailed
from utils.schemas import load
from utils.schemas.accounts import LoginSchema, RegisterSchema
from utils.schemas.events import RoomEvent, SyncEvent, TypingEvent
from utils.schemas.messages import EditSchema, HistoryQuery, SendSchema
from utils.schemas.rooms import MemberRoleSchema, RoomCreateSchema, RoomListQuery, RoomUpdateSchema
from utils.schemas.search import SearchQuery

SCHEMAS = [
    RegisterSchema(),
    LoginSchema(),
    RoomCreateSchema(),
    RoomUpdateSchema(),
    RoomListQuery(),
    MemberRoleSchema(),
    HistoryQuery(),
    SendSchema(),
    EditSchema(),
    SearchQuery(),
    RoomEvent(),
    TypingEvent(),
    SyncEvent(),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def payloads(schema):
    """Objects made of the schema's own keys, operator keys and stray keys, with any JSON values."""
    keys = [field.data_key or name for name, field in schema.fields.items()] + ["$gt", "$where", "extra"]
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys)) | json_values


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: type(schema).__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_schemas_accept_or_reject_cleanly(schema, data):
    payload = data.draw(payloads(schema))
    try:
        loaded = load(schema, payload)
    except ValidationFailed as error:
        body = error.to_dict()["error"]
        assert body["code"] == "validation_error"
        assert all(isinstance(k, str) and all(isinstance(r, str) for r in v) for k, v in body["details"].items())
        return
    for value in loaded.values():  # a list only of ids (a message's attachments), never an operator object
        assert all(not isinstance(item, dict | list) for item in (value if isinstance(value, list) else [value]))


@pytest.fixture(scope="module")
def fuzz_socket(request):
    server = request.getfixturevalue("server")
    client = SocketClient(server.url, register(Api(server.url)).token).connect()
    yield client
    client.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.sampled_from(["join", "message", "left", "typing", "sync"]), payload=payloads(SendSchema()))
def test_socket_events_always_ack_in_the_contract_shape(fuzz_socket, event, payload):
    ack = fuzz_socket.call(event, payload)
    assert ack["ok"] in (True, False)
    if not ack["ok"]:
        assert set(ack) == {"ok", "error"} and ack["error"]["code"] != "internal_error", ack
    assert fuzz_socket.sio.connected


def test_schemathesis_finds_no_server_error_and_no_spec_violation(server, tmp_path):
    token = register(Api(server.url)).token
    st_bin = Path(sys.executable).parent / "schemathesis"
    checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
    result = subprocess.run(
        [
            str(st_bin), "run", server.url + "/api/openapi.json", "--url", server.url,
            "--header", f"Authorization: Bearer {token}", "--checks", ",".join(checks),
            "--exclude-path", "/api/auth/logout",  # it would revoke the token the rest of the run uses
            "--max-examples", "10", "--seed", "7", "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,  # its example cache stays out of the tree
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:]
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated and int(generated.group(1)) > 100, result.stdout[-2000:]

"""API documentation: the OpenAPI document covers every route and validates; the AsyncAPI one every event."""

import re

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from routes import MODULES, docs
from sockets import HANDLERS
from tests.support import ROOT


def test_openapi_validates_and_covers_every_route(api):
    spec = api.get("/api/openapi.json").json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for module in MODULES:
        if module is docs:
            continue  # the document does not describe itself
        for method, path, view in module.RULES:
            openapi_path = "/api" + re.sub(r"<([^>]+)>", r"{\1}", path)
            operation = spec["paths"][openapi_path][method.lower()]
            assert operation["summary"] and "500" in operation["responses"]
            if getattr(view, "auth", None):
                assert operation["security"] == [{"bearer": []}] and "401" in operation["responses"]
            if "requestBody" in operation:
                assert {"400", "413"} <= set(operation["responses"])


def test_openapi_describes_bodies_queries_and_errors(api):
    spec = api.get("/api/openapi.json").json()
    send = spec["paths"]["/api/send"]["post"]
    body = send["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    properties = spec["components"]["schemas"][body]["properties"]
    assert set(properties) == {
        *("room", "messageBody", "clientId", "replyTo", "attachments"),
        *("userId", "userName", "timeStamp"),
    }
    assert all(properties[legacy]["deprecated"] for legacy in ("userId", "userName", "timeStamp"))
    assert {"200", "201", "429"} <= set(send["responses"]) and "Retry-After" in send["responses"]["429"]["headers"]
    history = spec["paths"]["/api/messages"]["get"]
    assert {p["name"] for p in history["parameters"]} == {"room", "limit", "before", "after", "archived", "thread"}
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]


def test_docs_page_works_offline(api):
    page = api.get("/api/docs/")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert not re.search(r"(src|href)=\"https?://", page.text), "assets must not come from a CDN"
    assert api.get("/api/docs/swagger-ui-bundle.js").status_code == 200


def test_asyncapi_lists_every_event_in_both_directions():
    document = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert document["asyncapi"].startswith("3.")
    messages = document["components"]["messages"]

    def events(action):
        refs = [op["messages"][0]["$ref"] for op in document["operations"].values() if op["action"] == action]
        return {messages[ref.rsplit("/", 1)[1]]["name"] for ref in refs}

    assert events("receive") == set(HANDLERS)
    emitted = set(re.findall(r'emit\(\s*"(\w+)"', (ROOT / "services" / "notify.py").read_text()))
    assert emitted and events("send") == emitted


def _operations(spec):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_openapi_operations_carry_one_tag_per_routes_module(api):
    spec = api.get("/api/openapi.json").json()
    tags = {tag["name"]: tag["description"] for tag in spec["tags"]}
    for module in MODULES:
        if module is docs:
            continue
        name = module.__name__.rsplit(".", 1)[1].capitalize()
        assert tags[name] == module.__doc__.strip(), name
        for method, path, _ in module.RULES:
            operation = spec["paths"]["/api" + re.sub(r"<([^>]+)>", r"{\1}", path)][method.lower()]
            assert operation["tags"] == [name], (method, path)
    assert {tag for _, operation in _operations(spec) for tag in operation["tags"]} == set(tags)


def _validator(spec, schema):
    return Draft202012Validator(
        {**schema, "components": spec["components"]}, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def test_openapi_examples_are_realistic_and_match_their_schemas(api):
    spec = api.get("/api/openapi.json").json()
    for name, operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" or parameter.get("required"):
                assert "example" in parameter, (name, parameter["name"])
        if "requestBody" in operation:
            (content,) = operation["requestBody"]["content"].values()  # JSON, or a multipart form
            assert "example" in content, name
            _validator(spec, content["schema"]).validate(content["example"])
        for status, response in operation["responses"].items():
            if "application/json" not in response.get("content", {}):
                continue  # nothing, or bytes (a download)
            content = response["content"]["application/json"]
            assert "example" in content, (name, status)
            _validator(spec, content["schema"]).validate(content["example"])
            if status.startswith(("4", "5")) and status != "503":
                assert content["example"]["error"]["code"] != "internal_error" or status == "500", (name, status)
    send = spec["paths"]["/api/send"]["post"]
    assert send["requestBody"]["content"]["application/json"]["example"]["messageBody"].strip()
    room = spec["paths"]["/api/rooms/{room_id}"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    assert re.fullmatch(r"[0-9a-f]{24}", room["id"]) and room["createdAt"].endswith("Z")


@pytest.mark.parametrize("document", ["README.md", "docs/API.md"])
def test_the_docs_link_nothing_outside_the_repository(document):
    path = ROOT / document
    text = path.read_text()
    assert "shared/API.md" not in text, "the contract's copy is not in a clone"
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith("#"):
            continue
        assert not re.match(r"[a-z+]+:", target), f"{document} links outside the repository: {target}"
        linked = (path.parent / target.split("#")[0]).resolve()
        assert linked.is_relative_to(ROOT) and linked.exists(), f"{document}: {target} is not in the repository"
    if document == "README.md":
        assert "](docs/API.md)" in text and "GET /api/asyncapi.yaml" in text


def test_the_api_reference_covers_every_route_and_event():
    reference = (ROOT / "docs" / "API.md").read_text()
    for module in MODULES:
        for method, path, _ in module.RULES:
            route = re.escape(f"{method} /api") + re.sub(r"<\w+>", "<[^>]+>", re.escape(path)) + "[`?]"
            assert re.search(route, reference), (method, path)
    document = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    for message in document["components"]["messages"].values():
        if message["name"] != "ack":
            assert f"| `{message['name']}` |" in reference, message["name"]

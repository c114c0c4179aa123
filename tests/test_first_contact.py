"""A newcomer's first steps: `.env.example` as it is, `GET /`, the start-up log, busy ports, the docs links."""

from dotenv import dotenv_values

from tests.support import ROOT, Api, SocketClient, register


def test_the_env_example_serves_a_demo_that_connects(server_factory):
    settings = dotenv_values(ROOT / ".env.example")
    local = {"MONGODB_URI", "PORT", "HOST"}  # the test's own database and port
    node = server_factory(**{key: value for key, value in settings.items() if key not in local})
    assert Api(node.url).get("/demo/index.html").status_code == 200
    user = register(Api(node.url))
    client = SocketClient(node.url, user.token, transports=["polling"], headers={"Origin": node.url}).connect()
    try:
        assert client.call("join", {})["ok"] is True, "the page's own origin passes the handshake"
    finally:
        client.close()

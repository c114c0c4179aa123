// What the node scripts run by the suite share: a connected socket.io-client, the next event,
// and one JSON line of results on stdout (exit 1 with {error} when the script throws).
const { io } = require("socket.io-client");

function connect(url, token, options = {}) {
  return new Promise((resolve, reject) => {
    const socket = io(url, { auth: { token }, reconnection: false, timeout: 5000, ...options });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

function next(socket, event) {
  return new Promise((resolve) => socket.once(event, resolve));
}

function report(script) {
  script()
    .then((out) => {
      console.log(JSON.stringify(out));
      process.exit(0);
    })
    .catch((err) => {
      console.log(JSON.stringify({ error: String((err && err.message) || err) }));
      process.exit(1);
    });
}

module.exports = { connect, next, report };

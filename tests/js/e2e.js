// End-to-end run of the browser's Socket.IO client against the live server.
// URL, TOKEN_A and TOKEN_B come from the environment; prints one JSON line of what happened.
const client = require("./client");

const { URL: url, TOKEN_A: tokenA, TOKEN_B: tokenB } = process.env;
const connect = (token) => client.connect(url, token);
const { next } = client;

client.report(async () => {
  const out = {};
  try {
    await connect("not-a-token");
  } catch (err) {
    out.refused = { message: err.message, data: err.data };
  }
  const a = await connect(tokenA);
  const b = await connect(tokenB);
  out.joinA = await a.timeout(5000).emitWithAck("join", {});
  const joinedSeen = next(a, "user_joined");
  out.joinB = await b.timeout(5000).emitWithAck("join", { room: "general" });
  out.userJoined = await joinedSeen;
  const delivered = next(b, "message");
  out.ack = await a.timeout(5000).emitWithAck("message", { messageBody: "from the browser client", clientId: "js-1" });
  out.delivered = await delivered;
  out.nullPayload = await a.timeout(5000).emitWithAck("join", null);
  out.stringPayload = await a.timeout(5000).emitWithAck("message", "just a string");
  out.transport = a.io.engine.transport.name;
  a.close();
  b.close();
  return out;
});

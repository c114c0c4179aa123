// A client of the original single-room Node service, as it was written, plus a token:
// join {userId, userName} without a room or an ack, message {userId, userName, messageBody,
// timeStamp}, left {userName}; it listens for userJoined, userLeft, onlineUsers and message.
// URL, TOKEN_A, TOKEN_B, NAME_A, NAME_B and TOKEN_C (a modern client's) come from the environment;
// prints one JSON line.
const client = require("./client");

const { URL: url, TOKEN_A, TOKEN_B, TOKEN_C, NAME_A, NAME_B } = process.env;
const connect = (token) => client.connect(url, token, { transports: ["websocket"] });
const { next } = client;

client.report(async () => {
  const out = { modernSaw: [] };
  const a = await connect(TOKEN_A);
  const joined = next(a, "userJoined");
  const online = next(a, "onlineUsers");
  a.emit("join", { userId: "legacy-id-a", userName: NAME_A });
  out.joinedSelf = await joined;
  out.onlineAfterSelf = await online;
  const modern = await connect(TOKEN_C);
  const modernOnline = next(a, "onlineUsers");
  for (const name of ["userJoined", "userLeft", "onlineUsers"]) modern.on(name, () => out.modernSaw.push(name));
  await modern.timeout(5000).emitWithAck("join", {});
  await modernOnline;
  const b = await connect(TOKEN_B);
  const onlineBoth = next(a, "onlineUsers");
  b.emit("join", { userId: "legacy-id-b", userName: NAME_B });
  out.onlineBoth = await onlineBoth;
  const delivered = next(b, "message");
  a.emit("message", { userId: "forged", userName: "forged", messageBody: "hello, old friend", timeStamp: 1 });
  out.delivered = await delivered;
  const modernLeft = next(a, "onlineUsers");
  modern.close();
  out.modernLeft = await modernLeft;
  const left = next(a, "userLeft");
  const onlineAfterLeft = next(a, "onlineUsers");
  b.emit("left", { userName: NAME_B });
  out.left = await left;
  out.onlineAfterLeft = await onlineAfterLeft;
  a.close();
  b.close();
  return out;
});

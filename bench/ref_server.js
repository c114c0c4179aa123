// The Node peer: Socket.IO with the contract's events and acks (join, message), storing each
// message through the official MongoDB driver before acking, as the Python server does.
// No tokens, no permissions: a floor for what the protocol and the database cost.
// PORT=5100 MONGODB_URI=mongodb://127.0.0.1:27017/ref node ref_server.js
const http = require("http");
const { Server } = require("socket.io");
const { MongoClient } = require("mongodb");

(async () => {
  const client = new MongoClient(process.env.MONGODB_URI);
  await client.connect();
  const messages = client.db().collection("messages");
  await messages.createIndex({ room: 1, _id: -1 });
  const server = http.createServer();
  const io = new Server(server, { cors: { origin: "*" } });
  io.on("connection", (socket) => {
    const user = String((socket.handshake.auth && socket.handshake.auth.token) || socket.id);
    socket.on("join", (data, ack) => {
      socket.join(data.room);
      socket.to(data.room).emit("user_joined", { room: data.room, userId: user, userName: user });
      ack({ ok: true, room: data.room, members: [] });
    });
    socket.on("message", async (data, ack) => {
      const doc = {
        room: data.room, userId: user, userName: user, messageBody: data.messageBody, timeStamp: new Date(),
        clientId: data.clientId || null, editedAt: null, deleted: false,
      };
      const { insertedId } = await messages.insertOne(doc);
      const out = { ...doc, id: String(insertedId), timeStamp: doc.timeStamp.toISOString(), archived: false };
      delete out._id;
      io.to(data.room).emit("message", out);
      ack({ ok: true, message: out });
    });
  });
  server.listen(+process.env.PORT, "127.0.0.1", () => console.log("ref listening " + process.env.PORT));
})();

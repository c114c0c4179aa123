// Fan-out load generator on the real socket.io-client. CLIENTS sockets (spread over the given
// URLs, one per server process) join one room, or with "rooms" client i joins rooms[i % rooms];
// SENDERS of them (the first ones: one per room when there are as many rooms) send MESSAGES
// each, at RATE per second per sender (0: each sender sends as soon as its previous ack
// arrives). Every client records each delivery, and the order it came in: every client of one
// server process in one room must see that process's broadcasts in one order
// (`orderViolations` counts the neighbouring pairs of a client's sequence that stand the other
// way round in the first client's of the same process and room, `orderMismatch` the clients
// with any). With "storm", every client connects at once, then every one joins at once
// (`connectS`, `joinS`: how long each took); else one after the other. Prints one JSON line
// (with "hold", first a line once every client has joined, then it waits for a line on stdin).
// node loadgen.js config.json, the file holding {"urls": [...], "tokens": [...], "room": "...",
// "rooms": [...], "senders": 5, "messages": 60, "rate": 20, "hold": false, "storm": false}
const fs = require("fs");
const { io } = require("socket.io-client");
const { performance } = require("perf_hooks");

const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const tag = Math.random().toString(36).slice(2, 8);

const pct = (sorted, p) => (sorted.length ? +sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))].toFixed(2) : null);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Each client's sequence against the first client's of its group (server process and room).
function checkOrder(order, group) {
  const reference = new Map();
  let orderViolations = 0, orderMismatch = 0;
  order.forEach((sequence, i) => {
    if (!reference.has(group[i])) reference.set(group[i], new Map(sequence.map((id, k) => [id, k])));
    const position = reference.get(group[i]);
    let inversions = 0, previous = -1;
    for (const id of sequence) {
      const k = position.get(id);
      if (k === undefined) continue; // the first client lost it: counted as lost, not as disorder
      if (k < previous) inversions++;
      previous = k;
    }
    orderViolations += inversions;
    if (inversions) orderMismatch++;
  });
  return { orderViolations, orderMismatch };
}

function connect(url, token) {
  return new Promise((resolve, reject) => {
    // A storm of thousands waits its turn in the server's accept queue: a minute and more on a busy machine.
    const s = io(url, { transports: ["websocket"], auth: { token }, reconnection: false, timeout: cfg.storm ? 300000 : 20000 });
    s.once("connect", () => resolve(s));
    s.once("connect_error", (e) => reject(new Error("connect_error " + JSON.stringify(e.data || e.message))));
  });
}

async function join(s, room) {
  const ack = await s.timeout(120000).emitWithAck("join", { room });
  if (!ack.ok) throw new Error("join failed " + JSON.stringify(ack));
}

(async () => {
  const rooms = cfg.rooms || [cfg.room];
  const roomOf = (i) => i % rooms.length;
  let sockets = [];
  const connectStart = performance.now();
  if (cfg.storm) {
    sockets = await Promise.all(cfg.tokens.map((token, i) => connect(cfg.urls[i % cfg.urls.length], token)));
  } else {
    for (let i = 0; i < cfg.tokens.length; i++) sockets.push(await connect(cfg.urls[i % cfg.urls.length], cfg.tokens[i]));
  }
  const joinStart = performance.now();
  if (cfg.storm) await Promise.all(sockets.map((s, i) => join(s, rooms[roomOf(i)])));
  else for (let i = 0; i < sockets.length; i++) await join(sockets[i], rooms[roomOf(i)]);
  const connectS = +((joinStart - connectStart) / 1000).toFixed(3), joinS = +((performance.now() - joinStart) / 1000).toFixed(3);
  if (cfg.hold) {
    console.log(JSON.stringify({ connected: sockets.length, connectS, joinS }));
    await new Promise((r) => process.stdin.once("data", r));
  }
  const sentAt = new Map();
  const latencies = [];
  const seen = sockets.map(() => new Set());
  const order = sockets.map(() => []); // clientIds in the order each client received them
  let deliveries = 0, dupes = 0;
  sockets.forEach((s, i) => s.on("message", (m) => {
    const t = performance.now();
    if (!m || !sentAt.has(m.clientId)) return;
    if (seen[i].has(m.clientId)) { dupes++; return; }
    seen[i].add(m.clientId);
    order[i].push(m.clientId);
    deliveries++;
    latencies.push(t - sentAt.get(m.clientId));
  }));
  await sleep(200);
  const acks = [];
  let errors = 0;
  const start = performance.now();
  await Promise.all(sockets.slice(0, cfg.senders).map(async (s, k) => {
    const pending = [];
    for (let i = 0; i < cfg.messages; i++) {
      if (cfg.rate) {
        const wait = start + (i * 1000) / cfg.rate - performance.now();
        if (wait > 0) await sleep(wait);
      }
      const clientId = `${tag}-${k}-${i}`;
      const t = performance.now();
      sentAt.set(clientId, t);
      const sent = s.timeout(60000).emitWithAck("message", { room: rooms[roomOf(k)], messageBody: "x".repeat(64) + ` ${k}:${i}`, clientId })
        .then((a) => (a && a.ok ? acks.push(performance.now() - t) : errors++), () => errors++);
      if (cfg.rate) pending.push(sent); else await sent;
    }
    await Promise.all(pending);
  }));
  const members = rooms.map((_, r) => sockets.filter((_, i) => roomOf(i) === r).length);
  const expected = sockets.slice(0, cfg.senders).reduce((sum, _, k) => sum + cfg.messages * members[roomOf(k)], 0);
  const deadline = performance.now() + 30000;
  while (deliveries < expected && performance.now() < deadline) await sleep(20);
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  acks.sort((a, b) => a - b);
  sockets.forEach((s) => s.close());
  const { orderViolations, orderMismatch } = checkOrder(order, sockets.map((_, i) => `${i % cfg.urls.length}:${roomOf(i)}`));
  console.log(JSON.stringify({
    clients: sockets.length, senders: cfg.senders, messages: cfg.messages, rate: cfg.rate, sent: cfg.senders * cfg.messages,
    acked: acks.length, errors, expected, deliveries, lost: expected - deliveries, dupes, seconds: +seconds.toFixed(3),
    deliveriesPerS: +(deliveries / seconds).toFixed(1), ackP50: pct(acks, 50), ackP99: pct(acks, 99),
    latP50: pct(latencies, 50), latP99: pct(latencies, 99), orderViolations, orderMismatch, connectS, joinS,
  }));
  process.exit(0);
})().catch((e) => { console.log(JSON.stringify({ error: String(e.message || e) })); process.exit(1); });

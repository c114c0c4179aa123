// A client like any other: only the public REST API and Socket.IO events.
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { token: null, user: null, socket: null, room: null, typers: new Map(), online: new Map() };

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { "Content-Type": "application/json", ...(state.token ? { Authorization: "Bearer " + state.token } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = res.status === 204 ? null : await res.json();
    if (!res.ok) throw new Error(data.error.message);
    return data;
  }

  async function signIn(path) {
    $("login-error").textContent = "";
    try {
      const session = await api("POST", path, { username: $("username").value, password: $("password").value });
      state.token = session.accessToken;
      state.user = session.user;
      $("whoami").textContent = "signed in as " + session.user.username;
      $("login").hidden = true;
      $("chat").hidden = false;
      connect();
    } catch (err) {
      $("login-error").textContent = err.message;
    }
  }

  function connect() {
    const socket = io({ auth: { token: state.token } });
    state.socket = socket;
    socket.on("connect", async () => {
      await loadRooms();
      await enter(state.room || "general");
    });
    socket.on("connect_error", (err) => ($("send-error").textContent = (err.data && err.data.error.message) || err.message));
    socket.on("message", (m) => m.room === state.room && addMessage(m));
    socket.on("message_updated", (m) => m.room === state.room && replaceMessage(m));
    socket.on("message_deleted", (m) => m.room === state.room && replaceMessage({ ...m, deleted: true, messageBody: "" }));
    socket.on("user_joined", (e) => e.room === state.room && (state.online.set(e.userId, e.userName), renderOnline()));
    socket.on("user_left", (e) => e.room === state.room && (state.online.delete(e.userId), renderOnline()));
    socket.on("typing", (e) => {
      if (e.room !== state.room) return;
      e.typing ? state.typers.set(e.userId, e.userName) : state.typers.delete(e.userId);
      const names = [...state.typers.values()];
      $("typing").textContent = names.length ? names.join(", ") + " typing…" : "";
    });
  }

  async function loadRooms() {
    const { rooms } = await api("GET", "/api/rooms?limit=100");
    $("rooms").replaceChildren(
      ...rooms.map((room) => {
        const li = document.createElement("li");
        li.textContent = (room.private ? "🔒 " : "# ") + room.name;
        li.dataset.id = room.id;
        li.dataset.name = room.name;
        li.onclick = () => enter(room.id);
        return li;
      })
    );
  }

  async function enter(ref) {
    if (state.room) await state.socket.emitWithAck("left", { room: state.room });
    const ack = await state.socket.emitWithAck("join", { room: ref });
    if (!ack.ok) return ($("send-error").textContent = ack.error.message);
    state.room = ack.room;
    state.typers.clear();
    state.online = new Map(ack.members.map((m) => [m.userId, m.userName]));
    renderOnline();
    for (const li of $("rooms").children) li.classList.toggle("current", li.dataset.id === ack.room);
    const current = [...$("rooms").children].find((li) => li.dataset.id === ack.room);
    $("room-title").textContent = current ? current.dataset.name : ack.room;
    const { messages } = await api("GET", `/api/messages?room=${ack.room}&limit=50`);
    $("messages").replaceChildren();
    messages.reverse().forEach(addMessage);
  }

  function renderOnline() {
    $("online").replaceChildren(
      ...[...state.online.values()].map((name) => Object.assign(document.createElement("li"), { textContent: name }))
    );
  }

  function render(li, m) {
    li.dataset.id = m.id;
    li.replaceChildren(
      Object.assign(document.createElement("span"), { className: "author", textContent: m.userName }),
      Object.assign(document.createElement("span"), {
        className: m.deleted ? "deleted" : "body",
        textContent: m.deleted ? "message deleted" : m.messageBody + (m.editedAt ? " (edited)" : ""),
      })
    );
  }

  function addMessage(m) {
    if ($("messages").querySelector(`li[data-id="${m.id}"]`)) return;
    const li = document.createElement("li");
    render(li, m);
    $("messages").append(li);
    li.scrollIntoView();
  }

  function replaceMessage(m) {
    const li = $("messages").querySelector(`li[data-id="${m.id}"]`);
    if (li) render(li, { ...JSON.parse(JSON.stringify(m)), userName: li.querySelector(".author").textContent });
  }

  let typingTimer = null;
  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingTimer) state.socket.emit("typing", { room: state.room, typing: false }, () => {});
    typingTimer = null;
  }
  $("body").addEventListener("input", () => {
    if (!typingTimer) state.socket.emit("typing", { room: state.room, typing: true }, () => {});
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 1500);
  });

  $("send").addEventListener("submit", async (event) => {
    event.preventDefault();
    const messageBody = $("body").value;
    if (!messageBody.trim()) return;
    stopTyping();
    const ack = await state.socket.emitWithAck("message", { room: state.room, messageBody, clientId: crypto.randomUUID() });
    $("send-error").textContent = ack.ok ? "" : ack.error.message;
    if (ack.ok) $("body").value = "";
  });

  $("new-room").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const room = await api("POST", "/api/rooms", { name: $("room-name").value });
      $("room-name").value = "";
      await loadRooms();
      await enter(room.id);
    } catch (err) {
      $("send-error").textContent = err.message;
    }
  });

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn("/api/auth/login");
  });
  $("register").addEventListener("click", () => signIn("/api/auth/register"));
})();

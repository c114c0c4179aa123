// The reference client of this API: only the public REST API and Socket.IO events, plain JavaScript.
//
// What a client has to get right, and where it happens here:
// - tokens kept across reloads (localStorage), one refresh for any number of 401s (`refresh`),
//   the socket's `auth` a function so that every (re)connection sends the current token;
// - nothing missed: on every (re)connection and on `resync`, `sync` from the last message seen,
//   paging with nextCursor; live messages that arrive meanwhile wait until the gap is filled;
// - older history on scroll-up with `before` cursors;
// - sending with a `clientId`, so a message retried after a lost ack or a reconnection is stored once;
// - unread badges: the server's counts (GET /api/rooms), raised live by `notification` (mentions, DMs)
//   and by the open room's `message` while unseen, cleared with the socket's `read` once seen;
// - DMs (POST /api/dms, `room_added`), threads (`replyTo`, `?thread=`), reactions (`react`), pins,
//   files (multipart upload, then `attachments`; images shown from their signed `thumbnailUrl`), search.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY = "chat-demo.session";
  const PAGE = 50;
  const ACK_TIMEOUT = 10000;

  // ------------------------------------------------------------------ session

  let memorySession = null;
  const store = {
    get() {
      try {
        const raw = localStorage.getItem(KEY);
        return raw ? JSON.parse(raw) : null;
      } catch {
        return memorySession; // storage disabled: this tab only
      }
    },
    set(value) {
      memorySession = value;
      try {
        if (value) localStorage.setItem(KEY, JSON.stringify(value));
        else localStorage.removeItem(KEY);
      } catch {
        /* storage disabled or full: the session lives as long as the tab */
      }
    },
    update(fields) {
      const current = store.get();
      if (current) store.set({ ...current, ...fields });
    },
  };
  const me = () => (store.get() || {}).user || {};

  // ------------------------------------------------------------------ REST

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || `The server answered ${status}.`);
      this.status = status;
      this.code = error.code || `http_${status}`;
      this.details = error.details || null;
    }
  }

  const NETWORK_ERROR = { error: { code: "network", message: "Can't reach the server. Check your connection and try again." } };

  function describe(err) {
    if (!err) return "Something went wrong.";
    let text = err.message || String(err);
    if (err.details && typeof err.details === "object" && err.code === "validation_error") {
      const reasons = Object.values(err.details).flat().filter((v) => typeof v === "string");
      if (reasons.length) text += ": " + reasons.join(" ");
    }
    const wait = err.retryAfter || (err.details && err.details.retryAfter);
    if (wait) text += ` Try again in ${Math.ceil(wait)} s.`;
    return text;
  }

  async function api(method, path, body, { auth = true } = {}) {
    for (let attempt = 0; ; attempt++) {
      const session = store.get();
      const token = auth && session ? session.accessToken : null;
      const headers = {};
      const form = body instanceof FormData; // multipart: the browser writes its Content-Type and boundary
      if (body !== undefined && !form) headers["Content-Type"] = "application/json";
      if (token) headers.Authorization = "Bearer " + token;
      let res;
      try {
        res = await fetch(path, { method, headers, body: body === undefined || form ? body : JSON.stringify(body) });
      } catch {
        throw new ApiError(0, NETWORK_ERROR);
      }
      const data = res.status === 204 ? null : await res.json().catch(() => null);
      if (res.ok) return data;
      // An expired access token: one refresh, then the same request again.
      if (res.status === 401 && token && attempt === 0 && (await refresh(token))) continue;
      const err = new ApiError(res.status, data);
      if (res.status === 429) err.retryAfter = Number(res.headers.get("Retry-After")) || null;
      throw err;
    }
  }

  // Whether a JWT's `exp` has passed (or will within a few seconds); unreadable counts as expired.
  function expired(token) {
    try {
      const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return claims.exp * 1000 < Date.now() + 5000;
    } catch {
      return true;
    }
  }

  // One refresh at a time for the whole page (and, with the Web Locks API, across tabs): the
  // server rotates refresh tokens, and a refresh token used twice revokes the whole family.
  let refreshing = null;
  function refresh(staleToken) {
    if (!refreshing) {
      const run = () => rotate(staleToken);
      const locked = navigator.locks ? navigator.locks.request("chat-demo-refresh", run) : run();
      refreshing = locked.finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  async function rotate(staleToken) {
    const session = store.get();
    if (!session) return false; // signed out meanwhile
    if (session.accessToken !== staleToken) return true; // another request or tab already refreshed
    let res;
    try {
      res = await fetch("/api/auth/refresh", { method: "POST", headers: { Authorization: "Bearer " + session.refreshToken } });
    } catch {
      return false; // offline: the caller shows the error, the socket keeps retrying
    }
    if (res.ok) {
      const pair = await res.json();
      store.update({ accessToken: pair.accessToken, refreshToken: pair.refreshToken });
      return true;
    }
    if (res.status === 401) endSession("Your session has ended. Please sign in again.");
    return false;
  }

  // ------------------------------------------------------------------ state

  let socket = null;
  let socketToken = null; // the token the socket last connected with
  let authFailures = 0;
  let generation = 0; // bumped on every room change; async work for an older room stops
  let view = newView(null);
  const outbox = new Map(); // clientId -> {clientId, room, body, t, state, error}
  const typers = new Map(); // userId -> {name, timer}
  const roomList = new Map(); // roomId -> room (rooms and DMs, as GET /api/rooms lists them)
  const dmNames = new Map(); // DM roomId -> the other participants' names
  const otherRooms = new Map(); // roomId -> room, for search results from rooms the list does not show
  const counted = new Set(); // ids of messages already added to a badge here, whichever event told first
  let roomsCursor = null;
  let drafts = []; // files uploaded for the next message: {key, name, state, file, error}
  let sessionUser = null; // whose session this page shows

  function newView(ref) {
    return {
      gen: generation,
      ref, // what the user asked for (id or name)
      roomId: null,
      room: null,
      cursor: null, // `before` cursor for older history; null: the beginning is loaded
      loading: true, // joining and loading the first page
      syncing: false,
      syncAgain: false,
      loadingOlder: false,
      buffer: [], // live messages that arrived while loading or syncing
      items: new Map(), // messageId -> <li>
      messages: new Map(), // messageId -> message
      online: new Map(),
      readUpTo: null, // the last message this tab marked read here
      seen: new Map(), // userId -> {name, messageId}: how far the others have read (small rooms)
    };
  }

  // ------------------------------------------------------------------ small DOM helpers

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(text, act, label) {
    const node = el("button", "ghost small", text);
    node.type = "button";
    node.dataset.act = act;
    if (label) node.setAttribute("aria-label", label);
    return node;
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
  const yearFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });

  function dayKey(date) {
    return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
  }

  function dayLabel(key) {
    const [y, m, d] = key.split("-").map(Number);
    const date = new Date(y, m - 1, d);
    const today = new Date();
    const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (key === dayKey(today)) return "Today";
    if (key === dayKey(yesterday)) return "Yesterday";
    return (y === today.getFullYear() ? dayFormat : yearFormat).format(date);
  }

  function newClientId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  function announce(text) {
    const region = $("announcer");
    region.textContent = "";
    requestAnimationFrame(() => (region.textContent = text));
  }

  const CONN_TEXT = {
    connecting: "Connecting…",
    online: "Connected",
    syncing: "Catching up…",
    reconnecting: "Reconnecting…",
    offline: "Offline",
    "signed-out": "Signed out",
  };

  function setConn(state, text) {
    const node = $("conn");
    node.dataset.state = state;
    node.textContent = text || CONN_TEXT[state];
    updateComposer();
  }

  // ------------------------------------------------------------------ signing in and out

  async function signIn(path) {
    const form = $("login");
    $("login-error").textContent = "";
    if (!form.reportValidity()) return;
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      const session = await api("POST", path, { username: $("username").value.trim(), password: $("password").value }, { auth: false });
      store.set({ user: session.user, accessToken: session.accessToken, refreshToken: session.refreshToken, room: null });
      $("password").value = "";
      startChat();
    } catch (err) {
      $("login-error").textContent = describe(err);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function showSignIn(message) {
    document.title = "Chat";
    $("chat").hidden = true;
    $("signin").hidden = false;
    $("logout").hidden = true;
    $("rooms-toggle").hidden = true;
    $("skip").hidden = true;
    $("whoami").textContent = "";
    $("login-error").textContent = message || "";
    setConn("signed-out");
    $("username").focus();
  }

  function startChat() {
    const user = me();
    sessionUser = user.id;
    $("signin").hidden = true;
    $("chat").hidden = false;
    $("logout").hidden = false;
    $("rooms-toggle").hidden = false;
    $("skip").hidden = false;
    $("whoami").textContent = user.username;
    $("whoami").title = "Signed in as " + user.username;
    view = newView(store.get().room || "general");
    renderRoomHead();
    loadRooms();
    connectSocket();
  }

  function dropSocket() {
    if (!socket) return;
    const old = socket;
    socket = null;
    old.removeAllListeners();
    old.io.removeAllListeners?.();
    old.disconnect();
  }

  function endSession(message) {
    store.set(null);
    sessionUser = null;
    dropSocket();
    generation++;
    view = newView(null);
    outbox.clear();
    typers.clear();
    roomList.clear();
    dmNames.clear();
    otherRooms.clear();
    counted.clear();
    drafts = [];
    renderDrafts();
    closePane();
    $("dms").replaceChildren();
    $("messages").replaceChildren();
    $("rooms").replaceChildren();
    $("online").replaceChildren();
    $("typing").textContent = "";
    showSignIn(message);
  }

  async function logout() {
    $("logout").disabled = true;
    dropSocket(); // the server drops it too: that is no reason to try a refresh
    try {
      await api("POST", "/api/auth/logout");
    } catch {
      /* the tokens are forgotten here whatever the server said */
    } finally {
      $("logout").disabled = false;
      endSession("You have signed out.");
    }
  }

  // ------------------------------------------------------------------ the socket

  function connectSocket() {
    setConn("connecting");
    socket = io({
      forceNew: true,
      autoConnect: false,
      auth: (cb) => {
        socketToken = (store.get() || {}).accessToken;
        cb({ token: socketToken });
      },
    });
    socket.on("connect", onConnect);
    socket.on("connect_error", onConnectError);
    socket.on("disconnect", onDisconnect);
    socket.io.on("reconnect_attempt", (n) => {
      if (navigator.onLine !== false) setConn("reconnecting", n > 1 ? `Reconnecting (attempt ${n})…` : undefined);
    });
    socket.on("message", onMessage);
    socket.on("message_updated", (m) => m.room === view.roomId && updateMessage(m));
    socket.on("message_deleted", (e) => {
      const m = e.room === view.roomId && (view.messages.get(e.id) || pane.messages.get(e.id));
      if (m) updateMessage(erased(m));
    });
    socket.on("notification", onNotification);
    socket.on("room_added", onRoomAdded);
    socket.on("read_receipt", onReadReceipt);
    socket.on("user_joined", (e) => {
      if (e.room !== view.roomId) return;
      view.online.set(e.userId, e.userName);
      renderOnline();
      renderRoomHead();
    });
    socket.on("user_left", (e) => {
      if (e.room !== view.roomId) return;
      view.online.delete(e.userId);
      setTyping(e.userId, e.userName, false);
      renderOnline();
      renderRoomHead();
    });
    socket.on("typing", (e) => e.room === view.roomId && setTyping(e.userId, e.userName, e.typing));
    socket.on("room_deleted", (e) => {
      roomList.delete(e.room);
      renderRooms();
      if (e.room === view.roomId) {
        const name = view.room ? view.room.name : "This room";
        enterRoom("general").then(() => ($("history-note").textContent = `${name} was deleted; you are back in general.`));
      }
    });
    socket.on("resync", (e) => {
      if (Array.isArray(e.rooms) && e.rooms.includes(view.roomId) && !view.loading) catchUp(generation);
    });
    socket.connect();
  }

  async function onConnect() {
    authFailures = 0;
    setConn("syncing");
    const gen = generation;
    if (firstEntryDone) loadRooms(); // what came while disconnected shows in the counts
    if (view.roomId && !view.loading) await rejoin(gen);
    else await enterRoom(view.ref || "general", { focus: !firstEntryDone && !phone() });
    firstEntryDone = true;
    if (!socket || !socket.connected) return;
    flushOutbox();
    setConn("online");
  }

  async function onConnectError(err) {
    const error = err && err.data && err.data.error;
    if (!socket) return;
    if (error && error.code === "unauthorized") {
      // The access token expired (or was revoked): refresh once, then connect with the new one.
      if (++authFailures > 3) return endSession("The server keeps refusing this session. Please sign in again.");
      setConn("reconnecting", "Renewing the session…");
      const ok = await refresh(socketToken);
      if (!socket) return;
      if (ok) socket.connect();
      else setTimeout(() => socket && !socket.connected && socket.connect(), 5000);
    } else if (error) {
      // Refused for another reason (too many connections...): the client won't retry by itself.
      const wait = (error.details && error.details.retryAfter) || 5;
      setConn("reconnecting", `${error.message} Retrying in ${Math.ceil(wait)} s…`);
      setTimeout(() => socket && !socket.connected && socket.connect(), wait * 1000);
    } else {
      setConn(navigator.onLine === false ? "offline" : "reconnecting", navigator.onLine === false ? undefined : "Can't reach the server, retrying…");
    }
  }

  async function onDisconnect(reason) {
    clearTypers();
    if (!socket) return;
    setConn(navigator.onLine === false ? "offline" : "reconnecting");
    if (reason === "io server disconnect") {
      // The server closed this connection and the client won't reconnect by itself. An expired
      // token is refreshed first; a revoked one is refused at connect, and that refusal ends the session.
      const ok = expired(socketToken) ? await refresh(socketToken) : true;
      if (!socket) return;
      if (ok) socket.connect();
      else setTimeout(() => socket && !socket.connected && socket.connect(), 3000);
    }
    // Any other reason: the client reconnects by itself.
  }

  // The browser knows before the socket does: drop the dead connection now, reconnect at once when back.
  window.addEventListener("offline", () => {
    if (!socket) return;
    setConn("offline");
    if (socket.io.engine) socket.io.engine.close();
  });
  window.addEventListener("online", () => {
    if (!socket || socket.connected) return;
    socket.disconnect();
    socket.connect();
  });

  function emit(event, payload) {
    if (!socket || !socket.connected) return Promise.resolve({ ok: false, error: { code: "offline", message: "Not connected." } });
    return socket
      .timeout(ACK_TIMEOUT)
      .emitWithAck(event, payload)
      .catch(() => ({ ok: false, error: { code: "timeout", message: "The server did not answer in time." } }));
  }

  let firstEntryDone = false;
  const phone = () => matchMedia("(max-width: 720px)").matches;

  // ------------------------------------------------------------------ rooms

  async function loadRooms(more = false) {
    $("rooms-error").textContent = "";
    try {
      const query = more && roomsCursor ? `&cursor=${encodeURIComponent(roomsCursor)}` : "";
      const page = await api("GET", `/api/rooms?limit=50${query}`);
      if (!more) roomList.clear();
      for (const room of page.rooms) roomList.set(room.id, room);
      roomsCursor = page.nextCursor;
      renderRooms();
      loadDmNames();
    } catch (err) {
      if (store.get()) $("rooms-error").textContent = "Couldn't load the rooms. " + describe(err);
    }
  }

  // The counts of one room, after something elsewhere (another tab) changed them.
  const countsWanted = new Map(); // roomId -> timer
  function refreshCounts(roomId) {
    clearTimeout(countsWanted.get(roomId));
    countsWanted.set(
      roomId,
      setTimeout(async () => {
        countsWanted.delete(roomId);
        try {
          const room = await api("GET", `/api/rooms/${encodeURIComponent(roomId)}`);
          if (!roomList.has(room.id)) return;
          roomList.set(room.id, room);
          if (room.id === view.roomId) view.room = room;
          renderRooms();
        } catch {
          /* the next list load corrects it */
        }
      }, 300),
    );
  }

  // Put a room first in the list (a new DM, a room someone added us to).
  function addRoomFirst(room) {
    const rest = [...roomList].filter(([id]) => id !== room.id);
    roomList.clear();
    roomList.set(room.id, room);
    for (const [id, r] of rest) roomList.set(id, r);
  }

  // A DM has no name: it is shown by the names of the people in it (other than me).
  async function loadDmNames() {
    const missing = [...roomList.values()].filter((r) => r.kind === "dm" && !dmNames.has(r.id));
    for (const room of missing) dmNames.set(room.id, null); // asked for once
    const found = await Promise.all(
      missing.map((room) =>
        api("GET", `/api/rooms/${encodeURIComponent(room.id)}/members`)
          .then(({ members }) => {
            const others = members.filter((m) => m.user.id !== me().id).map((m) => m.user.username);
            dmNames.set(room.id, others.sort().join(", ") || me().username);
            return true;
          })
          .catch(() => dmNames.delete(room.id) && false),
      ),
    );
    if (found.some(Boolean)) {
      renderRooms();
      renderRoomHead();
    }
  }

  function roomName(room) {
    if (room.kind === "dm") return dmNames.get(room.id) || "Direct message";
    return room.name || "Untitled room";
  }

  // "#" for a public room, a padlock for a private one (drawn in CSS: no emoji font needed), "@" for a DM.
  function mark(room) {
    const dm = room.kind === "dm";
    const node = el("span", dm ? "mark dm" : room.private ? "mark lock" : "mark", dm ? "@" : room.private ? "" : "#");
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  const count = (n) => (n > 99 ? "99+" : String(n));

  // Unread messages as a number; highlighted when some name me (or, in a DM, always: each one is for me).
  function badge(room) {
    const unread = room.unreadCount || 0;
    const mentions = room.mentionCount || 0;
    if (!unread && !mentions) return null;
    const node = el("span", mentions || room.kind === "dm" ? "badge hot" : "badge");
    if (mentions) node.append(el("span", "at", "@"));
    node.append(count(Math.max(unread, mentions)));
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  function roomButton(room) {
    const li = el("li");
    const b = el("button", "room-button");
    b.type = "button";
    b.dataset.id = room.id;
    b.append(mark(room), el("span", "name", roomName(room)));
    const unread = badge(room);
    if (unread) {
      b.append(unread);
      b.classList.add("unread");
    }
    if (!room.myRole) b.append(el("span", "tag", "join"));
    if (room.id === view.roomId) b.setAttribute("aria-current", "true");
    const label = [roomName(room)];
    if (room.kind === "dm") label.push("direct message");
    else if (room.private) label.push("private");
    if (room.unreadCount) label.push(`${count(room.unreadCount)} unread`);
    if (room.mentionCount) label.push(`${count(room.mentionCount)} ${room.mentionCount === 1 ? "mention" : "mentions"}`);
    if (!room.myRole) label.push("not joined yet");
    b.setAttribute("aria-label", label.join(", "));
    li.append(b);
    return li;
  }

  function renderRooms() {
    const all = [...roomList.values()];
    const active = document.activeElement;
    const focused = active && active.closest("#rooms, #dms") ? active.dataset.id : null;
    $("rooms").replaceChildren(...all.filter((r) => r.kind !== "dm").map(roomButton));
    const dms = all.filter((r) => r.kind === "dm").map(roomButton);
    $("dms").replaceChildren(...(dms.length ? dms : [el("li", "note", "No conversations yet.")]));
    if (focused) $("sidebar").querySelector(`[data-id="${CSS.escape(focused)}"]`)?.focus();
    $("more-rooms").hidden = !roomsCursor;
    const unread = all.reduce((n, r) => n + (r.unreadCount || 0), 0);
    const toggle = $("rooms-toggle");
    toggle.textContent = unread ? `Rooms (${count(unread)})` : "Rooms";
    toggle.classList.toggle("unread", all.some((r) => r.mentionCount || (r.kind === "dm" && r.unreadCount)));
    setTitle();
  }

  function setTitle() {
    const room = view.room || roomList.get(view.ref) || null;
    const unread = [...roomList.values()].reduce((n, r) => n + (r.unreadCount || 0), 0);
    document.title = (unread ? `(${count(unread)}) ` : "") + (room ? `${roomName(room)} · Chat` : "Chat");
  }

  function renderRoomHead() {
    const room = view.room || roomList.get(view.ref) || null;
    if (room) {
      $("room-title").replaceChildren(mark(room), roomName(room));
      if (room.kind === "dm") $("room-title").append(el("span", "sr-only", " (direct message)"));
      else if (room.private) $("room-title").append(el("span", "sr-only", " (private)"));
    } else {
      $("room-title").textContent = view.ref === "general" ? "# general" : "Loading…";
    }
    setTitle();
    const info = [];
    if (room && room.description) info.push(room.description);
    if (view.roomId) info.push(`${view.online.size} online`);
    if (room && room.myRole && room.myRole !== "member") info.push(`you: ${room.myRole}`);
    $("room-info").textContent = info.join(" · ");
    $("room").dataset.room = view.roomId || "";
    $("pins-open").hidden = !view.roomId;
    const to = room && (room.kind === "dm" ? roomName(room) : `${room.private ? "" : "#"}${roomName(room)}`);
    $("body").placeholder = !room ? "Message" : room.myRole === "readonly" ? "Read-only room" : `Message ${to}`;
    for (const b of $("sidebar").querySelectorAll(".room-button")) {
      if (b.dataset.id === view.roomId) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
  }

  // Enter a room: join over the socket first (so nothing sent meanwhile is lost), then read its
  // newest page; live messages that arrive in between are buffered and added after it.
  async function enterRoom(ref, { focus = false } = {}) {
    const previous = view.roomId;
    unsendOpening(generation);
    const gen = ++generation;
    view = newView(ref);
    store.update({ room: ref });
    closePane();
    if (drafts.length) {
      drafts = []; // uploaded to the room left: the server's cleanup removes what no message took
      renderDrafts();
    }
    updateComposer();
    clearTypers();
    $("messages").replaceChildren();
    $("online").replaceChildren();
    $("older").hidden = true;
    $("jump").hidden = true;
    $("composer-note").textContent = "";
    $("history-note").textContent = "Loading…";
    renderRoomHead();
    if (previous && previous !== ref && socket && socket.connected) socket.emit("left", { room: previous }, () => {});
    if (!socket || !socket.connected) {
      $("history-note").textContent = "Waiting for the connection…";
      return; // onConnect enters it
    }
    const ack = await emit("join", { room: ref });
    if (gen !== generation) return;
    if (!ack.ok) return roomUnavailable(ref, ack.error);
    view.roomId = ack.room;
    store.update({ room: ack.room });
    for (const item of outbox.values()) {
      if (item.room === null && item.gen === gen) Object.assign(item, { room: ack.room, state: "sending" });
    }
    setOnline(ack.members);
    try {
      const [room, page] = await Promise.all([
        api("GET", `/api/rooms/${encodeURIComponent(ack.room)}`),
        api("GET", `/api/messages?room=${encodeURIComponent(ack.room)}&limit=${PAGE}`),
      ]);
      if (gen !== generation) return;
      view.room = room;
      roomList.set(room.id, room);
      renderRooms();
      renderRoomHead();
      addOlder(page.messages);
      view.cursor = page.nextCursor;
    } catch (err) {
      if (gen !== generation) return;
      $("history-note").textContent = "Couldn't load this room. " + describe(err);
      view.loading = false;
      renderOutbox();
      flushOutbox();
      return;
    }
    view.loading = false;
    addNewer(view.buffer.splice(0));
    renderOutbox();
    flushOutbox();
    renderHistoryState();
    updateComposer();
    scrollToBottom();
    markReadSoon();
    loadSeen(gen);
    if (focus) ($("body").disabled ? $("scroller") : $("body")).focus();
  }

  function roomUnavailable(ref, error) {
    view.loading = false;
    unsendOpening(generation);
    if (error.code === "unauthorized" || error.code === "offline") {
      $("history-note").textContent = "Reconnecting…"; // the server drops a socket whose token expired
      return;
    }
    if (error.code === "not_found" || error.code === "forbidden") store.update({ room: "general" });
    const known = roomList.get(ref);
    $("history-note").textContent = `Couldn't open ${known ? roomName(known) : ref}: ${describe(error)}`;
    if (ref !== "general") {
      const back = button("Go to general", "general");
      $("history-note").append(" ", back);
    }
    updateComposer();
  }

  // After a reconnection: join again (a new connection is in no room), then fill the gap.
  async function rejoin(gen) {
    view.syncing = true;
    const ack = await emit("join", { room: view.roomId });
    if (gen !== generation) return;
    if (!ack.ok) {
      view.syncing = false;
      if (ack.error.code === "unauthorized" || ack.error.code === "offline" || ack.error.code === "timeout") return;
      const name = view.room ? roomName(view.room) : view.roomId;
      await enterRoom("general");
      $("history-note").textContent = `You can no longer read ${name} (${describe(ack.error)}); you are back in general.`;
      return;
    }
    setOnline(ack.members);
    await catchUp(gen);
    refreshRoom(gen);
  }

  // `sync` from the last message seen, page after page, until nextCursor is null.
  async function catchUp(gen) {
    if (view.syncing && view.syncRunning) {
      view.syncAgain = true;
      return;
    }
    view.syncing = true;
    view.syncRunning = true;
    try {
      do {
        view.syncAgain = false;
        let after = lastSeenId();
        if (!after) {
          await reloadNewest(gen);
          continue;
        }
        while (after) {
          const ack = await emit("sync", { room: view.roomId, after, limit: 100 });
          if (gen !== generation) return;
          if (!ack.ok) {
            if (ack.error.code === "rate_limited") {
              await sleep(1000 * ((ack.error.details && ack.error.details.retryAfter) || 1));
              continue;
            }
            if (ack.error.code === "validation_error") {
              // The last message seen is no longer a position in this room (archived): start afresh.
              setTimeout(() => gen === generation && enterRoom(view.roomId));
            } else if (ack.error.code !== "offline" && ack.error.code !== "unauthorized") {
              $("history-note").textContent = "Couldn't catch up with this room: " + describe(ack.error);
            }
            return;
          }
          addNewer(ack.messages);
          after = ack.nextCursor;
        }
      } while (view.syncAgain && gen === generation);
    } finally {
      if (gen === generation) {
        view.syncing = false;
        view.syncRunning = false;
        addNewer(view.buffer.splice(0));
        markReadSoon();
      }
    }
  }

  async function reloadNewest(gen) {
    try {
      const page = await api("GET", `/api/messages?room=${encodeURIComponent(view.roomId)}&limit=${PAGE}`);
      if (gen !== generation) return;
      addNewer([...page.messages].reverse());
      if (view.cursor === null) view.cursor = page.nextCursor; // the room was empty: page back from here
      renderHistoryState();
    } catch (err) {
      $("history-note").textContent = "Couldn't load this room. " + describe(err);
    }
  }

  async function refreshRoom(gen) {
    try {
      const room = await api("GET", `/api/rooms/${encodeURIComponent(view.roomId)}`);
      if (gen !== generation) return;
      view.room = room;
      roomList.set(room.id, room);
      renderRoomHead();
      updateComposer();
      renderOutbox(); // a readonly member's failed messages lose their Retry
    } catch {
      /* shown when it matters: the next message says why */
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ------------------------------------------------------------------ people

  function setOnline(members) {
    view.online = new Map((members || []).map((m) => [m.userId, m.userName]));
    renderOnline();
    renderRoomHead();
  }

  function renderOnline() {
    const mine = me().id;
    const people = [...view.online.entries()].sort((a, b) => (a[0] === mine ? -1 : b[0] === mine ? 1 : a[1].localeCompare(b[1])));
    $("online").replaceChildren(
      ...people.map(([id, name]) => {
        const li = el("li", id === mine ? "me" : "", name);
        if (id === mine) li.append(el("span", "you", " (you)"));
        return li;
      }),
    );
  }

  function setTyping(userId, name, typing) {
    const previous = typers.get(userId);
    if (previous) clearTimeout(previous.timer);
    if (typing && userId !== me().id) {
      typers.set(userId, { name, timer: setTimeout(() => setTyping(userId, name, false), 6000) });
    } else {
      typers.delete(userId);
    }
    const names = [...typers.values()].map((t) => t.name);
    $("typing").textContent =
      names.length === 0
        ? ""
        : names.length === 1
          ? `${names[0]} is typing…`
          : names.length === 2
            ? `${names[0]} and ${names[1]} are typing…`
            : "Several people are typing…";
  }

  function clearTypers() {
    for (const t of typers.values()) clearTimeout(t.timer);
    typers.clear();
    $("typing").textContent = "";
  }

  // ------------------------------------------------------------------ the timeline

  function onMessage(m) {
    if (m.room !== view.roomId) return;
    if (view.loading || view.syncing) {
      view.buffer.push(m);
      return;
    }
    addNewer([m]);
    setTyping(m.userId, m.userName, false);
    if (m.userId === me().id) return;
    announce(`${m.userName}: ${m.messageBody || "sent a file"}`);
    if (seeing()) markReadSoon();
    else bump(m.room, m);
  }

  function lastSeenId() {
    const items = $("messages").querySelectorAll("li.msg[data-id]");
    return items.length ? items[items.length - 1].dataset.id : null;
  }

  function nearBottom() {
    const box = $("scroller");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }

  function scrollToBottom() {
    const box = $("scroller");
    box.scrollTop = box.scrollHeight;
    $("jump").hidden = true;
  }

  // Newer messages (oldest first) go after what is shown, before this tab's unsent ones.
  function addNewer(list) {
    if (!list.length) return;
    const stick = nearBottom();
    const ol = $("messages");
    let added = false;
    for (const m of list) {
      if (m.room !== view.roomId) continue;
      if (view.items.has(m.id)) {
        updateMessage(m);
        continue;
      }
      if (pane.mode === "thread" && m.replyTo === pane.rootId) addReply(m); // live, or caught up after a reconnection
      settleOutbox(m);
      ol.insertBefore(messageItem(m), ol.querySelector("li.pending"));
      // Sending moves the sender's read marker: they have read what came before.
      if (m.userId !== me().id) view.seen.set(m.userId, { name: m.userName, messageId: m.id });
      added = true;
    }
    if (!added) return;
    renderSeen();
    relayout();
    if (view.emptyNote) renderHistoryState();
    if (stick) scrollToBottom();
    else $("jump").hidden = false;
  }

  // Older messages (a page newest first) go on top; what the reader was looking at stays put.
  function addOlder(list) {
    const box = $("scroller");
    const fromBottom = box.scrollHeight - box.scrollTop;
    const ol = $("messages");
    for (const m of list) {
      if (view.items.has(m.id)) continue;
      ol.insertBefore(messageItem(m), ol.firstChild);
    }
    relayout();
    box.scrollTop = box.scrollHeight - fromBottom;
  }

  async function loadOlder() {
    if (view.loading || view.loadingOlder || !view.cursor || !view.roomId) return;
    const gen = generation;
    view.loadingOlder = true;
    renderHistoryState();
    try {
      const page = await api(
        "GET",
        `/api/messages?room=${encodeURIComponent(view.roomId)}&limit=${PAGE}&before=${encodeURIComponent(view.cursor)}`,
      );
      if (gen !== generation) return;
      addOlder(page.messages);
      view.cursor = page.nextCursor;
      view.loadingOlder = false;
      renderHistoryState();
    } catch (err) {
      if (gen !== generation) return;
      view.loadingOlder = false;
      renderHistoryState("Couldn't load older messages. " + describe(err));
    }
  }

  function renderHistoryState(error) {
    const older = $("older");
    const note = $("history-note");
    if (error) {
      older.hidden = false;
      older.textContent = "Try again";
      note.textContent = error;
    } else if (view.loadingOlder) {
      older.hidden = true;
      note.textContent = "Loading older messages…";
    } else if (view.cursor) {
      older.hidden = false;
      older.textContent = "Load older messages";
      note.textContent = "";
    } else {
      older.hidden = true;
      const name = view.room ? roomName(view.room) : "this room";
      const dm = view.room && view.room.kind === "dm";
      note.textContent = view.messages.size
        ? `This is the beginning of ${dm ? "your conversation with " : ""}${name}.`
        : `No messages ${dm ? "with" : "in"} ${name} yet. Say hello!`;
    }
    view.emptyNote = !error && !view.cursor && !view.messages.size;
  }

  // Day separators between days, and consecutive messages of one author grouped.
  function relayout() {
    const ol = $("messages");
    for (const sep of ol.querySelectorAll(":scope > li.day")) sep.remove();
    let previous = null;
    for (const li of [...ol.children]) {
      if (!previous || previous.dataset.day !== li.dataset.day) {
        const sep = el("li", "day");
        sep.append(el("span", "", dayLabel(li.dataset.day)));
        ol.insertBefore(sep, li);
        li.classList.remove("cont");
      } else {
        const close = Number(li.dataset.t) - Number(previous.dataset.t) < 5 * 60 * 1000;
        li.classList.toggle("cont", close && previous.dataset.user === li.dataset.user);
      }
      previous = li;
    }
  }

  function canDelete(m) {
    const role = view.room && view.room.myRole;
    return m.userId === me().id || role === "owner" || role === "moderator" || me().role === "admin";
  }

  // Who may post in the room may reply and react there.
  function canPost() {
    const room = view.room;
    if (!room) return false;
    if (room.myRole) return room.myRole !== "readonly";
    return me().role === "admin" && room.kind !== "dm";
  }

  // The room's managers pin; in a DM, everyone in it.
  function canPin() {
    const room = view.room;
    if (!room) return false;
    if (room.kind === "dm") return !!room.myRole;
    return room.myRole === "owner" || room.myRole === "moderator" || me().role === "admin";
  }

  const mentionsMe = (m) => !m.deleted && (m.mentionsRoom || (m.mentions || []).includes(me().id));

  // What a deleted message keeps: its id and place.
  const erased = (m) => ({ ...m, deleted: true, messageBody: "", reactions: [], mentions: [], mentionsRoom: false, attachments: [], pinned: false });

  function messageItem(m) {
    const li = el("li", "msg");
    li.dataset.id = m.id;
    view.items.set(m.id, li);
    fillMessage(li, m);
    return li;
  }

  // `where`: "timeline" (the room), "thread" (the thread panel) or "list" (pins, search results).
  function fillMessage(li, m, where = "timeline") {
    (where === "timeline" ? view.messages : pane.messages).set(m.id, m);
    if (li.dataset.editing) return; // the edit form stays; it shows the newest text when closed
    const mine = m.userId === me().id;
    const date = new Date(m.timeStamp);
    li.dataset.day = dayKey(date);
    li.dataset.user = m.userId;
    li.dataset.t = String(date.getTime());
    li.classList.toggle("mine", mine);
    li.classList.toggle("deleted", !!m.deleted);
    li.classList.toggle("mentioned", !mine && mentionsMe(m));
    const meta = el("div", "meta");
    meta.append(el("span", "author", mine ? "You" : m.userName));
    const room = roomList.get(m.room) || otherRooms.get(m.room);
    if (where === "list" && room && m.room !== view.roomId) {
      meta.append(el("span", "where", (room.kind === "dm" ? "@" : room.private ? "" : "#") + roomName(room)));
    }
    const time = el("time", "time", where === "list" ? date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : timeFormat.format(date));
    time.dateTime = m.timeStamp;
    time.title = date.toLocaleString();
    meta.append(time);
    if (m.editedAt && !m.deleted) {
      const edited = el("span", "edited", "edited");
      edited.title = "Edited " + new Date(m.editedAt).toLocaleString();
      meta.append(edited);
    }
    if (m.pinned && !m.deleted) meta.append(el("span", "pinned", "Pinned"));
    const actions = where === "list" ? listActions(m) : messageActions(m, where);
    if (actions.childElementCount && where !== "list") {
      // Touch screens have no hover: there the actions stay folded behind this button.
      const more = button("⋯", "more", `Actions for ${m.userId === me().id ? "your" : m.userName + "'s"} message`);
      more.classList.add("more");
      more.setAttribute("aria-expanded", String(li.classList.contains("open")));
      meta.append(more);
    }
    if (actions.childElementCount && where !== "list") meta.append(actions);
    const parts = [meta];
    if (where === "timeline" && m.replyTo) parts.push(threadLink(m));
    parts.push(bodyNode(m, where));
    if (!m.deleted && m.attachments && m.attachments.length) parts.push(filesNode(m.attachments));
    if (!m.deleted && m.reactions && m.reactions.length) parts.push(reactionsNode(m, where !== "list" && canPost()));
    if (where === "timeline" && !m.replyTo && m.replyCount > 0) parts.push(threadSummary(m));
    if (where === "list") parts.push(actions);
    li.replaceChildren(...parts);
  }

  function messageActions(m, where) {
    const actions = el("span", "actions");
    if (m.deleted) return actions;
    const mine = m.userId === me().id;
    const when = timeFormat.format(new Date(m.timeStamp));
    const whose = `${mine ? "your" : m.userName + "'s"} message from ${when}`;
    const timeline = where === "timeline";
    if (timeline && canPost()) actions.append(button("Reply", "reply", `Reply to ${whose} in a thread`));
    if (canPost()) {
      const react = button("React", "react-menu", `React to ${whose}`);
      react.setAttribute("aria-expanded", "false");
      actions.append(react);
    }
    if (timeline && canPin()) actions.append(button(m.pinned ? "Unpin" : "Pin", m.pinned ? "unpin" : "pin", `${m.pinned ? "Unpin" : "Pin"} ${whose}`));
    if (timeline && mine) actions.append(button("Edit", "edit", `Edit your message from ${when}`));
    if (timeline && canDelete(m)) actions.append(button("Delete", "delete", `Delete ${whose}`));
    return actions;
  }

  // Under a pin or a search result: go to it, or unpin it.
  function listActions(m) {
    const actions = el("div", "actions shown list-actions");
    if (pane.mode === "search") actions.append(button("Open", "open", `Open this message in its room`));
    else {
      actions.append(button("Show", "show", `Show this message in the room`));
      if (canPin()) actions.append(button("Unpin", "unpin", `Unpin ${m.userName}'s message`));
    }
    return actions;
  }

  const excerpt = (text) => (text.length > 60 ? text.slice(0, 57) + "…" : text);

  // A reply, in the room's timeline: which thread it answers, and the way into it.
  function threadLink(m) {
    const root = view.messages.get(m.replyTo);
    const link = el("button", "thread-link");
    link.type = "button";
    link.dataset.act = "open-thread";
    link.dataset.root = m.replyTo;
    link.textContent = root && !root.deleted ? `↳ in the thread of ${root.userName}: “${excerpt(root.messageBody)}”` : "↳ in a thread";
    return link;
  }

  function threadSummary(m) {
    const n = m.replyCount;
    const summary = button(`${n} ${n === 1 ? "reply" : "replies"}`, "open-thread");
    summary.classList.add("thread-summary");
    summary.dataset.root = m.id;
    if (m.lastReplyAt) summary.append(el("span", "last", ` · last ${timeFormat.format(new Date(m.lastReplyAt))}`));
    return summary;
  }

  // The text as sent; the `@name`s that name me (or everyone, by `@room`/`@here`) are marked, and in
  // search results the words found.
  function bodyNode(m, where) {
    const p = el("p", "body");
    if (m.deleted) {
      p.textContent = "This message was deleted.";
      return p;
    }
    const names = new Set();
    if ((m.mentions || []).includes(me().id)) names.add("@" + (me().username || "").toLowerCase());
    if (m.mentionsRoom) names.add("@room").add("@here");
    const parts = m.messageBody.split(/(@\w+)/);
    const terms = where === "list" && pane.mode === "search" ? words(pane.query.q) : [];
    parts.forEach((part, i) => {
      const starts = i % 2 === 1 && (i === 1 ? parts[0] === "" || /\W$/.test(parts[0]) : /\W$/.test(parts[i - 1]));
      if (starts && names.has(part.toLowerCase())) p.append(el("mark", "at", part));
      else if (part) appendMatches(p, part, terms);
    });
    return p;
  }

  // Words as search compares them: without case or accents.
  const fold = (text) => text.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
  const words = (text) => fold(text).match(/[\p{L}\p{N}_]+/gu) || [];

  // A search result's words that start with a word searched for are marked.
  function appendMatches(p, text, terms) {
    if (!terms.length) return p.append(text);
    let at = 0;
    for (const match of text.matchAll(/[\p{L}\p{N}_]+/gu)) {
      const word = fold(match[0]);
      if (!terms.some((t) => word.startsWith(t))) continue;
      p.append(text.slice(at, match.index), el("mark", "hit", match[0]));
      at = match.index + match[0].length;
    }
    p.append(text.slice(at));
  }

  function size(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  // Images as their thumbnails (signed URLs work in <img src> without a header), other files as links.
  function filesNode(files) {
    const list = el("ul", "files");
    for (const f of files) {
      const item = el("li");
      const link = el("a", f.thumbnailUrl ? "file thumb" : "file");
      link.href = f.url;
      if (f.thumbnailUrl) {
        link.target = "_blank";
        link.rel = "noopener";
        const img = el("img");
        const scale = Math.min(1, 320 / Math.max(f.width || 1, f.height || 1));
        img.width = Math.max(1, Math.round((f.width || 320) * scale));
        img.height = Math.max(1, Math.round((f.height || 320) * scale));
        img.alt = f.name;
        img.src = f.thumbnailUrl;
        link.title = `${f.name} (${f.width} × ${f.height}, ${size(f.size)}): open it full size`;
        link.append(img);
      } else {
        link.download = f.name;
        link.append(el("span", "file-name", f.name), el("span", "file-size", size(f.size)));
      }
      item.append(link);
      list.append(item);
    }
    return list;
  }

  function reactionsNode(m, enabled) {
    const row = el("div", "reactions");
    for (const r of m.reactions) {
      const mine = r.userIds.includes(me().id);
      const chip = el("button", "reaction");
      chip.type = "button";
      chip.dataset.act = "react";
      chip.dataset.emoji = r.emoji;
      chip.append(el("span", "emoji", r.emoji), el("span", "count", String(r.count)));
      chip.setAttribute("aria-pressed", String(mine));
      chip.setAttribute("aria-label", `${r.emoji}: ${r.count} ${r.count === 1 ? "reaction" : "reactions"}${mine ? ", yours among them" : ""}`);
      chip.disabled = !enabled;
      row.append(chip);
    }
    return row;
  }

  function updateMessage(m) {
    const li = view.items.get(m.id);
    if (li) {
      if (m.deleted && li.dataset.editing) delete li.dataset.editing;
      const focused = li.contains(document.activeElement) ? document.activeElement : null;
      fillMessage(li, m);
      if (li === lastMine()) renderSeen();
      if (focused && !li.contains(focused)) {
        // Re-rendered under the reader's focus: keep it on the same control, or go to the message box.
        const same = focused.dataset.act && li.querySelector(`[data-act="${focused.dataset.act}"]`);
        (same || $("body")).focus();
      }
    }
    updatePane(m);
  }

  // ------------------------------------------------------------------ edit and delete

  function startEdit(li) {
    const m = view.messages.get(li.dataset.id);
    if (!m || m.deleted || li.dataset.editing) return;
    li.dataset.editing = "1";
    const form = el("form", "edit");
    const id = "edit-" + m.id;
    const label = el("label", "sr-only", "Edit message");
    label.htmlFor = id;
    const input = el("textarea");
    input.id = id;
    input.maxLength = 4000;
    input.rows = 2;
    input.value = m.messageBody;
    const save = el("button", "small", "Save");
    save.type = "submit";
    const hint = el("span", "hint", "Enter to save, Esc to cancel");
    const error = el("p", "error");
    error.setAttribute("role", "alert");
    const row = el("div", "row");
    row.append(save, button("Cancel", "cancel-edit"), hint);
    form.append(label, input, row, error);
    li.querySelector(".body").replaceWith(form);
    li.querySelector(".actions")?.remove();
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        finishEdit(li);
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const messageBody = input.value;
      if (!messageBody.trim()) {
        error.textContent = "A message can't be empty. To remove it, use Delete.";
        return;
      }
      if (messageBody === m.messageBody) return finishEdit(li);
      save.disabled = true;
      try {
        const updated = await api("PATCH", `/api/messages/${encodeURIComponent(m.id)}`, { messageBody });
        view.messages.set(updated.id, updated);
        finishEdit(li);
      } catch (err) {
        error.textContent = "Not saved: " + describe(err);
        save.disabled = false;
      }
    });
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  function finishEdit(li) {
    delete li.dataset.editing;
    fillMessage(li, view.messages.get(li.dataset.id));
    const edit = li.querySelector('[data-act="edit"]');
    (edit || $("body")).focus();
  }

  function confirmDelete(li) {
    const actions = li.querySelector(".actions");
    if (!actions) return;
    const question = el("span", "question", "Delete this message?");
    const yes = button("Delete", "confirm-delete");
    yes.classList.add("danger");
    const no = button("Keep", "cancel-delete");
    actions.replaceChildren(question, yes, no);
    actions.classList.add("confirming");
    no.focus();
  }

  async function deleteMessage(li) {
    const m = view.messages.get(li.dataset.id);
    const actions = li.querySelector(".actions");
    actions.querySelectorAll("button").forEach((b) => (b.disabled = true));
    try {
      await api("DELETE", `/api/messages/${encodeURIComponent(m.id)}`);
      updateMessage(erased(m));
      $("body").focus();
      announce("Message deleted.");
    } catch (err) {
      fillMessage(li, m);
      showError(li, "Not deleted: " + describe(err));
    }
  }

  function showError(li, text) {
    li.querySelector(":scope > .error")?.remove();
    const error = el("p", "error", text);
    error.setAttribute("role", "alert");
    li.append(error);
  }

  // ------------------------------------------------------------------ reactions and pins

  const PALETTE = ["👍", "🎉", "😂", "🔥", "👀", "✅"];

  function togglePalette(li, trigger) {
    const open = li.querySelector(":scope > .palette");
    trigger.setAttribute("aria-expanded", String(!open));
    if (open) return open.remove();
    const bar = el("div", "palette");
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", "Pick a reaction");
    for (const emoji of PALETTE) {
      const pick = button(emoji, "react-pick", `React with ${emoji}`);
      pick.dataset.emoji = emoji;
      bar.append(pick);
    }
    li.append(bar);
    bar.querySelector("button").focus();
  }

  // A reaction of mine is taken back, any other added: one `react` event either way.
  async function react(li, m, emoji) {
    const reaction = (m.reactions || []).find((r) => r.emoji === emoji);
    const add = !(reaction && reaction.userIds.includes(me().id));
    const ack = await emit("react", { messageId: m.id, emoji, add });
    if (ack.ok) updateMessage(ack.message);
    else showError(li, `Couldn't ${add ? "add" : "remove"} ${emoji}: ${describe(ack.error)}`);
  }

  async function setPin(li, m, pinned) {
    try {
      updateMessage(await api(pinned ? "PUT" : "DELETE", `/api/messages/${encodeURIComponent(m.id)}/pin`));
      announce(pinned ? "Message pinned." : "Message unpinned.");
    } catch (err) {
      showError(li, `Couldn't ${pinned ? "pin" : "unpin"} it: ${describe(err)}`);
    }
  }

  // What the timeline and the side panel's messages answer alike.
  function messageAct(target, li) {
    const m = view.messages.get(li.dataset.id) || pane.messages.get(li.dataset.id);
    const act = target.dataset.act;
    if (!m) return false;
    if (act === "more") {
      const open = !li.classList.contains("open");
      for (const other of document.querySelectorAll("li.msg.open")) {
        other.classList.remove("open");
        other.querySelector('[data-act="more"]')?.setAttribute("aria-expanded", "false");
      }
      li.classList.toggle("open", open);
      target.setAttribute("aria-expanded", String(open));
    } else if (act === "open-thread") openThread(target.dataset.root);
    else if (act === "reply") openThread(m.replyTo || m.id, { focus: true });
    else if (act === "react-menu") togglePalette(li, target);
    else if (act === "react" || act === "react-pick") {
      li.querySelector(":scope > .palette")?.remove();
      react(li, m, target.dataset.emoji);
    } else if (act === "pin" || act === "unpin") setPin(li, m, act === "pin");
    else if (act === "show") showInRoom(m.id);
    else if (act === "open") openResult(m);
    else return false;
    return true;
  }

  $("messages").addEventListener("click", (event) => {
    const target = event.target.closest("button[data-act]");
    if (!target) return;
    const li = target.closest("li.msg");
    const act = target.dataset.act;
    if (li && li.dataset.id && messageAct(target, li)) return;
    if (act === "edit") startEdit(li);
    else if (act === "cancel-edit") finishEdit(li);
    else if (act === "delete") confirmDelete(li);
    else if (act === "confirm-delete") deleteMessage(li);
    else if (act === "cancel-delete") {
      fillMessage(li, view.messages.get(li.dataset.id));
      li.querySelector('[data-act="delete"]')?.focus();
    } else if (act === "retry") retrySend(li.dataset.clientId);
    else if (act === "discard") discardSend(li.dataset.clientId);
  });

  // ------------------------------------------------------------------ sending

  function readonly() {
    return !!(view.room && view.room.myRole === "readonly");
  }

  function updateComposer() {
    const body = $("body");
    const note = $("composer-note");
    const ro = readonly();
    body.disabled = ro;
    $("send").disabled = ro || drafts.some((d) => d.state === "uploading");
    $("attach").disabled = ro || !view.roomId;
    if (ro) note.textContent = "You have read-only access to this room: you can read it but not post.";
    else if (note.dataset.kind === "readonly") note.textContent = "";
    note.dataset.kind = ro ? "readonly" : "";
  }

  function pendingItem(item) {
    const li = el("li", "msg mine pending");
    li.dataset.clientId = item.clientId;
    const date = new Date(item.t);
    li.dataset.day = dayKey(date);
    li.dataset.user = me().id;
    li.dataset.t = String(item.t);
    const meta = el("div", "meta");
    const status = {
      opening: "Waiting for the room to open…",
      sending: "Sending…",
      waiting: "Not sent yet: waiting for the connection",
      failed: "Not sent",
    }[item.state];
    meta.append(el("span", "author", "You"), el("span", "status", status));
    li.append(meta, el("p", "body", item.body));
    if (item.files.length) li.append(filesNode(item.files));
    if (item.state === "failed") {
      li.classList.add("failed");
      const error = el("p", "error", item.error);
      error.setAttribute("role", "alert");
      const actions = el("div", "actions shown");
      if (!readonly()) actions.append(button("Retry", "retry", "Retry sending this message"));
      actions.append(button("Discard", "discard", "Discard this message"));
      li.append(error, actions);
    }
    return li;
  }

  function renderOutbox() {
    const ol = $("messages");
    for (const li of ol.querySelectorAll("li.pending")) li.remove();
    for (const item of outbox.values()) if (item.room === view.roomId) ol.append(pendingItem(item));
    relayout();
  }

  function settleOutbox(m) {
    if (m.clientId && m.userId === me().id && outbox.delete(m.clientId)) {
      $("messages").querySelector(`li.pending[data-client-id="${CSS.escape(m.clientId)}"]`)?.remove();
    }
  }

  function setOutboxState(item, state, error) {
    item.state = state;
    item.error = error || "";
    const old = $("messages").querySelector(`li.pending[data-client-id="${CSS.escape(item.clientId)}"]`);
    if (old) old.replaceWith(pendingItem(item));
  }

  async function deliver(item) {
    if (item.inFlight || !item.room) return;
    if (!socket || !socket.connected) return setOutboxState(item, "waiting");
    item.inFlight = true;
    setOutboxState(item, "sending");
    const payload = { room: item.room, messageBody: item.body, clientId: item.clientId };
    if (item.files.length) payload.attachments = item.files.map((f) => f.id);
    const ack = await emit("message", payload);
    item.inFlight = false;
    if (!outbox.has(item.clientId)) return; // its broadcast came first
    if (ack.ok) {
      if (ack.message.room === view.roomId && !view.loading && !view.syncing) addNewer([ack.message]);
      else settleOutbox(ack.message);
      return;
    }
    const code = ack.error.code;
    if (code === "offline" || code === "timeout" || code === "unauthorized") {
      // Sent again on the next connection, with the same clientId: stored once whatever happened.
      setOutboxState(item, "waiting");
      if (code === "timeout" && socket && socket.connected) setTimeout(() => deliver(item), 2000);
    } else if (code === "rate_limited") {
      setOutboxState(item, "waiting");
      setTimeout(() => deliver(item), 1000 * ((ack.error.details && ack.error.details.retryAfter) || 1));
    } else {
      setOutboxState(item, "failed", describe(ack.error));
      if (code === "forbidden" || code === "not_found") refreshRoom(generation);
    }
  }

  function flushOutbox() {
    for (const item of outbox.values()) if (item.state !== "failed") deliver(item);
  }

  function retrySend(clientId) {
    const item = outbox.get(clientId);
    if (item) deliver(item);
  }

  // Messages written for a room that never opened go back to the message box, not to another room.
  function unsendOpening(gen) {
    for (const item of [...outbox.values()]) {
      if (item.room !== null || item.gen !== gen) continue;
      outbox.delete(item.clientId);
      if (!$("body").value) $("body").value = item.body;
    }
  }

  function discardSend(clientId) {
    outbox.delete(clientId);
    $("messages").querySelector(`li.pending[data-client-id="${CSS.escape(clientId)}"]`)?.remove();
    relayout();
    $("body").focus();
  }

  function send() {
    const body = $("body");
    const text = body.value;
    const files = drafts.filter((d) => d.state === "ready").map((d) => d.file);
    if ((!text.trim() && !files.length) || body.disabled) return;
    if (drafts.some((d) => d.state === "uploading")) return; // its chip says "Uploading…"; Send is disabled meanwhile
    stopTyping();
    // While a room is still opening, the message waits for it (its id comes with the join's ack).
    const state = view.roomId ? "sending" : "opening";
    const item = { clientId: newClientId(), room: view.roomId, gen: generation, body: text, files, t: Date.now(), state };
    outbox.set(item.clientId, item);
    drafts = [];
    renderDrafts();
    $("messages").append(pendingItem(item));
    relayout();
    scrollToBottom();
    body.value = "";
    deliver(item);
  }

  let typingSince = 0;
  let typingTimer = null;
  function stopTyping() {
    clearTimeout(typingTimer);
    typingTimer = null;
    if (typingSince && socket && socket.connected && view.roomId) socket.emit("typing", { room: view.roomId, typing: false }, () => {});
    typingSince = 0;
  }

  $("body").addEventListener("input", () => {
    if (!socket || !socket.connected || !view.roomId) return;
    if (!$("body").value) return stopTyping();
    const now = Date.now();
    if (now - typingSince > 3000) {
      typingSince = now;
      socket.emit("typing", { room: view.roomId, typing: true }, () => {});
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 2500);
  });

  $("body").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    } else if (event.key === "ArrowUp" && !$("body").value) {
      // Up in an empty box edits your last message.
      const own = [...$("messages").querySelectorAll("li.msg.mine[data-id]:not(.deleted)")].pop();
      if (own) {
        event.preventDefault();
        startEdit(own);
      }
    }
  });

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
    $("body").focus();
  });

  // ------------------------------------------------------------------ read state and badges

  // The reader sees the newest messages: the tab is in front and the list is at its bottom.
  function seeing() {
    return document.visibilityState === "visible" && !view.loading && nearBottom();
  }

  let readTimer = null;
  function markReadSoon() {
    clearTimeout(readTimer);
    readTimer = setTimeout(markRead, 250);
  }

  // Move my read marker to the newest message shown (the server only ever moves it forward).
  async function markRead() {
    const id = lastSeenId();
    if (!id || !view.roomId || !seeing() || id === view.readUpTo) return;
    const gen = generation;
    view.readUpTo = id;
    const room = roomList.get(view.roomId);
    if (room && (room.unreadCount || room.mentionCount)) {
      Object.assign(room, { unreadCount: 0, mentionCount: 0 });
      renderRooms();
    }
    const ack = await emit("read", { room: view.roomId, messageId: id });
    if (gen !== generation) return;
    if (!ack.ok) {
      // Not through: tried again the next time the newest message is seen.
      if (["offline", "timeout", "unauthorized", "rate_limited"].includes(ack.error.code) && view.readUpTo === id) view.readUpTo = null;
      return;
    }
    const current = roomList.get(ack.room);
    if (!current) return;
    Object.assign(current, { unreadCount: ack.unreadCount, mentionCount: ack.mentionCount, lastReadMessageId: ack.lastReadMessageId });
    renderRooms();
  }

  // A message I have not seen, in another room or in this one while I look elsewhere: its room's badge
  // goes up once, whichever of `message` and `notification` tells first.
  function bump(roomId, m) {
    if (m.userId === me().id || counted.has(m.id)) return;
    counted.add(m.id);
    const room = roomList.get(roomId);
    if (!room) return loadRooms(); // a room the list does not show yet: it comes with the server's counts
    room.unreadCount = (room.unreadCount || 0) + 1;
    if (mentionsMe(m)) room.mentionCount = (room.mentionCount || 0) + 1;
    room.lastMessageAt = m.timeStamp;
    renderRooms();
  }

  // Mentions and DM messages reach every socket of mine, in rooms this tab has not joined.
  function onNotification({ reason, room: roomId, message: m }) {
    if (roomId === view.roomId) return; // the open room's own `message` event tells
    bump(roomId, m);
    const room = roomList.get(roomId);
    const text = excerpt(m.messageBody || "a file");
    if (reason === "dm") announce(`Direct message from ${m.userName}: ${text}`);
    else announce(`${m.userName} mentioned you in ${room ? roomName(room) : "a room"}: ${text}`);
  }

  // Someone added me to a room, or opened a DM with me.
  async function onRoomAdded({ room }) {
    addRoomFirst(room);
    renderRooms();
    if (room.kind === "dm") await loadDmNames();
    announce(room.kind === "dm" ? `New conversation with ${roomName(room)}.` : `You were added to ${roomName(room)}.`);
  }

  // My marker moved elsewhere (another tab of mine): that room's counts changed.
  function onReadReceipt(e) {
    if (e.userId !== me().id) {
      if (e.room !== view.roomId) return;
      view.seen.set(e.userId, { name: e.userName, messageId: e.messageId });
      return renderSeen();
    }
    if (e.room === view.roomId && e.messageId === view.readUpTo) return; // this tab's own
    refreshCounts(e.room);
  }

  // "Seen by" under my newest message, in rooms small enough for receipts to reach everyone in them.
  const RECEIPTS_MAX_MEMBERS = 50; // the server's READ_RECEIPTS_MAX_MEMBERS default
  const lastMine = () => [...$("messages").querySelectorAll("li.msg.mine[data-id]")].pop() || null;

  async function loadSeen(gen) {
    const mine = lastMine();
    if (!mine || !view.room || view.room.memberCount > RECEIPTS_MAX_MEMBERS) return;
    try {
      const { readers } = await api("GET", `/api/messages/${encodeURIComponent(mine.dataset.id)}/readers`);
      if (gen !== generation) return;
      for (const r of readers) if (!view.seen.has(r.userId)) view.seen.set(r.userId, { name: r.userName, messageId: mine.dataset.id });
      renderSeen();
    } catch {
      /* receipts still come live */
    }
  }

  function renderSeen() {
    $("messages").querySelector(".seen")?.remove();
    const mine = lastMine();
    if (!mine || !view.seen.size || mine.classList.contains("deleted")) return;
    const items = [...$("messages").querySelectorAll("li.msg[data-id]")];
    const at = items.indexOf(mine);
    const names = [...view.seen.values()].filter((s) => items.indexOf(view.items.get(s.messageId)) >= at).map((s) => s.name);
    if (names.length) mine.append(el("p", "seen", `Seen by ${names.sort().join(", ")}`));
  }

  let roomsSeenAt = Date.now();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible" || !socket) return;
    markReadSoon();
    // Plain messages in rooms this tab has not joined come with no event: their counts come from the list.
    if (Date.now() - roomsSeenAt > 15000) {
      roomsSeenAt = Date.now();
      loadRooms();
    }
  });

  // ------------------------------------------------------------------ people and direct messages

  let peopleTimer = null;
  let peopleAsked = 0;

  async function findPeople() {
    const q = $("people-q").value.trim();
    const asked = ++peopleAsked;
    const note = $("people-note");
    if (!q) {
      $("people").replaceChildren();
      note.textContent = "";
      return;
    }
    if (!/^[\w.-]{1,32}$/.test(q)) {
      $("people").replaceChildren();
      note.textContent = "Usernames have only letters, digits, _ . and -.";
      return;
    }
    try {
      const { users } = await api("GET", `/api/users?q=${encodeURIComponent(q)}&limit=8`);
      if (asked !== peopleAsked) return;
      const others = users.filter((u) => u.id !== me().id);
      $("people").replaceChildren(
        ...others.map((u) => {
          const li = el("li");
          const b = el("button", "person ghost small", u.username);
          b.type = "button";
          b.dataset.user = u.id;
          b.dataset.name = u.username;
          if (u.displayName && u.displayName !== u.username) b.append(el("span", "display", ` ${u.displayName}`));
          b.setAttribute("aria-label", `Message ${u.username}`);
          li.append(b);
          return li;
        }),
      );
      note.textContent = others.length ? `${others.length} found` : `Nobody else's name starts with “${q}”.`;
    } catch (err) {
      if (asked === peopleAsked) note.textContent = describe(err);
    }
  }

  async function openDm(userId, name) {
    try {
      const room = await api("POST", "/api/dms", { userIds: [userId] });
      if (!dmNames.get(room.id)) dmNames.set(room.id, name);
      if (!roomList.has(room.id)) addRoomFirst(room);
      renderRooms();
      $("people-q").value = "";
      $("people").replaceChildren();
      $("people-note").textContent = "";
      closeSidebar();
      if (room.id === view.roomId) $("body").focus();
      else await enterRoom(room.id, { focus: true });
    } catch (err) {
      $("people-note").textContent = "Couldn't open the conversation: " + describe(err);
    }
  }

  // ------------------------------------------------------------------ the side panel: a thread, pins, search results

  const pane = { mode: null, gen: 0, rootId: null, room: null, cursor: null, query: null, clientId: null, opener: null, items: new Map(), messages: new Map() };

  function openPane(mode, title) {
    const opener = document.activeElement;
    Object.assign(pane, { mode, gen: pane.gen + 1, rootId: null, room: view.roomId, cursor: null, query: null, clientId: null });
    if (!$("pane").contains(opener)) pane.opener = opener;
    pane.items.clear();
    pane.messages.clear();
    $("pane-title").textContent = title;
    $("pane-top").replaceChildren();
    $("pane-list").replaceChildren();
    $("pane-older").hidden = true;
    $("pane-more").hidden = true;
    $("pane-note").textContent = "Loading…";
    $("reply-form").hidden = mode !== "thread" || !canPost();
    $("reply-error").textContent = "";
    $("pane").dataset.mode = mode;
    $("pane").hidden = false;
    $("chat").classList.add("pane-open");
    return pane.gen;
  }

  function closePane({ refocus = false } = {}) {
    if (!pane.mode) return;
    pane.mode = null;
    pane.gen++;
    pane.items.clear();
    pane.messages.clear();
    $("pane").hidden = true;
    $("chat").classList.remove("pane-open");
    if (refocus) (pane.opener && pane.opener.isConnected && !pane.opener.disabled ? pane.opener : $("body")).focus();
  }

  function paneItem(m, where) {
    const li = el("li", "msg");
    li.dataset.id = m.id;
    pane.items.set(m.id, li);
    fillMessage(li, m, where);
    return li;
  }

  function updatePane(m) {
    if (!pane.mode) return;
    const li = pane.items.get(m.id);
    if (pane.mode === "thread" && m.id === pane.rootId) renderThreadRoot(m);
    else if (li) fillMessage(li, m, pane.mode === "thread" ? "thread" : "list");
    // A pin or an unpin changes the pins list itself.
    if (pane.mode === "pins" && m.room === pane.room && !!li !== (m.pinned && !m.deleted)) loadPins(pane.gen);
  }

  async function openThread(rootId, { focus = false } = {}) {
    if (!(pane.mode === "thread" && pane.rootId === rootId)) {
      const gen = openPane("thread", "Thread");
      pane.rootId = rootId;
      renderThreadRoot(view.messages.get(rootId));
      loadReplies(gen);
    }
    if (focus && canPost()) $("reply-body").focus();
    else $("pane-scroller").focus();
  }

  function renderThreadRoot(root) {
    const top = $("pane-top");
    if (!root) {
      top.replaceChildren(el("p", "note", "The message that started this thread is further up the room."));
      return;
    }
    const ol = el("ol", "messages");
    ol.append(paneItem(root, "thread"));
    const n = root.replyCount || 0;
    top.replaceChildren(ol, el("p", "replies-count", n ? `${n} ${n === 1 ? "reply" : "replies"}` : "No replies yet"));
  }

  // A page of replies, newest first from the server: older pages go on top, the reader's place kept.
  async function loadReplies(gen, older = false) {
    const box = $("pane-scroller");
    const query = `room=${encodeURIComponent(pane.room)}&thread=${encodeURIComponent(pane.rootId)}&limit=${PAGE}`;
    const before = older ? `&before=${encodeURIComponent(pane.cursor)}` : "";
    $("pane-older").disabled = true;
    try {
      const page = await api("GET", `/api/messages?${query}${before}`);
      if (gen !== pane.gen) return;
      const fromBottom = box.scrollHeight - box.scrollTop;
      const list = $("pane-list");
      for (const m of page.messages) if (!pane.items.has(m.id)) list.insertBefore(paneItem(m, "thread"), list.firstChild);
      pane.cursor = page.nextCursor;
      $("pane-older").hidden = !pane.cursor;
      $("pane-note").textContent = "";
      box.scrollTop = older ? box.scrollHeight - fromBottom : box.scrollHeight;
    } catch (err) {
      if (gen === pane.gen) $("pane-note").textContent = "Couldn't load the replies. " + describe(err);
    } finally {
      $("pane-older").disabled = false;
    }
  }

  function addReply(m) {
    if (pane.items.has(m.id)) return updatePane(m);
    const box = $("pane-scroller");
    const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    $("pane-list").append(paneItem(m, "thread"));
    if (stick) box.scrollTop = box.scrollHeight;
  }

  // Replies go out as `message` with `replyTo`; a retry after a lost ack reuses the clientId.
  async function sendReply() {
    const box = $("reply-body");
    const text = box.value;
    if (!text.trim() || !pane.rootId || $("reply-send").disabled) return;
    const gen = pane.gen;
    pane.clientId = pane.clientId || newClientId();
    $("reply-send").disabled = true;
    $("reply-error").textContent = "";
    const ack = await emit("message", { room: pane.room, messageBody: text, clientId: pane.clientId, replyTo: pane.rootId });
    $("reply-send").disabled = false;
    if (gen !== pane.gen) return;
    if (!ack.ok) {
      $("reply-error").textContent = "Not sent: " + describe(ack.error);
      return;
    }
    pane.clientId = null;
    box.value = "";
    addReply(ack.message);
    if (ack.message.room === view.roomId && !view.loading && !view.syncing) addNewer([ack.message]);
  }

  async function openPins() {
    const gen = openPane("pins", `Pinned in ${view.room ? roomName(view.room) : "this room"}`);
    $("pane-scroller").focus();
    await loadPins(gen);
  }

  async function loadPins(gen) {
    try {
      const { messages } = await api("GET", `/api/rooms/${encodeURIComponent(pane.room)}/pins`);
      if (gen !== pane.gen) return;
      pane.items.clear();
      pane.messages.clear();
      $("pane-list").replaceChildren(...messages.map((m) => paneItem(m, "list")));
      $("pane-note").textContent = messages.length ? "" : `Nothing is pinned here yet.${canPin() ? " Pin a message with its Pin button." : ""}`;
    } catch (err) {
      if (gen === pane.gen) $("pane-note").textContent = "Couldn't load the pins. " + describe(err);
    }
  }

  async function search(more = false) {
    const q = $("search-q").value.trim();
    if (!more && !q) return;
    const gen = more ? pane.gen : openPane("search", `Results for “${q}”`);
    if (!more) pane.query = { q, room: $("search-here").checked ? view.roomId : null };
    const params = new URLSearchParams({ q: pane.query.q, limit: "20" });
    if (pane.query.room) params.set("room", pane.query.room);
    if (more) params.set("before", pane.cursor);
    $("pane-more").disabled = true;
    try {
      const page = await api("GET", `/api/search?${params}`);
      if (gen !== pane.gen) return;
      await learnRooms(page.messages.map((m) => m.room));
      if (gen !== pane.gen) return;
      $("pane-list").append(...page.messages.filter((m) => !pane.items.has(m.id)).map((m) => paneItem(m, "list")));
      pane.cursor = page.nextCursor;
      $("pane-more").hidden = !pane.cursor;
      const n = pane.items.size;
      const where = pane.query.room ? " in this room" : "";
      $("pane-note").textContent = n ? `${n}${pane.cursor ? "+" : ""} ${n === 1 ? "message" : "messages"}${where}` : `Nothing matches “${pane.query.q}”${where}.`;
      if (!more) announce($("pane-note").textContent);
    } catch (err) {
      if (gen === pane.gen) $("pane-note").textContent = "Couldn't search: " + describe(err);
    } finally {
      $("pane-more").disabled = false;
    }
  }

  // Rooms readable but not in the list (public rooms beyond its first page, or made since): named once fetched.
  async function learnRooms(ids) {
    const unknown = [...new Set(ids)].filter((id) => !roomList.has(id) && !otherRooms.has(id));
    await Promise.all(
      unknown.map((id) =>
        api("GET", `/api/rooms/${encodeURIComponent(id)}`)
          .then((room) => otherRooms.set(id, room))
          .catch(() => {}),
      ),
    );
  }

  // A search result: its room, scrolled to it when it is among the newest messages.
  async function openResult(m) {
    closePane();
    closeSidebar();
    if (m.room !== view.roomId) await enterRoom(m.room);
    if (!showInRoom(m.id)) $("history-note").textContent = "That message is further up: scroll up to find it.";
  }

  function showInRoom(id) {
    const li = view.items.get(id);
    if (!li) return false;
    if (phone()) closePane();
    li.scrollIntoView({ block: "center" });
    li.classList.add("flash");
    setTimeout(() => li.classList.remove("flash"), 2000);
    return true;
  }

  // ------------------------------------------------------------------ files

  function renderDrafts() {
    $("attachments").replaceChildren(
      ...drafts.map((d) => {
        const li = el("li", `draft ${d.state}`);
        li.dataset.key = d.key;
        if (d.file && d.file.thumbnailUrl) {
          const img = el("img");
          img.alt = "";
          img.src = d.file.thumbnailUrl;
          li.append(img);
        }
        const status = { uploading: "Uploading…", failed: d.error, ready: d.file && size(d.file.size) }[d.state];
        li.append(el("span", "file-name", d.name), el("span", "status", status));
        li.append(button("Remove", "remove-file", `Remove ${d.name}`));
        if (d.state === "failed") li.lastChild.previousSibling.setAttribute("role", "alert");
        return li;
      }),
    );
    updateComposer();
  }

  // Uploaded at once to the open room; the next message sent there takes it as an attachment.
  async function upload(file) {
    if (!view.roomId) return;
    const draft = { key: newClientId(), name: file.name, state: "uploading", file: null, error: "" };
    drafts.push(draft);
    renderDrafts();
    const form = new FormData();
    form.append("room", view.roomId);
    form.append("file", file);
    try {
      draft.file = await api("POST", "/api/files", form);
      draft.state = "ready";
    } catch (err) {
      draft.state = "failed";
      draft.error = `Not uploaded: ${describe(err)}`;
    }
    if (drafts.includes(draft)) renderDrafts();
  }

  // ------------------------------------------------------------------ the rest of the page

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn("/api/auth/login");
  });
  $("register").addEventListener("click", () => signIn("/api/auth/register"));
  $("logout").addEventListener("click", logout);

  function onRoomClick(event) {
    const b = event.target.closest("button[data-id]");
    if (!b) return;
    closeSidebar();
    if (b.dataset.id !== view.roomId) enterRoom(b.dataset.id, { focus: true }).then(() => loadRooms());
    else $("body").focus();
  }
  $("rooms").addEventListener("click", onRoomClick);
  $("dms").addEventListener("click", onRoomClick);
  $("rooms-refresh").addEventListener("click", () => loadRooms());
  $("more-rooms").addEventListener("click", () => loadRooms(true));
  $("history-note").addEventListener("click", (event) => {
    if (event.target.closest('button[data-act="general"]')) enterRoom("general", { focus: true });
  });

  $("new-room").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("room-error").textContent = "";
    const name = $("room-name").value.trim();
    if (!name) return;
    try {
      const room = await api("POST", "/api/rooms", { name, private: $("room-private").checked });
      $("room-name").value = "";
      $("room-private").checked = false;
      roomList.set(room.id, room);
      closeSidebar();
      await enterRoom(room.id, { focus: true });
      loadRooms();
    } catch (err) {
      $("room-error").textContent = describe(err);
    }
  });

  $("older").addEventListener("click", () => loadOlder());
  $("scroller").addEventListener("scroll", () => {
    if ($("scroller").scrollTop < 120) loadOlder();
    if (nearBottom()) {
      $("jump").hidden = true;
      markReadSoon();
    }
  });
  $("jump").addEventListener("click", () => {
    scrollToBottom();
    $("body").focus();
  });

  // Phone width: the room list is a panel opened from the top bar.
  function closeSidebar() {
    $("chat").classList.remove("nav-open");
    $("rooms-toggle").setAttribute("aria-expanded", "false");
  }
  $("rooms-toggle").addEventListener("click", () => {
    const open = !$("chat").classList.contains("nav-open");
    $("chat").classList.toggle("nav-open", open);
    $("rooms-toggle").setAttribute("aria-expanded", String(open));
    if (open) ($("rooms").querySelector("button") || $("room-name")).focus();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if ($("chat").classList.contains("nav-open")) {
      closeSidebar();
      $("rooms-toggle").focus();
    } else if (event.target.closest(".palette")) {
      const li = event.target.closest("li.msg");
      li.querySelector(":scope > .palette").remove();
      li.querySelector('[data-act="react-menu"]')?.focus();
    } else if (pane.mode && (event.target.closest("#pane") || phone())) {
      closePane({ refocus: true });
    }
  });

  $("people-q").addEventListener("input", () => {
    clearTimeout(peopleTimer);
    peopleTimer = setTimeout(findPeople, 250);
  });
  $("find-people").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(peopleTimer);
    findPeople();
  });
  $("people").addEventListener("click", (event) => {
    const b = event.target.closest("button[data-user]");
    if (b) openDm(b.dataset.user, b.dataset.name);
  });

  $("pane-close").addEventListener("click", () => closePane({ refocus: true }));
  $("pane-older").addEventListener("click", () => loadReplies(pane.gen, true));
  $("pane-more").addEventListener("click", () => search(true));
  $("pane").addEventListener("click", (event) => {
    const target = event.target.closest("button[data-act]");
    const li = target && target.closest("li.msg[data-id]");
    if (li) messageAct(target, li);
  });
  $("reply-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendReply();
  });
  $("reply-body").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendReply();
    }
  });
  $("reply-body").addEventListener("input", () => (pane.clientId = null)); // another text: another message
  $("pins-open").addEventListener("click", openPins);
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });

  $("attach").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", () => {
    for (const file of $("file").files) upload(file);
    $("file").value = "";
    $("body").focus();
  });
  $("body").addEventListener("paste", (event) => {
    const files = [...(event.clipboardData ? event.clipboardData.files : [])];
    if (!files.length || readonly()) return;
    event.preventDefault();
    files.forEach(upload);
  });
  $("attachments").addEventListener("click", (event) => {
    const b = event.target.closest('button[data-act="remove-file"]');
    if (!b) return;
    drafts = drafts.filter((d) => d.key !== b.closest("li").dataset.key);
    renderDrafts();
    $("body").focus();
  });

  // Another tab signed out or in as someone else.
  window.addEventListener("storage", (event) => {
    if (event.key !== KEY && event.key !== null) return;
    const session = store.get();
    if (!session && !$("chat").hidden) endSession("You signed out in another tab.");
    else if (session && sessionUser && session.user && session.user.id !== sessionUser) location.reload();
  });

  if (store.get() && store.get().accessToken) startChat();
  else showSignIn();
})();

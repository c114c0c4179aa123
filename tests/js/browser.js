// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) uses /demo as a person would.
// SCENARIO picks what to drive: chat, history, reconnect, session, phone, dm, thread, reactions, files or search.
// URL, ARTIFACTS (screenshot directory), JWT_SECRET (to mint an expired token), HISTORY_ROOM and
// CHROMIUM come from the environment. Prints one JSON line; any failed check exits 1.
const crypto = require("node:crypto");
const path = require("node:path");
const { chromium } = require("playwright-core");

const {
  URL: base,
  SCENARIO = "chat",
  ARTIFACTS = ".",
  JWT_SECRET,
  HISTORY_ROOM,
  CHROMIUM: executablePath = "/usr/bin/chromium",
} = process.env;
const run = Math.random().toString(36).slice(2, 8);
const PASSWORD = "browser-password-1";
const KEY = "chat-demo.session";

function check(condition, what, detail) {
  if (!condition) throw new Error(`check failed: ${what}${detail === undefined ? "" : ": " + JSON.stringify(detail)}`);
}

// What every page records: CSP violations (event and console) and uncaught errors.
const problems = { csp: [], pageErrors: [] };
const screenshots = [];
const pages = [];

function hook() {
  // Runs before the page's own scripts (init scripts are not subject to the page's CSP).
  document.addEventListener("securitypolicyviolation", (e) => window.__reportCsp(`${e.violatedDirective} ${e.blockedURI}`));
  // Keep a handle on the page's socket, let a test drop incoming events of some names or slow acks down.
  let real;
  Object.defineProperty(window, "io", {
    configurable: true,
    get: () => real,
    set(value) {
      real = value;
      const proto = value.Socket.prototype;
      const { onevent, onconnect, onack } = proto;
      proto.onack = function (packet) {
        if (window.__slowAcks) setTimeout(() => onack.call(this, packet), window.__slowAcks);
        else onack.call(this, packet);
      };
      proto.onconnect = function (...args) {
        window.__socket = this;
        return onconnect.apply(this, args);
      };
      proto.onevent = function (packet) {
        window.__socket = this;
        const name = packet.data && packet.data[0];
        if ((window.__drop || []).includes(name)) return undefined;
        return onevent.call(this, packet);
      };
    },
  });
}

async function newPage(browser, options = {}) {
  const context = await browser.newContext(options);
  await context.exposeBinding("__reportCsp", (_source, text) => problems.csp.push(text));
  await context.addInitScript(hook);
  return watched(await context.newPage());
}

// Another tab of the same browser (the same stored session).
async function newTab(page) {
  const tab = watched(await page.context().newPage());
  await tab.goto(base + "/demo");
  await online(tab);
  return tab;
}

function watched(page) {
  pages.push(page);
  page.setDefaultTimeout(15000);
  page.on("console", (msg) => {
    if (/Content[- ]Security[- ]Policy|Refused to (load|execute|apply|connect|frame)/i.test(msg.text())) problems.csp.push(msg.text());
  });
  page.on("pageerror", (err) => problems.pageErrors.push(String(err && err.stack ? err.stack : err)));
  return page;
}

async function shot(page, name, options = {}) {
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, ...options });
  screenshots.push(name);
}

async function register(page, name) {
  await page.goto(base + "/demo");
  await page.fill("#username", name);
  await page.fill("#password", PASSWORD);
  await page.click("#register");
  await online(page);
  await page.waitForSelector("#room-title:has-text('general')");
}

const online = (page) => page.waitForSelector('#conn[data-state="online"]');
const session = (page) => page.evaluate((key) => JSON.parse(localStorage.getItem(key)), KEY);
const roomOf = (page) => page.getAttribute("#room", "data-room");
// The id of the room being entered, once its join is answered.
const openedRoom = (page) => page.waitForSelector('#room:not([data-room=""])').then(() => roomOf(page));

async function setAccessToken(page, token) {
  await page.evaluate(
    ([key, value]) => {
      const stored = JSON.parse(localStorage.getItem(key));
      localStorage.setItem(key, JSON.stringify({ ...stored, accessToken: value }));
    },
    [KEY, token],
  );
}

// The same token, signed with the server's key, but expired a minute ago.
function expired(token) {
  const [header, payload] = token.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  const now = Math.floor(Date.now() / 1000);
  Object.assign(claims, { iat: now - 120, nbf: now - 120, exp: now - 60 });
  const body = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  return `${body}.${crypto.createHmac("sha256", JWT_SECRET).update(body).digest("base64url")}`;
}

async function rest(token, method, route, body) {
  const res = await fetch(base + route, {
    method,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: "Bearer " + token } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: res.status === 204 ? null : await res.json() };
}

// The confirmed messages of the open room, top to bottom.
const bodies = (page) => page.$$eval("#messages li.msg[data-id] .body", (els) => els.map((e) => e.textContent));

// The messages (at `selector`) whose own text has this in it, not those quoting it.
const byBody = (page, selector, text) => page.locator(selector, { has: page.locator(":scope > .body", { hasText: text }) });

function shown(page, text) {
  return page.waitForFunction(
    (t) => [...document.querySelectorAll("#messages li.msg[data-id] .body")].some((e) => e.textContent === t),
    text,
  );
}

async function sendFrom(page, text) {
  await page.fill("#body", text);
  await page.press("#body", "Enter");
  await shown(page, text); // stored: the server's copy replaced the pending one
}

// Up in the empty message box edits your last message; Enter saves.
async function editLast(page, text) {
  await page.focus("#body");
  await page.keyboard.press("ArrowUp");
  await page.waitForSelector("li.msg form.edit textarea:focus");
  await page.keyboard.press("Control+A");
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

const activeId = (page) => page.evaluate(() => document.activeElement && document.activeElement.id);

// ---------------------------------------------------------------- scenarios

async function chat(browser) {
  const alice = await newPage(browser, { viewport: { width: 1280, height: 800 } });
  await register(alice, `alice_${run}`);

  // Bob uses only the keyboard.
  const bob = await newPage(browser, { viewport: { width: 1100, height: 760 } });
  await bob.goto(base + "/demo");
  await bob.waitForSelector("#username:focus");
  await bob.keyboard.type(`bob_${run}`);
  await bob.keyboard.press("Tab");
  check((await activeId(bob)) === "password", "Tab goes from username to password");
  await bob.keyboard.type(PASSWORD);
  await bob.keyboard.press("Tab");
  check((await activeId(bob)) === "login-button", "then to Log in");
  await bob.keyboard.press("Tab");
  check((await activeId(bob)) === "register", "then to Create account");
  const ring = await bob.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(ring !== "none", "a focused button shows a focus ring", ring);
  await bob.keyboard.press("Enter");
  await online(bob);
  await bob.waitForSelector("#room-title:has-text('general')");
  await bob.waitForFunction(() => document.activeElement.id === "body");

  await alice.waitForSelector(`#online li:has-text('bob_${run}')`);
  await bob.keyboard.type("hello from bob's tab");
  await alice.waitForSelector(`#typing:has-text('bob_${run} is typing')`);
  await bob.keyboard.press("Enter");
  await shown(alice, "hello from bob's tab");
  await alice.waitForFunction(() => document.getElementById("announcer").textContent.includes("hello from bob's tab"));
  await alice.waitForFunction(() => document.getElementById("typing").textContent === "");
  check((await bob.locator("li.msg.mine .body", { hasText: "hello from bob's tab" }).count()) === 1, "bob's own message is set apart");
  check((await alice.locator("li.msg:not(.mine) .body", { hasText: "hello from bob's tab" }).count()) === 1, "alice sees it as someone else's");
  const stamp = await alice.getAttribute("li.msg[data-id]:last-child time", "datetime");
  check(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(stamp || ""), "messages carry their timestamp", stamp);
  check((await alice.locator("#messages li.day", { hasText: "Today" }).count()) === 1, "a day separator heads today's messages");

  await sendFrom(alice, "hi bob, welcome");
  await shown(bob, "hi bob, welcome");

  // Edit by keyboard: Up in the empty box opens bob's last message.
  await editLast(bob, "hello again (edited)");
  await shown(alice, "hello again (edited)");
  check((await alice.locator("li.msg", { hasText: "hello again (edited)" }).locator(".edited").count()) === 1, "edits are marked");
  await bob.waitForFunction(() => document.activeElement.dataset.act === "edit");

  // Delete with the mouse, confirmed in place.
  const own = bob.locator("li.msg.mine", { hasText: "hello again (edited)" });
  await own.hover();
  await own.locator('[data-act="delete"]').click();
  await own.locator('[data-act="confirm-delete"]').click();
  await alice.waitForSelector("li.msg.deleted .body:has-text('This message was deleted.')");
  check((await alice.locator("li.msg:not(.mine) [data-act='edit']").count()) === 0, "nobody edits another's message");

  // The picture: bob typing, alice pointing at her own message (its Edit and Delete show).
  await bob.fill("#body", "one more thing");
  await bob.press("#body", "End");
  await bob.keyboard.type("…");
  await alice.waitForSelector(`#typing:has-text('bob_${run} is typing')`);
  await alice.locator("li.msg.mine", { hasText: "hi bob, welcome" }).hover();
  await shot(alice, "two-tabs.png");
  await bob.fill("#body", "");

  // Rooms: alice creates one, bob refreshes his list and joins it.
  // Alice creates one and writes at once: her message waits for the room to open (a slow join here).
  const room = `project-${run}`;
  await alice.evaluate(() => (window.__slowAcks = 1500));
  await alice.fill("#room-name", room);
  await alice.press("#room-name", "Enter");
  await alice.waitForSelector(`#room-title:has-text('${room}')`);
  await alice.fill("#body", "welcome to the project");
  await alice.press("#body", "Enter");
  await alice.waitForSelector("li.msg.pending .status:has-text('Waiting for the room to open')");
  await alice.evaluate(() => (window.__slowAcks = 0));
  await shown(alice, "welcome to the project");
  check((await bodies(alice)).length === 1 && (await alice.locator("li.pending").count()) === 0, "sent once, into that room");
  await bob.click("#rooms-refresh");
  await bob.click(`#rooms button:has-text('${room}')`);
  await bob.waitForSelector(`#room-title:has-text('${room}')`);
  await shown(bob, "welcome to the project");
  await alice.waitForSelector(`#online li:has-text('bob_${run}')`);

  // Readonly: alice (the owner) makes bob readonly; his next message is refused in place and his box disabled.
  const owner = await session(alice);
  const member = await session(bob);
  const roomId = await roomOf(alice);
  const role = await rest(owner.accessToken, "PUT", `/api/rooms/${roomId}/members/${member.user.id}`, { role: "readonly" });
  check(role.status === 200, "the owner makes bob readonly", role);
  await bob.fill("#body", "can I still post?");
  await bob.press("#body", "Enter");
  await bob.waitForSelector("li.msg.pending.failed .error");
  await bob.waitForSelector("#body:disabled");
  check((await bob.textContent("#composer-note")).includes("read-only"), "bob is told why");
  await bob.waitForSelector("li.msg.failed [data-act='retry']", { state: "detached" });
  await shot(bob, "readonly.png");
  await bob.reload();
  await bob.waitForSelector(`#room-title:has-text('${room}')`);
  await bob.waitForSelector("#body:disabled");
  check(!(await bodies(alice)).includes("can I still post?"), "nothing from a readonly member reaches the room");

  await alice.click("#rooms button:has-text('general')");
  await alice.waitForSelector("#room-title:has-text('general')");
  await shown(alice, "hi bob, welcome");
  return { seen: await bodies(alice) };
}

async function history(browser) {
  const page = await newPage(browser, { viewport: { width: 1200, height: 800 } });
  await register(page, `reader_${run}`);
  await page.click(`#rooms button:has-text('${HISTORY_ROOM}')`);
  await page.waitForSelector(`#room-title:has-text('${HISTORY_ROOM}')`);
  await shown(page, "seed 119");
  const first = await bodies(page);
  check(first.length === 50 && first[0] === "seed 070" && first[49] === "seed 119", "the newest 50 first", first);

  await page.evaluate(() => (document.getElementById("scroller").scrollTop = 0));
  await shown(page, "seed 020");
  // What was on top stays in view: the older page went above it.
  const kept = await page.evaluate(() => {
    const box = document.getElementById("scroller");
    const li = [...box.querySelectorAll("li.msg")].find((e) => e.textContent.includes("seed 070"));
    const a = box.getBoundingClientRect();
    const b = li.getBoundingClientRect();
    return { top: box.scrollTop, inView: b.bottom > a.top && b.top < a.bottom };
  });
  check(kept.top > 0 && kept.inView, "the reader's place is kept when older messages load", kept);

  await page.evaluate(() => (document.getElementById("scroller").scrollTop = 0));
  await shown(page, "seed 000");
  await page.waitForSelector("#history-note:has-text('beginning')");
  const all = await bodies(page);
  const expected = Array.from({ length: 120 }, (_, i) => `seed ${String(i).padStart(3, "0")}`);
  check(JSON.stringify(all) === JSON.stringify(expected), "all 120, in order, none twice", all);

  const extent = await page.evaluate(() => ({ height: document.documentElement.scrollHeight, inner: window.innerHeight }));
  check(extent.height <= extent.inner, "only the message list scrolls, never the page", extent);
  const days = await page.$$eval("#messages li.day", (els) => els.map((e) => e.textContent));
  check(days.length === 2 && days[1] === "Today" && days[0] !== "Yesterday", "two day separators", days);
  const afterToday = await page.evaluate(() => {
    const sep = [...document.querySelectorAll("#messages li.day")].pop();
    return sep.nextElementSibling.querySelector(".body").textContent;
  });
  check(afterToday === "seed 060", "today starts at the first message sent today", afterToday);

  await page.evaluate(() => [...document.querySelectorAll("#messages li.day")].pop().scrollIntoView({ block: "center" }));
  await shot(page, "history.png");

  // A message while the reader is up in the history: unread until they go down to it.
  const roomId = await roomOf(page);
  const poster = await rest(null, "POST", "/api/auth/register", { username: `poster_${run}`, password: PASSWORD });
  await rest(poster.body.accessToken, "POST", `/api/rooms/${roomId}/join`);
  const sent = await rest(poster.body.accessToken, "POST", "/api/send", { room: roomId, messageBody: "news while you read" });
  check(sent.status === 201, "a new message", sent);
  await page.waitForSelector("#jump:not([hidden])");
  const button = `#rooms button[data-id="${roomId}"]`;
  await page.waitForFunction((sel) => document.querySelector(sel + " .badge")?.textContent === "1", button);
  await page.click("#jump");
  await page.waitForFunction((sel) => !document.querySelector(sel + " .badge"), button);
  const reader = await session(page);
  for (let i = 0; i < 50; i++) {
    const state = await rest(reader.accessToken, "GET", `/api/rooms/${roomId}`);
    if (state.body.lastReadMessageId === sent.body.id) break;
    check(i < 49, "read on the server once seen", state.body);
    await page.waitForTimeout(100);
  }
  return { count: all.length, days };
}

async function reconnect(browser) {
  const alice = await newPage(browser, { viewport: { width: 1100, height: 760 } });
  const bob = await newPage(browser, { viewport: { width: 1100, height: 760 } });
  await register(alice, `alice_${run}`);
  await register(bob, `bob_${run}`);
  await alice.waitForSelector(`#online li:has-text('bob_${run}')`);
  await sendFrom(bob, "before the outage");
  await shown(alice, "before the outage");

  // Alice's network goes away: bob and the REST API go on without her.
  await alice.context().setOffline(true);
  await alice.waitForSelector('#conn[data-state="offline"]');
  await alice.waitForFunction(() => !window.__socket.connected);
  for (const n of [1, 2, 3]) await sendFrom(bob, `missed ${n}`);
  const bobSession = await session(bob);
  const sent = await rest(bobSession.accessToken, "POST", "/api/send", { room: await roomOf(bob), messageBody: "missed 4 (REST)" });
  check(sent.status === 201, "a message over REST", sent);
  await alice.fill("#body", "written while offline");
  await alice.press("#body", "Enter");
  await alice.waitForSelector("li.msg.pending .status:has-text('waiting for the connection')");
  await shot(alice, "offline.png");
  check(!(await bodies(alice)).includes("missed 1"), "nothing arrives while offline");

  await alice.context().setOffline(false);
  await online(alice);
  await shown(alice, "missed 4 (REST)");
  await shown(alice, "written while offline");
  await shown(bob, "written while offline");
  const after = await bodies(alice);
  const expected = ["before the outage", "missed 1", "missed 2", "missed 3", "missed 4 (REST)", "written while offline"];
  const tail = after.slice(after.indexOf("before the outage"));
  check(JSON.stringify(tail) === JSON.stringify(expected), "the missed messages, once and in order", after);
  const onBob = await bodies(bob);
  check(onBob.filter((b) => b === "written while offline").length === 1, "the queued message is stored once", onBob);

  // The server says broadcasts may have been lost (`resync`): the page syncs from its last message.
  await alice.evaluate(() => (window.__drop = ["message"]));
  await sendFrom(bob, "lost 1");
  await sendFrom(bob, "lost 2");
  await alice.waitForTimeout(300);
  check(!(await bodies(alice)).includes("lost 1"), "the broadcasts were really lost");
  await alice.evaluate(() => {
    window.__drop = [];
    window.__socket.onevent({ type: 2, nsp: "/", data: ["resync", { rooms: [document.getElementById("room").dataset.room] }] });
  });
  await shown(alice, "lost 2");
  const synced = await bodies(alice);
  const end = synced.slice(synced.indexOf("written while offline"));
  check(JSON.stringify(end) === JSON.stringify(["written while offline", "lost 1", "lost 2"]), "resync fills the gap once", synced);
  await shot(alice, "reconnect.png");
  return { seen: synced };
}

async function sessionScenario(browser) {
  const page = await newPage(browser, { viewport: { width: 1100, height: 760 } });
  const name = `carol_${run}`;
  await register(page, name);
  await sendFrom(page, "first message");

  await page.reload();
  await online(page);
  check(await page.isHidden("#signin"), "a reload keeps the session");
  check((await page.textContent("#whoami")) === name, "as the same user");
  await shown(page, "first message");

  const refreshes = [];
  page.on("request", (r) => r.url().endsWith("/api/auth/refresh") && refreshes.push(r.url()));

  // 1. The stored access token has expired: REST calls and the socket get 401s; one refresh serves all.
  const s0 = await session(page);
  await setAccessToken(page, expired(s0.accessToken));
  await page.reload();
  await online(page);
  await shown(page, "first message");
  check(refreshes.length === 1, "one refresh after a reload with an expired token", refreshes.length);
  const s1 = await session(page);
  check(s1.refreshToken !== s0.refreshToken && s1.accessToken !== s0.accessToken, "the new pair is kept");

  // 2. A REST call with an expired token (an edit) is refreshed and retried.
  await setAccessToken(page, expired(s1.accessToken));
  await editLast(page, "first message, edited after expiry");
  await shown(page, "first message, edited after expiry");
  check((await page.locator("form.edit").count()) === 0, "the edit went through");
  check(refreshes.length === 2, "one more refresh", refreshes.length);

  // 3. The socket reconnects with an expired token: refused, refreshed, connected.
  const s2 = await session(page);
  await setAccessToken(page, expired(s2.accessToken));
  await page.context().setOffline(true);
  await page.waitForSelector('#conn[data-state="offline"]');
  await page.context().setOffline(false);
  await online(page);
  check(refreshes.length === 3, "the socket's refusal was answered by a refresh", refreshes.length);
  await sendFrom(page, "still here");

  // 4. Log out: the tokens are forgotten here and refused by the server.
  const s3 = await session(page);
  await page.click("#logout");
  await page.waitForSelector("#signin:not([hidden])");
  check((await session(page)) === null, "logout clears the stored session");
  const refused = await rest(s3.accessToken, "GET", "/api/users/me");
  check(refused.status === 401, "the old access token is refused", refused);

  // 5. Signed out elsewhere (the same session logged out from another device): the server drops the
  // socket, the refresh is refused, and the page says so.
  await page.fill("#username", name);
  await page.fill("#password", PASSWORD);
  await page.press("#password", "Enter");
  await online(page);
  await shown(page, "still here");
  const s4 = await session(page);
  const out = await rest(s4.accessToken, "POST", "/api/auth/logout");
  check(out.status === 204, "logged out elsewhere", out);
  await page.waitForSelector("#signin:not([hidden])");
  const reason = await page.textContent("#login-error");
  check(/session has ended/i.test(reason), "the page says why", reason);
  await shot(page, "signed-out.png");
  return { refreshes: refreshes.length };
}

async function phone(browser) {
  const page = await newPage(browser, { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  await page.goto(base + "/demo");
  await page.waitForSelector("#username");
  await shot(page, "phone-signin.png");
  await page.fill("#username", `dana_${run}`);
  await page.fill("#password", PASSWORD);
  await page.click("#register");
  await online(page);
  await page.waitForSelector("#history-note:has-text('general')");
  check(!(await page.evaluate(() => document.getElementById("body").matches(":focus"))), "no keyboard popped up unasked");

  const friend = await rest(null, "POST", "/api/auth/register", { username: `erik_${run}`, password: PASSWORD });
  check(friend.status === 201, "a friend registers", friend);
  const room = await roomOf(page);
  const say = (text) => rest(friend.body.accessToken, "POST", "/api/send", { room, messageBody: text });
  await say("Morning! Are we still on for the launch review at ten?");
  await shown(page, "Morning! Are we still on for the launch review at ten?");
  await sendFrom(page, "Yes, room 4B. I'll bring the numbers.");
  await say("Great. Could you also paste the link to the dashboard? https://example.com/dashboards/launch-review-2026-week-48");
  await sendFrom(page, "Here: https://example.com/dashboards/launch-review-2026-week-48?panel=latency&range=7d");
  await say("Perfect, thanks!");
  await shown(page, "Perfect, thanks!");

  check(!(await page.textContent("#history-note")).includes("No messages"), "the empty-room note goes with the first message");
  const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  check(widths.scroll <= widths.inner, "nothing overflows sideways at phone width", widths);
  check(await page.isHidden("#sidebar"), "the room list is folded away");
  check(await page.isVisible("#rooms-toggle"), "behind a Rooms button");
  check(await page.isHidden("li.msg [data-act='reply']"), "a message's actions are folded away too");
  await shot(page, "phone.png");

  // A message's actions open from its "⋯" button; a thread covers the room and closes back to it.
  const question = byBody(page, "#messages li.msg", "Morning! Are we still on");
  await question.locator("[data-act='more']").click();
  await question.locator("[data-act='reply']").click();
  await page.waitForSelector("#pane:not([hidden]) #reply-body");
  await page.fill("#reply-body", "Yes, ten o'clock sharp.");
  await page.press("#reply-body", "Enter");
  await page.waitForSelector(`#pane-list .body:has-text("ten o'clock sharp")`);
  const paned = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  check(paned.scroll <= paned.inner, "the thread fits the width too", paned);
  await shot(page, "phone-thread.png");
  await page.click("#pane-close");
  await page.waitForSelector("#pane", { state: "hidden" });
  await question.locator(".thread-summary:has-text('1 reply')").waitFor();

  const mine = await session(page);
  const team = await rest(mine.accessToken, "POST", "/api/rooms", { name: `launch-team-${run}`, private: true });
  check(team.status === 201, "a private room", team);
  await page.click("#rooms-toggle");
  await page.waitForSelector("#sidebar", { state: "visible" });
  await page.click("#rooms-refresh");
  await page.waitForSelector(`#rooms button:has-text('launch-team-${run}') .lock`);
  check((await page.getAttribute("#rooms-toggle", "aria-expanded")) === "true", "the toggle says it is open");
  await shot(page, "phone-rooms.png");
  await page.keyboard.press("Escape");
  await page.waitForSelector("#sidebar", { state: "hidden" });
  check((await activeId(page)) === "rooms-toggle", "Escape closes it and returns focus");
  return { widths };
}

// The room list's badges (as text, e.g. "1" or "@1"; null when there is none) of a room or DM button.
function badgeOf(page, selector) {
  return page.$eval(selector, (b) => {
    const badge = b.querySelector(".badge");
    return badge ? { text: badge.textContent, hot: badge.classList.contains("hot") } : null;
  });
}

async function dm(browser) {
  const alice = await newPage(browser, { viewport: { width: 1280, height: 800 } });
  const bob = await newPage(browser, { viewport: { width: 1100, height: 760 } });
  await register(alice, `alice_${run}`);
  await register(bob, `bob_${run}`);
  check((await bob.textContent("#dms")).includes("No conversations yet"), "bob starts with no DMs");

  // Alice finds bob by the start of his name and opens a DM with him.
  await alice.fill("#people-q", `BOB_${run}`.slice(0, 7));
  await alice.click(`#people button[data-name="bob_${run}"]`);
  await alice.waitForSelector(`#room-title:has-text('bob_${run}')`);
  const dmId = await openedRoom(alice);
  await alice.waitForSelector(`#dms button[data-id="${dmId}"][aria-current="true"]:has-text('bob_${run}')`);
  check((await alice.$$(`#rooms button[data-id="${dmId}"]`)).length === 0, "a DM is listed apart from the rooms");
  check((await alice.inputValue("#people-q")) === "", "the search box is emptied");

  // Bob's list shows it at once (room_added), named after alice, without a refresh.
  const bobDm = `#dms button[data-id="${dmId}"]`;
  await bob.waitForSelector(`${bobDm}:has-text('alice_${run}')`);
  check((await badgeOf(bob, bobDm)) === null, "no badge before a message");

  // A message in the DM: bob, in general, gets a notification and the DM a highlighted badge.
  await sendFrom(alice, "psst, a quick question about the launch");
  await bob.waitForFunction((sel) => document.querySelector(sel + " .badge"), bobDm);
  const badge = await badgeOf(bob, bobDm);
  check(badge.text === "1" && badge.hot, "one unread DM message, highlighted", badge);
  check((await bob.getAttribute(bobDm, "aria-label")).includes("1 unread"), "the badge is read out", await bob.getAttribute(bobDm, "aria-label"));
  check(/^\(1\) /.test(await bob.title()), "the tab's title counts it", await bob.title());
  await sendFrom(alice, "are you around?");
  await bob.waitForFunction((sel) => document.querySelector(sel + " .badge").textContent === "2", bobDm);
  await shot(bob, "dm-badge.png");

  // The server counts them too: a second tab of bob's, opened now, shows the badge from the room list.
  const bobToo = await newTab(bob);
  await bobToo.waitForFunction((sel) => document.querySelector(sel + " .badge")?.textContent === "2", bobDm);

  // Bob opens it in his first tab: both messages, and the badge clears (marked read with the
  // socket's `read`), in his other tab too (its `read_receipt`), and alice sees he has read them.
  await bob.click(bobDm);
  await bob.waitForSelector(`#room-title:has-text('alice_${run}')`);
  await shown(bob, "are you around?");
  await bob.waitForFunction((sel) => !document.querySelector(sel + " .badge"), bobDm);
  check(!/^\(\d+\)/.test(await bob.title()), "nothing unread left in the title", await bob.title());
  await bobToo.waitForFunction((sel) => !document.querySelector(sel + " .badge"), bobDm);
  await alice.waitForSelector(`#messages li.msg.mine:last-child .seen:has-text('Seen by bob_${run}')`);
  const state = await rest((await session(bob)).accessToken, "GET", `/api/rooms/${dmId}`);
  check(state.body.unreadCount === 0 && state.body.lastReadMessageId === (await alice.getAttribute("#messages li.msg.mine:last-child", "data-id")), "read on the server", state.body);

  // A plain message in a room bob's socket has not joined comes with no event: the room list, read
  // again (Refresh, or the tab coming back to the front), shows it.
  await bobToo.close(); // it was showing general, so it would have read it
  const general = await rest((await session(alice)).accessToken, "POST", "/api/send", { messageBody: "lunch in general at noon" });
  check(general.status === 201, "alice writes in general", general);
  await bob.click("#rooms-refresh");
  const generalButton = `#rooms button[data-id="${general.body.room}"]`;
  await bob.waitForFunction((sel) => document.querySelector(sel + " .badge")?.textContent === "1", generalButton);
  check(!(await badgeOf(bob, generalButton)).hot, "a plain message: not highlighted");
  await sendFrom(bob, "yes, what's up?");
  await shown(alice, "yes, what's up?");
  // Seen while open: no badge on alice's side for a message she saw arrive.
  await alice.waitForTimeout(500);
  check((await badgeOf(alice, `#dms button[data-id="${dmId}"]`)) === null, "a message seen as it arrives leaves no badge");

  // Opening the same DM again (from bob's side, by name) gives the same room.
  await bob.fill("#people-q", `alice_${run}`);
  await bob.click(`#people button[data-name="alice_${run}"]`);
  await bob.waitForSelector(`#dms button[data-id="${dmId}"][aria-current="true"]`);
  check((await bob.$$("#dms button")).length === 1, "one DM per pair of people");
  await shown(bob, "yes, what's up?");
  await shot(alice, "dm.png");
  return { dm: dmId, seen: await bodies(bob) };
}

async function thread(browser) {
  const alice = await newPage(browser, { viewport: { width: 1280, height: 800 } });
  const bob = await newPage(browser, { viewport: { width: 1280, height: 800 } });
  await register(alice, `alice_${run}`);
  await register(bob, `bob_${run}`);
  const owner = await session(alice);
  const member = await session(bob);

  // Alice makes a room and adds bob: it appears in his list at once (room_added).
  const room = `launch-${run}`;
  await alice.fill("#room-name", room);
  await alice.press("#room-name", "Enter");
  await alice.waitForSelector(`#room-title:has-text('${room}')`);
  const roomId = await openedRoom(alice);
  const added = await rest(owner.accessToken, "PUT", `/api/rooms/${roomId}/members/${member.user.id}`, { role: "member" });
  check(added.status === 200, "alice adds bob", added);
  const bobRoom = `#rooms button[data-id="${roomId}"]`;
  await bob.waitForSelector(bobRoom);

  // A mention: bob, in general, sees the room's badge marked "@".
  await sendFrom(alice, `@bob_${run} can you review the launch plan?`);
  await bob.waitForFunction((sel) => document.querySelector(sel + " .badge.hot"), bobRoom);
  const badge = await badgeOf(bob, bobRoom);
  check(badge.text === "@1", "one unread mention", badge);
  check((await bob.getAttribute(bobRoom, "aria-label")).includes("1 mention"), "read out as a mention");
  // The same from the server's mentionCount, after a reload.
  await bob.reload();
  await online(bob);
  await bob.waitForFunction((sel) => document.querySelector(sel + " .badge.hot")?.textContent === "@1", bobRoom);

  // In the room, the message that names him stands out, his name marked; the badge goes.
  await bob.click(bobRoom);
  await bob.waitForSelector(`#room-title:has-text('${room}')`);
  const mention = byBody(bob, "#messages li.msg.mentioned", "can you review the launch plan?");
  await mention.waitFor();
  check((await mention.locator("mark.at").textContent()) === `@bob_${run}`, "his name is marked");
  await bob.waitForFunction((sel) => !document.querySelector(sel + " .badge"), bobRoom);
  check((await alice.locator("li.msg.mentioned").count()) === 0, "the author's own message is not highlighted for her");

  // Bob answers in a thread.
  await mention.hover();
  await mention.locator('[data-act="reply"]').click();
  await bob.waitForSelector("#pane:not([hidden]) #reply-body:focus");
  check((await bob.textContent("#pane-top")).includes("can you review the launch plan?"), "the thread shows its first message");
  await bob.keyboard.type("On it, comments by noon.");
  await bob.keyboard.press("Enter");
  await bob.waitForSelector("#pane-list li.msg .body:has-text('On it, comments by noon.')");
  // The reply is in the room's timeline too, marked as a reply.
  await bob.waitForSelector("#messages li.msg:has-text('On it, comments by noon.') .thread-link");

  // Alice sees the root's reply count (message_updated) and opens the thread from it.
  const root = byBody(alice, "#messages li.msg", "can you review the launch plan?");
  await root.locator(".thread-summary:has-text('1 reply')").waitFor();
  await root.locator(".thread-summary").click();
  await alice.waitForSelector("#pane-list .body:has-text('On it, comments by noon.')");
  await alice.fill("#reply-body", "Thanks!");
  await alice.press("#reply-body", "Enter");
  await bob.waitForSelector("#pane-list .body:has-text('Thanks!')");
  await alice.waitForSelector("#messages li.msg .thread-summary:has-text('2 replies')");
  await bob.waitForSelector("#pane-top .replies-count:has-text('2 replies')");
  const replies = await bob.$$eval("#pane-list li.msg .body", (els) => els.map((e) => e.textContent));
  check(JSON.stringify(replies) === JSON.stringify(["On it, comments by noon.", "Thanks!"]), "the thread, in order, once each", replies);
  await shot(bob, "thread.png");

  // The thread pages back: 60 more replies over REST, then the pane reopened shows the newest 50 and loads the rest.
  const replyTo = await root.getAttribute("data-id");
  for (let n = 0; n < 60; n++) {
    const sent = await rest(owner.accessToken, "POST", "/api/send", { room: roomId, messageBody: `note ${n}`, replyTo });
    check(sent.status === 201, "a reply over REST", sent);
  }
  await bob.click("#pane-close");
  await bob.waitForSelector("#pane", { state: "hidden" });
  await byBody(bob, "#messages li.msg", "can you review the launch plan?").locator(".thread-summary:has-text('62 replies')").click();
  await bob.waitForSelector("#pane-list .body:has-text('note 59')");
  check((await bob.$$("#pane-list li.msg")).length === 50, "the newest 50 replies first");
  await bob.click("#pane-older");
  await bob.waitForSelector("#pane-older", { state: "hidden" });
  const all = await bob.$$eval("#pane-list li.msg .body", (els) => els.map((e) => e.textContent));
  check(all.length === 62 && all[0] === "On it, comments by noon." && all[61] === "note 59", "then all 62, in order", all);
  return { replies };
}
// The reaction chips of a message: [{emoji, count, mine}].
function chips(message) {
  return message.locator(".reaction").evaluateAll((els) =>
    els.map((e) => ({ emoji: e.dataset.emoji, count: Number(e.querySelector(".count").textContent), mine: e.getAttribute("aria-pressed") === "true" })),
  );
}

async function untilChips(message, expected) {
  const want = JSON.stringify(expected);
  for (let i = 0; i < 100; i++) {
    if (JSON.stringify(await chips(message)) === want) return;
    await message.page().waitForTimeout(100);
  }
  check(false, "reactions become " + want, await chips(message));
}

async function reactions(browser) {
  const alice = await newPage(browser, { viewport: { width: 1280, height: 800 } });
  const bob = await newPage(browser, { viewport: { width: 1280, height: 800 } });
  await register(alice, `alice_${run}`);
  await register(bob, `bob_${run}`);
  const room = `review-${run}`;
  await alice.fill("#room-name", room);
  await alice.press("#room-name", "Enter");
  await alice.waitForSelector(`#room-title:has-text('${room}')`);
  await openedRoom(alice);
  await bob.click("#rooms-refresh");
  await bob.click(`#rooms button:has-text('${room}')`);
  await bob.waitForSelector(`#room-title:has-text('${room}')`);
  await sendFrom(alice, "Ship it on Friday?");
  await shown(bob, "Ship it on Friday?");
  const onAlice = byBody(alice, "#messages li.msg", "Ship it on Friday?");
  const onBob = byBody(bob, "#messages li.msg", "Ship it on Friday?");

  // Bob picks 👍 from the palette; alice's tab shows it (message_updated), as not hers.
  await onBob.hover();
  await onBob.locator('[data-act="react-menu"]').click();
  await bob.waitForSelector(".palette button:focus");
  await onBob.locator('.palette [data-emoji="👍"]').click();
  await untilChips(onBob, [{ emoji: "👍", count: 1, mine: true }]);
  await untilChips(onAlice, [{ emoji: "👍", count: 1, mine: false }]);

  // Alice adds hers by clicking the chip, and a second emoji from the palette by keyboard.
  await onAlice.locator(".reaction").click();
  await untilChips(onBob, [{ emoji: "👍", count: 2, mine: true }]);
  await onAlice.locator('[data-act="react-menu"]').focus();
  await alice.keyboard.press("Enter");
  await alice.waitForSelector(".palette button:focus");
  await alice.keyboard.press("Tab");
  await alice.keyboard.press("Enter");
  await untilChips(onBob, [{ emoji: "👍", count: 2, mine: true }, { emoji: "🎉", count: 1, mine: false }]);

  // Bob takes his 👍 back.
  await onBob.locator('.reaction[data-emoji="👍"]').click();
  await untilChips(onAlice, [{ emoji: "👍", count: 1, mine: true }, { emoji: "🎉", count: 1, mine: true }]);
  await untilChips(onBob, [{ emoji: "👍", count: 1, mine: false }, { emoji: "🎉", count: 1, mine: false }]);
  check((await onBob.locator('.reaction[data-emoji="👍"]').getAttribute("aria-label")).includes("1 reaction"), "a chip reads out its count");

  // Pins: the owner pins; a member has no Pin button but sees the pin and the pins list, kept live.
  check((await onBob.locator('[data-act="pin"]').count()) === 0, "a member cannot pin in a room");
  await onAlice.hover();
  await onAlice.locator('[data-act="pin"]').click();
  await onBob.locator(".meta .pinned").waitFor();
  await bob.click("#pins-open");
  await bob.waitForSelector("#pane:not([hidden]) #pane-list .body:has-text('Ship it on Friday?')");
  check((await bob.textContent("#pane-title")).includes(room), "the pins of this room");
  await shot(bob, "reactions.png");
  await onAlice.hover();
  await onAlice.locator('[data-act="unpin"]').click();
  await bob.waitForSelector("#pane-list li.msg", { state: "detached" });
  await bob.waitForSelector("#pane-note:has-text('Nothing is pinned here yet')");
  check((await onBob.locator(".meta .pinned").count()) === 0, "the mark goes with the pin");
  return { reactions: await chips(onAlice) };
}
// A PNG drawn by the page's canvas: `width` × `height`, a gradient and a title.
async function png(page, width, height, title) {
  const data = await page.evaluate(
    ([w, h, text]) => {
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const g = canvas.getContext("2d");
      const fill = g.createLinearGradient(0, 0, w, h);
      fill.addColorStop(0, "#2156a5");
      fill.addColorStop(1, "#f0a800");
      g.fillStyle = fill;
      g.fillRect(0, 0, w, h);
      g.fillStyle = "#fff";
      g.font = `bold ${Math.round(Math.min(h / 6, w / 12))}px sans-serif`;
      g.fillText(text, w / 12, h / 2);
      return canvas.toDataURL("image/png").split(",")[1];
    },
    [width, height, title],
  );
  return Buffer.from(data, "base64");
}

async function files(browser) {
  const alice = await newPage(browser, { viewport: { width: 1280, height: 860 } });
  const bob = await newPage(browser, { viewport: { width: 1280, height: 860 } });
  await register(alice, `alice_${run}`);
  await register(bob, `bob_${run}`);
  await alice.waitForSelector(`#online li:has-text('bob_${run}')`);

  // Alice attaches an image and a text file: each is uploaded at once and waits as a chip.
  const image = await png(alice, 1280, 800, "Launch mockup v3");
  await alice.setInputFiles("#file", [
    { name: "launch-mockup.png", mimeType: "image/png", buffer: image },
    { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("1. ship\n2. celebrate\n") },
  ]);
  await alice.waitForSelector("#attachments li.draft.ready img");
  await alice.waitForFunction(() => document.querySelectorAll("#attachments li.draft.ready").length === 2);
  await shot(alice, "attach.png");
  await alice.fill("#body", "The mockup, and my notes");
  await alice.press("#body", "Enter");
  await shown(alice, "The mockup, and my notes");
  check((await alice.$$("#attachments li")).length === 0, "the chips go with the message");

  // Bob sees the thumbnail, loaded from its signed URL (no Authorization header on an <img>).
  const message = byBody(bob, "#messages li.msg", "The mockup, and my notes");
  const thumb = message.locator("a.thumb img");
  await thumb.waitFor();
  await bob.waitForFunction((img) => img.complete && img.naturalWidth > 0, await thumb.elementHandle());
  const size = await thumb.evaluate((img) => ({ w: img.naturalWidth, h: img.naturalHeight, alt: img.alt, src: img.getAttribute("src") }));
  check(size.w === 320 && size.h === 200 && size.alt === "launch-mockup.png", "a 320 × 200 thumbnail, named", size);
  check(size.src.startsWith("/api/files/"), "served by this server, same origin", size.src);
  const full = await fetch(base + (await message.locator("a.thumb").getAttribute("href")));
  check(full.status === 200 && full.headers.get("content-type") === "image/png", "its link is the full image, signed", full.status);
  const notes = message.locator("a.file:not(.thumb)");
  check((await notes.textContent()).includes("notes.txt"), "the other file is a link with its name");
  check((await notes.getAttribute("download")) === "notes.txt", "offered for download");
  const text = await fetch(base + (await notes.getAttribute("href")));
  check(text.status === 200 && (await text.text()).includes("celebrate"), "its signed link downloads it", text.status);

  // A file alone is a message too.
  await alice.setInputFiles("#file", { name: "wide.png", mimeType: "image/png", buffer: await png(alice, 900, 300, "Wide") });
  await alice.waitForSelector("#attachments li.draft.ready");
  await alice.press("#body", "Enter");
  await bob.waitForFunction(() => [...document.querySelectorAll("#messages a.thumb img")].some((i) => i.alt === "wide.png" && i.naturalWidth === 320));
  await bob.evaluate(() => (document.getElementById("scroller").scrollTop = 1e6));
  await shot(bob, "files.png");
  return { thumbnail: size };
}

async function searchScenario(browser) {
  const page = await newPage(browser, { viewport: { width: 1280, height: 800 } });
  await register(page, `sam_${run}`);
  const me = await session(page);
  const friend = await rest(null, "POST", "/api/auth/register", { username: `tess_${run}`, password: PASSWORD });
  const general = await roomOf(page);
  const project = await rest(friend.body.accessToken, "POST", "/api/rooms", { name: `budget-${run}` });
  check(project.status === 201, "a room of tess's", project);
  for (const [room, token, text] of [
    [general, friend.body.accessToken, "The quarterly report is ready for review"],
    [general, me.accessToken, "Lunch at the café on Friday?"],
    [project.body.id, friend.body.accessToken, "Report numbers look off in the budget sheet"],
    [general, friend.body.accessToken, "Reporting lines change next month"],
  ]) {
    const sent = await rest(token, "POST", "/api/send", { room, messageBody: text });
    check(sent.status === 201, "seeded", sent);
  }
  await shown(page, "Reporting lines change next month");

  // Every room sam may read: the public budget room too, newest first; "report" matches "Reporting" as a prefix.
  await page.fill("#search-q", "report");
  await page.press("#search-q", "Enter");
  await page.waitForSelector("#pane:not([hidden]) #pane-list li.msg");
  const found = await page.$$eval("#pane-list li.msg .body", (els) => els.map((e) => e.textContent));
  check(
    JSON.stringify(found) === JSON.stringify(["Reporting lines change next month", "Report numbers look off in the budget sheet", "The quarterly report is ready for review"]),
    "three results, newest first",
    found,
  );
  check((await page.textContent("#pane-list li.msg:nth-child(2) .where")).includes(`budget-${run}`), "a result names its room");
  await shot(page, "search.png");

  // Accents do not matter; "This room" narrows it.
  await page.fill("#search-q", "CAFE");
  await page.press("#search-q", "Enter");
  await page.waitForSelector("#pane-list .body:has-text('Lunch at the café on Friday?')");
  await page.check("#search-here");
  await page.fill("#search-q", "report");
  await page.press("#search-q", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#pane-list li.msg").length === 2);
  check((await page.textContent("#pane-note")).includes("in this room"), "the note says where");
  await page.uncheck("#search-here");

  // Nothing to search for: the server's reason is shown.
  await page.fill("#search-q", "?!");
  await page.press("#search-q", "Enter");
  await page.waitForSelector("#pane-note:has-text('Couldn')");

  // A result opens in its room, the message marked.
  await page.fill("#search-q", "budget sheet");
  await page.press("#search-q", "Enter");
  await page.click("#pane-list li.msg [data-act='open']");
  await page.waitForSelector(`#room-title:has-text('budget-${run}')`);
  await page.waitForSelector("#messages li.msg.flash:has-text('Report numbers look off')");
  check(await page.isHidden("#pane"), "the panel closes");
  return { found };
}

const SCENARIOS = { chat, history, reconnect, session: sessionScenario, phone, dm, thread, reactions, files, search: searchScenario };

(async () => {
  const browser = await chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    const result = await SCENARIOS[SCENARIO](browser);
    console.log(JSON.stringify({ ok: true, scenario: SCENARIO, ...result, screenshots, ...problems }));
  } catch (err) {
    // What each page showed when the check failed.
    for (const [i, page] of pages.entries()) await shot(page, `failed-${SCENARIO}-${i}.png`).catch(() => {});
    throw err;
  } finally {
    await browser.close();
  }
})().catch((err) => {
  console.log(JSON.stringify({ ok: false, scenario: SCENARIO, error: String((err && err.stack) || err), screenshots, ...problems }));
  process.exit(1);
});

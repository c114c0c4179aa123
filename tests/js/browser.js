// Two headless Chromium pages (Debian's chromium, driven by playwright-core) chat through /demo.
// URL, SCREENSHOT and CHROMIUM come from the environment; prints one JSON line.
const { chromium } = require("playwright-core");

const { URL: url, SCREENSHOT: screenshot, CHROMIUM: executablePath = "/usr/bin/chromium" } = process.env;
const run = Math.random().toString(36).slice(2, 8);

async function signIn(browser, name) {
  const page = await browser.newPage();
  await page.goto(url + "/demo");
  await page.fill("#username", name);
  await page.fill("#password", "browser-password-1");
  await page.click("#register");
  await page.waitForSelector("#room-title:has-text('general')");
  return page;
}

(async () => {
  const browser = await chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    const alice = await signIn(browser, `alice_${run}`);
    const bob = await signIn(browser, `bob_${run}`);
    await alice.waitForSelector(`#online li:has-text('bob_${run}')`);
    await bob.fill("#body", "hello from bob's tab");
    await alice.waitForSelector("#typing:has-text('typing')");
    await bob.click("#send button");
    await alice.waitForSelector("#messages li:has-text(\"hello from bob's tab\")");
    const seen = await alice.locator("#messages li").last().innerText();
    await alice.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ ok: true, seen }));
  } finally {
    await browser.close();
  }
})().catch((err) => {
  console.log(JSON.stringify({ ok: false, error: String((err && err.message) || err) }));
  process.exit(1);
});

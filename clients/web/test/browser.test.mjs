// The demo page in Debian's Chromium (playwright-core, headless), against a
// real stack started by tests/integration/74-web-browser.sh: alice and bob
// in two browser contexts on two gateways exchange messages; ticks turn
// blue when bob reads; the typing indicator shows; a reload keeps history;
// a gateway restart mid-chat loses nothing and doubles nothing. Screenshots
// go to $PARLEY_WEB_ARTEFACTS.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";
import { closeAll, connected, env, killGateway, restartGateway } from "./helpers.mjs";

const shots = env("PARLEY_WEB_ARTEFACTS");
mkdirSync(shots, { recursive: true });
const page1 = `http://127.0.0.1:${env("GW_PORT_1")}/`;
const page2 = `http://127.0.0.1:${env("GW_PORT_2")}/`;
const room = "dm:alice:bob";
const T = 20000;

let browser, alice, bob;

async function signIn(url, user) {
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 640 } });
  const page = await ctx.newPage();
  page.on("pageerror", (err) => console.log(`# ${user} page error: ${err}`));
  await page.goto(url);
  await page.fill("#signin-form input[name=user]", user);
  await page.click("#signin-form button");
  await page.waitForSelector('#conn[data-status="open"]', { timeout: T });
  return page;
}

const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png` });

async function send(page, body) {
  await page.fill("#composer input[name=body]", body);
  await page.click("#send");
}

/** The bodies shown in the open conversation, in order. */
const bodies = (page) =>
  page.$$eval("#msg-list .msg .body", (els) => els.map((e) => e.textContent));

/** Wait until the open conversation shows every body of want. */
async function shows(page, want) {
  await page.waitForFunction(
    (w) => {
      const have = [...document.querySelectorAll("#msg-list .msg .body")].map((e) => e.textContent);
      return w.every((b) => have.includes(b));
    },
    want,
    { timeout: T },
  );
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.PARLEY_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-default-apps",
      "--disable-sync",
      "--no-first-run",
      "--disable-dev-shm-usage",
    ],
  });
  alice = await signIn(page1, "alice");
  bob = await signIn(page2, "bob");
});

after(async () => {
  closeAll();
  await browser?.close();
});

test("alice writes to bob: ✓ then ✓✓, unread badge and presence dot at bob's", async () => {
  await alice.fill("#new-chat input[name=peer]", "bob");
  await alice.click("#new-chat button");
  await alice.waitForSelector("#composer:not([hidden])");
  await send(alice, "hello bob");
  await shows(alice, ["hello bob"]);
  // bob is online, so his SDK confirms delivery: ✓✓ (grey).
  await alice.waitForSelector(".msg.mine .ticks.delivered", { timeout: T });
  await bob.waitForSelector(`#rooms li[data-room="${room}"] .badge:text("1")`, { timeout: T });
  await alice.waitForSelector(`#rooms li[data-room="${room}"] .dot.online`, { timeout: T });
  await shot(alice, "01-alice-sent-delivered");
  await shot(bob, "02-bob-unread-badge");
});

test("bob reads: alice's ticks turn blue", async () => {
  await bob.click(`#rooms li[data-room="${room}"]`);
  await shows(bob, ["hello bob"]);
  await alice.waitForSelector(".msg.mine .ticks.read", { timeout: T });
  const color = await alice.$eval(".msg.mine .ticks.read", (e) => getComputedStyle(e).color);
  assert.equal(color, "rgb(47, 127, 224)", "read ticks are blue");
  await shot(alice, "03-alice-read-blue");
});

test("the typing indicator shows while bob types", async () => {
  await bob.type("#composer input[name=body]", "hi al", { delay: 30 });
  await alice.waitForFunction(
    () => document.querySelector("#typing")?.textContent?.includes("bob is typing"),
    null,
    { timeout: T },
  );
  await shot(alice, "04-alice-sees-typing");
  await bob.fill("#composer input[name=body]", "hi alice");
  await bob.click("#send");
  await shows(alice, ["hi alice"]);
});

test("a reload keeps the history", async () => {
  await bob.reload();
  await bob.waitForSelector('#conn[data-status="open"]', { timeout: T });
  await shows(bob, ["hello bob", "hi alice"]);
  await bob.waitForSelector(`#rooms li[data-room="${room}"] .dot.online`, { timeout: T });
  await shot(bob, "05-bob-after-reload");
});

test("gateway 1 restarted mid-chat: nothing lost, nothing doubled", async () => {
  killGateway(1);
  await alice.waitForSelector('#conn[data-status="reconnecting"]', { timeout: T });
  // alice types on while her gateway is down; bob writes too.
  for (const b of ["while down 1", "while down 2", "while down 3"]) await send(alice, b);
  await send(bob, "bob while alice is away");
  await alice.waitForSelector(".msg.mine .ticks.pending", { timeout: T });
  await shot(alice, "06-alice-gateway-down");
  await restartGateway(1);
  await alice.waitForSelector('#conn[data-status="open"]', { timeout: 40000 });
  const all = ["hello bob", "hi alice", "while down 1", "while down 2", "while down 3", "bob while alice is away"];
  await shows(alice, all);
  await shows(bob, all);
  await alice.waitForFunction(() => !document.querySelector(".msg.mine .ticks.pending"), null, { timeout: T });
  await shot(alice, "07-alice-after-restart");
  await shot(bob, "08-bob-after-restart");
  for (const p of [alice, bob]) {
    const have = await bodies(p);
    assert.equal(have.length, all.length, `each message once: ${JSON.stringify(have)}`);
    const seqs = await p.$$eval("#msg-list .msg", (els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6].slice(0, seqs.length));
  }
  // A reload of alice shows the same six from the server, once each.
  await alice.reload();
  await alice.waitForSelector('#conn[data-status="open"]', { timeout: T });
  await shows(alice, all);
  assert.equal((await bodies(alice)).length, all.length);
});

test("a group: create it, add people, talk", async () => {
  await alice.click("#new-group summary");
  await alice.fill("#new-group-form input[name=name]", "team");
  await alice.fill("#new-group-form input[name=members]", "bob");
  await alice.click("#new-group-form button");
  await alice.waitForSelector("#add-people:not([hidden])", { timeout: T });
  await alice.fill("#add-people input[name=users]", "carol");
  await alice.click("#add-people button");
  await send(alice, "welcome to the team");
  await shows(alice, ["welcome to the team"]);
  await bob.waitForSelector('#rooms li:has(.name:text("team"))', { timeout: T });
  await bob.click('#rooms li:has(.name:text("team"))');
  await shows(bob, ["welcome to the team"]);
  await shot(bob, "09-bob-in-group");
});

test("the same conversation with one side forced onto the fallback transport (SSE + POST)", async (t) => {
  const probe = await fetch(`${page2}v1/events`).catch(() => null);
  if (!probe || probe.status === 404)
    return t.skip("this gateway has no fallback transport (GET /v1/events is 404)");
  await probe.body?.cancel();
  const erin = await signIn(page1, "erin");
  const frank = await signIn(`${page2}?transport=sse`, "frank");
  assert.equal(await frank.getAttribute("#conn", "data-transport"), "sse");
  const droom = "dm:erin:frank";
  await erin.fill("#new-chat input[name=peer]", "frank");
  await erin.click("#new-chat button");
  await send(erin, "hello frank");
  await erin.waitForSelector(".msg.mine .ticks.delivered, .msg.mine .ticks.read", { timeout: T });
  await frank.waitForSelector(`#rooms li[data-room="${droom}"] .badge:text("1")`, { timeout: T });
  await frank.click(`#rooms li[data-room="${droom}"]`);
  await shows(frank, ["hello frank"]);
  await erin.waitForSelector(".msg.mine .ticks.read", { timeout: T });
  await frank.type("#composer input[name=body]", "hi er", { delay: 30 });
  await erin.waitForFunction(
    () => document.querySelector("#typing")?.textContent?.includes("frank is typing"),
    null,
    { timeout: T },
  );
  await frank.fill("#composer input[name=body]", "hi erin");
  await frank.click("#send");
  await shows(erin, ["hi erin"]);
  await shot(frank, "10-frank-on-sse");
  // frank's gateway restarts mid-chat.
  killGateway(2);
  await frank.waitForSelector('#conn[data-status="reconnecting"]', { timeout: T });
  await send(frank, "frank while down");
  await send(erin, "erin while frank is away");
  await restartGateway(2);
  await frank.waitForSelector('#conn[data-status="open"][data-transport="sse"]', { timeout: 40000 });
  const all = ["hello frank", "hi erin", "frank while down", "erin while frank is away"];
  await shows(frank, all);
  await shows(erin, all);
  await frank.reload();
  await frank.waitForSelector('#conn[data-status="open"][data-transport="sse"]', { timeout: T });
  await shows(frank, all);
  await frank.waitForSelector(`#rooms li[data-room="${droom}"] .dot.online`, { timeout: T });
  for (const p of [erin, frank]) assert.equal((await bodies(p)).length, all.length, "each once");
  await shot(frank, "11-frank-on-sse-after-restart");
});

test("scrolling back loads older history", async () => {
  // carol wrote 35 messages to gina before gina ever signed in.
  const carol = await connected("carol", [`ws://127.0.0.1:${env("GW_PORT_2")}/`]);
  const acks = [];
  for (let i = 1; i <= 35; i++) acks.push(carol.send("dm:carol:gina", `old ${i}`).acked);
  await Promise.all(acks);
  carol.close();
  const gina = await signIn(page1, "gina");
  // The store follows the log: wait until the room list has all 35.
  await gina.waitForSelector('#rooms li[data-room="dm:carol:gina"] .badge:text("35")', { timeout: T });
  await gina.click('#rooms li[data-room="dm:carol:gina"]');
  await shows(gina, ["old 35", "old 6"]);
  assert.equal((await bodies(gina)).length, 30, "the first page is the newest 30");
  await shot(gina, "12-gina-first-page");
  // Scrolling to the top loads the page before.
  await gina.$eval("#messages", (box) => {
    box.scrollTop = 0;
    box.dispatchEvent(new Event("scroll"));
  });
  await shows(gina, ["old 1", "old 5"]);
  assert.equal((await bodies(gina)).length, 35);
  await shot(gina, "13-gina-history-scrolled-back");
});

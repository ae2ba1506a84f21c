// sharedstream in node: RecentEvents alone, then three "tabs" (three
// SharedEventSources in one process) over node's own BroadcastChannel,
// with Web Locks and EventSource stood in for by small fakes here. The
// browser test (api/browser_tabs_test.go) runs the real thing in chromium.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RecentEvents, SharedEventSource } from "roomcast-client-ts/sharedstream";

/** @param {string} id */
const ev = (id) => ({ type: "message", data: `data of ${id}`, id });

test("RecentEvents drops what it has seen and replays what followed an id", () => {
  const r = new RecentEvents(3);
  r.begin("c0");
  assert.deepEqual(r.after("c0"), { found: true, events: [] });
  assert.equal(r.add(ev("c1")), true);
  assert.equal(r.add(ev("c2")), true);
  assert.equal(r.add(ev("c1")), false, "an id seen is dropped");
  assert.equal(r.last(), "c2");
  assert.deepEqual(r.after("c0").events.map((e) => e.id), ["c1", "c2"]);
  assert.deepEqual(r.after("c1").events.map((e) => e.id), ["c2"]);
  assert.deepEqual(r.after("elsewhere"), { found: false, events: [] });
  r.add(ev("c3"));
  r.add(ev("c4")); // c1 is forgotten: the oldest beyond the limit
  assert.equal(r.has("c1"), false);
  assert.equal(r.start, "c1", "what is kept follows c1");
  assert.deepEqual(r.after("c1").events.map((e) => e.id), ["c2", "c3", "c4"]);
  assert.equal(r.after("c0").found, false);
});

/** FakeEventSource records the sources opened; a test plays the server. */
class FakeEventSource extends EventTarget {
  /** @type {FakeEventSource[]} */
  static opened = [];
  /** @param {string} url */
  constructor(url) {
    super();
    this.url = url;
    this.readyState = 0;
    this.lastEventId = "";
    this.closed = false;
    FakeEventSource.opened.push(this);
  }
  open() {
    this.readyState = 1;
    this.dispatchEvent(new Event("open"));
  }
  /** @param {string} type @param {string} data @param {string} [id] */
  emit(type, data, id) {
    if (id) this.lastEventId = id;
    this.dispatchEvent(new MessageEvent(type, { data, lastEventId: this.lastEventId }));
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
}

/** FakeLocks grants each lock to one holder at a time, in the order asked. */
class FakeLocks {
  constructor() {
    /** @type {Map<string, {cb: () => Promise<unknown> | unknown, resolve: (v: unknown) => void, signal?: AbortSignal}[]>} */
    this.queues = new Map();
  }
  /**
   * @param {string} name
   * @param {{signal?: AbortSignal}} options
   * @param {() => Promise<unknown> | unknown} cb
   */
  request(name, options, cb) {
    return new Promise((resolve, reject) => {
      const queue = this.queues.get(name) || [];
      this.queues.set(name, queue);
      const entry = { cb, resolve, signal: options.signal };
      options.signal?.addEventListener("abort", () => {
        const i = queue.indexOf(entry);
        if (i > 0) {
          queue.splice(i, 1);
          reject(new Error("AbortError"));
        }
      });
      queue.push(entry);
      if (queue.length === 1) this.grant(name);
    });
  }
  /** @param {string} name */
  async grant(name) {
    const queue = this.queues.get(name) || [];
    const entry = queue[0];
    if (!entry) return;
    await Promise.resolve();
    const result = await entry.cb();
    queue.shift();
    entry.resolve(result);
    this.grant(name);
  }
}

/**
 * until resolves once cond holds, checking after every turn of the event
 * loop; it fails after 5 s.
 * @param {string} what @param {() => boolean} cond
 */
async function until(what, cond) {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A tab: its SharedEventSource and the messages it delivered. */
function tab(lastEventId = "") {
  const s = new SharedEventSource("/stream?rooms=a,b&user=ada",
    { name: "test-stream", events: ["reset"], lastEventId: lastEventId || null });
  /** @type {string[]} */
  const got = [];
  s.addEventListener("message", (e) => got.push(/** @type {MessageEvent} */ (e).lastEventId));
  return { s, got };
}

test("three tabs share one stream; when the leader closes another resumes from its last id", async () => {
  const g = /** @type {any} */ (globalThis);
  g.EventSource = FakeEventSource;
  Object.defineProperty(globalThis, "navigator", { value: { locks: new FakeLocks() }, configurable: true });

  const a = tab(), b = tab(), c = tab();
  await until("a leader", () => FakeEventSource.opened.length === 1);
  assert.equal(a.s.leader, true, "the first tab leads");
  const first = FakeEventSource.opened[0];
  assert.equal(first.url, "/stream?rooms=a,b&user=ada", "no cursor: the stream starts live");
  first.open();
  await until("every tab open", () => [a, b, c].every((t) => t.s.readyState === 1));
  first.emit("message", "m1", "c1");
  first.emit("message", "m2", "c2");
  await until("c2 everywhere", () => [a, b, c].every((t) => t.got.length === 2));

  a.s.close();
  assert.equal(first.closed, true);
  await until("a new leader", () => FakeEventSource.opened.length === 2);
  const second = FakeEventSource.opened[1];
  const [lead, follow] = b.s.leader ? [b, c] : [c, b];
  assert.equal(second.url, "/stream?rooms=a,b&user=ada&last_event_id=c2", "it resumes from the last id it saw");
  second.open();
  // The server may send again what the old leader relayed late: each tab drops it.
  second.emit("message", "m2", "c2");
  second.emit("message", "m3", "c3");
  await until("c3 in both tabs", () => lead.got.length === 3 && follow.got.length === 3);
  assert.deepEqual(lead.got, ["c1", "c2", "c3"]);
  assert.deepEqual(follow.got, ["c1", "c2", "c3"]);
  assert.equal(follow.s.readyState, 1, "the stream stayed open for the follower");

  // A tab that joins with the cursor of an event the others still keep
  // is stitched to it; one with a cursor they do not know is not.
  const d = tab("c2"), e = tab("elsewhere");
  await until("d and e open", () => d.s.readyState === 1 && e.s.readyState === 1);
  assert.deepEqual(d.got, ["c3"], "d gets what followed its cursor");
  assert.equal(d.s.resumed, true);
  assert.deepEqual(e.got, []);
  assert.equal(e.s.resumed, false, "e must load what it missed from history");
  second.emit("message", "m4", "c4");
  await until("c4 in every tab", () => [lead, follow, d, e].every((t) => t.got.at(-1) === "c4"));
  assert.equal(FakeEventSource.opened.length, 2, "one stream at a time");
  for (const t of [b, c, d, e]) t.s.close();
});

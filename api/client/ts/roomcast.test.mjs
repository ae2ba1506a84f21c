// The TypeScript types in schema.d.ts (generated from openapi.yaml by
// openapi-typescript) used with openapi-fetch against a real roomcast on a
// real redis-server, both started here on free loopback ports. tsc checks
// this file against the types (tsconfig.json: checkJs).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import createClient from "openapi-fetch";

/** @typedef {import("./schema.js").paths} paths */
/** @typedef {import("./schema.js").components["schemas"]["Message"]} Message */

const repo = new URL("../../../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "roomcast-ts-"));
/** @type {import("node:child_process").ChildProcess[]} */
const processes = [];
/** @type {import("openapi-fetch").Client<paths>} */
let api;

/**
 * A free loopback port: listen on port 0 and give it back.
 * @returns {Promise<number>}
 */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/**
 * Resolves once something accepts TCP connections on port.
 * @param {number} port
 */
async function awaitListening(port, deadlineMs = 10_000) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = connect(port, "127.0.0.1", () => { c.end(); resolve(true); });
      c.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${port} after ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 20)); // poll interval
  }
}

/**
 * Starts roomcast and resolves with the address from its "listening" log line.
 * @param {string} bin
 * @param {Record<string, string>} env
 * @returns {Promise<string>}
 */
function startRoomcast(bin, env) {
  const proc = spawn(bin, [], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  processes.push(proc);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("roomcast did not start within 30 s")), 30_000);
    proc.on("exit", (code) => reject(new Error(`roomcast exited with ${code}`)));
    for (const stream of [proc.stdout, proc.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on("line", (line) => {
        try {
          const entry = JSON.parse(line);
          if (entry.msg === "roomcast listening") {
            clearTimeout(timer);
            resolve(entry.addr);
          }
        } catch { /* not a log line of ours */ }
      });
    }
  });
}

before(async () => {
  const bin = join(dir, "roomcast");
  execFileSync("go", ["build", "-o", bin, "."], { cwd: repo, stdio: "inherit" });
  const redisPort = await freePort();
  const redis = spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" });
  processes.push(redis);
  await awaitListening(redisPort);
  const addr = await startRoomcast(bin, {
    ADDR: "127.0.0.1:0",
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    LOG_FORMAT: "json",
    KEY_PREFIX: "ts-test:",
  });
  api = createClient({ baseUrl: `http://${addr}` });
});

after(async () => {
  for (const proc of processes.reverse()) {
    if (proc.exitCode !== null) continue;
    const exited = new Promise((resolve) => proc.on("exit", resolve));
    proc.kill("SIGTERM");
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

test("post, retry with the same Idempotency-Key, page history back", async () => {
  const room = "ts-history";
  /** @type {Message[]} */
  const posted = [];
  for (let i = 0; i < 5; i++) {
    const { data, error, response } = await api.POST("/rooms/{room}/messages", {
      params: { path: { room }, header: { "Idempotency-Key": `ts-key-${i}` } },
      body: { text: `message ${i}\nwith a second line`, user: "ada" },
    });
    assert.equal(error, undefined);
    assert.equal(response.status, 201);
    assert.ok(data);
    assert.equal(data.seq, i + 1);
    assert.equal(data.room, room);
    assert.equal(data.text, `message ${i}\nwith a second line`);
    posted.push(data);
  }

  const replay = await api.POST("/rooms/{room}/messages", {
    params: { path: { room }, header: { "Idempotency-Key": "ts-key-0" } },
    body: { text: "message 0\nwith a second line", user: "ada" },
  });
  assert.equal(replay.response.status, 201);
  assert.equal(replay.response.headers.get("Idempotent-Replayed"), "true");
  assert.deepEqual(replay.data, posted[0]);

  /** @type {Message[]} */
  const read = [];
  /** @type {string | undefined} */
  let before;
  for (;;) {
    const { data, error } = await api.GET("/rooms/{room}/messages", {
      params: { path: { room }, query: { limit: 2, before } },
    });
    assert.equal(error, undefined);
    assert.ok(data);
    read.unshift(...data.messages);
    if (!data.has_more) break;
    before = data.messages[0].id;
  }
  assert.deepEqual(read, posted);

  const caughtUp = await api.GET("/rooms/{room}/messages", {
    params: { path: { room }, query: { after: posted[2].id } },
  });
  assert.deepEqual(caughtUp.data?.messages, posted.slice(3));
  assert.equal(caughtUp.data?.reset, undefined);
});

test("errors are typed problem details", async () => {
  const cases = [
    {
      name: "empty text",
      call: () => api.POST("/rooms/{room}/messages", { params: { path: { room: "ts-errors" } }, body: { text: "" } }),
      status: 400, type: "urn:roomcast:problem:invalid-body",
    },
    {
      name: "bad room id",
      call: () => api.POST("/rooms/{room}/messages", { params: { path: { room: "a*b" } }, body: { text: "x" } }),
      status: 400, type: "urn:roomcast:problem:invalid-room",
    },
    {
      name: "bad cursor",
      call: () => api.GET("/rooms/{room}/messages", { params: { path: { room: "ts-errors" }, query: { before: "x" } } }),
      status: 400, type: "urn:roomcast:problem:invalid-cursor",
    },
    {
      name: "idempotency conflict",
      call: async () => {
        const params = { path: { room: "ts-errors" }, header: { "Idempotency-Key": "ts-conflict" } };
        await api.POST("/rooms/{room}/messages", { params, body: { text: "first" } });
        return api.POST("/rooms/{room}/messages", { params, body: { text: "other" } });
      },
      status: 422, type: "urn:roomcast:problem:idempotency-conflict",
    },
  ];
  for (const tc of cases) {
    const { data, error, response } = await tc.call();
    assert.equal(data, undefined, tc.name);
    assert.equal(response.status, tc.status, tc.name);
    assert.equal(response.headers.get("Content-Type"), "application/problem+json", tc.name);
    assert.ok(error, tc.name);
    assert.equal(error.type, tc.type, tc.name);
    assert.equal(error.status, tc.status, tc.name);
  }
  const history = await api.GET("/rooms/{room}/messages", { params: { path: { room: "ts-errors" } } });
  assert.deepEqual(history.data?.messages.map((m) => m.text), ["first"], "a refused post stored something");
});

test("read markers: PUT /rooms/{room}/read and unread badges from GET /me/rooms", async () => {
  const room = "ts-reads";
  /** @type {Message[]} */
  const posted = [];
  for (let i = 0; i < 3; i++) {
    const { data } = await api.POST("/rooms/{room}/messages", { params: { path: { room } }, body: { text: `m${i}`, user: "ada" } });
    assert.ok(data);
    posted.push(data);
  }
  const mark = await api.PUT("/rooms/{room}/read", { params: { path: { room } }, body: { id: posted[0].id, user: "bo" } });
  assert.equal(mark.response.status, 200);
  assert.deepEqual(mark.data, { room, last_read: posted[0].id, unread: 2 });

  const mine = await api.GET("/me/rooms", { params: { query: { user: "bo" } } });
  assert.equal(mine.error, undefined);
  assert.deepEqual(mine.data?.rooms.map((r) => [r.room, r.last_read, r.unread, r.last_message?.id]),
    [[room, posted[0].id, 2, posted[2].id]]);

  const missing = await api.PUT("/rooms/{room}/read", { params: { path: { room: "ts-reads-empty" } }, body: { id: posted[0].id } });
  assert.equal(missing.response.status, 404);
  assert.equal(missing.error?.type, "urn:roomcast:problem:not-found");
});

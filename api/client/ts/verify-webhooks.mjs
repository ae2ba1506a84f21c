// Verifies webhook requests with the standardwebhooks package, as a
// receiver would. Go tests run it: standard input is one JSON object a
// line, {"secret", "id", "timestamp", "signature", "body"}; it prints how
// many it verified and exits 1 at the first that does not verify.
import { createInterface } from "node:readline";
import { Webhook } from "standardwebhooks";

/** @type {Map<string, Webhook>} */
const verifiers = new Map();
let verified = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "") continue;
  /** @type {{secret: string, id: string, timestamp: string, signature: string, body: string}} */
  const r = JSON.parse(line);
  let wh = verifiers.get(r.secret);
  if (!wh) {
    wh = new Webhook(r.secret);
    verifiers.set(r.secret, wh);
  }
  try {
    wh.verify(r.body, { "webhook-id": r.id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature });
  } catch (e) {
    console.error(`webhook ${r.id} does not verify: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  }
  verified++;
}
console.log(`verified ${verified}`);

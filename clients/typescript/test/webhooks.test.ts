// A webhook receiver in Node.js: it verifies usersd's signatures with the
// standardwebhooks package, as a receiver in production would.
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { after, before, test } from "node:test";

import createClient from "openapi-fetch";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

import type { paths } from "../src/gen/openapi/users-v2.js";
import { startUsersd, type Usersd } from "./usersd.js";

interface Delivery {
  body: string;
  headers: Record<string, string>;
}

/** A user event as usersd POSTs it (docs/events.md). */
interface EventPayload {
  type: string;
  id: string;
  data: { userId: string; tenant: string; user: { id: string; email: string } | null };
}

let usersd: Usersd;
let receiver: Server;
let receiverURL = "";
let secret = "";
const received: Delivery[] = [];
const verified: EventPayload[] = [];
const rejected: string[] = [];

function flatten(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (typeof v === "string") out[k] = v;
  }
  return out;
}

before(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const delivery = { body: Buffer.concat(chunks).toString("utf8"), headers: flatten(req.headers) };
      received.push(delivery);
      try {
        // verify checks the signature and that webhook-timestamp is recent.
        verified.push(new Webhook(secret).verify(delivery.body, delivery.headers) as EventPayload);
        res.writeHead(204).end();
      } catch (e) {
        rejected.push(String(e));
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const addr = receiver.address();
  assert.ok(addr && typeof addr === "object");
  receiverURL = `http://127.0.0.1:${addr.port}/hooks/usersd`;
  usersd = await startUsersd(["--webhook-allow-private"]);
});

after(async () => {
  await usersd?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
});

test("a Node.js receiver verifies usersd's webhook signatures with standardwebhooks", async () => {
  const client = createClient<paths>({ baseUrl: usersd.http });
  const sub = await client.POST("/v2/webhooks", { body: { url: receiverURL, eventTypes: ["user.created"], enabled: true } });
  assert.equal(sub.response.status, 201, JSON.stringify(sub.error));
  assert.match(sub.data?.secret ?? "", /^whsec_/);
  secret = sub.data?.secret ?? "";

  const email = `hooked-${Date.now().toString(36)}@example.com`;
  const created = await client.POST("/v2/users", { body: { email, displayName: "Hooked" } });
  assert.equal(created.response.status, 201, JSON.stringify(created.error));

  const deadline = Date.now() + 30_000;
  while (!verified.some((p) => p.data.user?.email === email)) {
    assert.ok(Date.now() < deadline, `no verified delivery within 30 s; received ${received.length}, rejected: ${rejected.join("; ")}\n${usersd.output().split("\n").filter((l) => !l.includes("dispatch_webhooks")).join("\n").slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(rejected, [], "every delivery verifies");
  const event = verified.find((p) => p.data.user?.email === email);
  const d = received.find((r) => r.body.includes(email));
  assert.ok(event && d);
  assert.equal(event.type, "user.created");
  assert.equal(`tenants/${event.data.tenant}/users/${event.data.userId}`, created.data?.name);
  assert.equal(event.id, d.headers["webhook-id"], "webhook-id is the event id");

  // The same library refuses what usersd did not sign.
  assert.throws(() => new Webhook(secret).verify(d.body.replace("Hooked", "Hacked"), d.headers), WebhookVerificationError);
  const other = "whsec_" + Buffer.from("another secret of 32 bytes......").toString("base64");
  assert.throws(() => new Webhook(other).verify(d.body, d.headers), WebhookVerificationError);
});

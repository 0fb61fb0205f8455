// The HTTP/JSON API through a client that openapi-typescript and
// openapi-fetch made from the OpenAPI 3.1 document usersd serves at
// /openapi/v2.json (src/gen/openapi/users-v2.ts; make generate-clients).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import createClient from "openapi-fetch";

import type { components, paths } from "../src/gen/openapi/users-v2.js";
import { startUsersd, type Usersd } from "./usersd.js";

type User = components["schemas"]["User"];

let usersd: Usersd;
let client: ReturnType<typeof createClient<paths>>;

before(async () => {
  usersd = await startUsersd();
  client = createClient<paths>({ baseUrl: usersd.http });
});

after(async () => {
  await usersd?.stop();
});

/** The user's id: the last segment of its resource name, tenants/{tenant}/users/{user}. */
function idOf(u: User | undefined): string {
  const id = u?.name?.split("/").at(-1);
  assert.ok(id, `no id in ${JSON.stringify(u)}`);
  return id;
}

test("the types are those openapi-typescript makes from the served description", async () => {
  const served = await (await fetch(`${usersd.http}/openapi/v2.json`)).json();
  const committed = JSON.parse(readFileSync(new URL("../../../../api/users/v2/users.openapi.json", import.meta.url), "utf8"));
  assert.equal(served.openapi, "3.1.0");
  assert.notEqual(served.info.version, committed.info.version, "the server fills in its version");
  served.info.version = committed.info.version;
  assert.deepEqual(served, committed);

  // openapi-typescript, run on the served URL, writes the types this
  // client is compiled with.
  const dir = mkdtempSync(join(tmpdir(), "usersd-openapi-"));
  try {
    const out = join(dir, "users-v2.ts");
    execFileSync("node_modules/.bin/openapi-typescript", [`${usersd.http}/openapi/v2.json`, "-o", out], { stdio: "pipe" });
    const fromServer = readFileSync(out, "utf8");
    const compiledWith = readFileSync(new URL("../../src/gen/openapi/users-v2.ts", import.meta.url), "utf8");
    assert.equal(fromServer, compiledWith, "types from the served description differ from src/gen/openapi/users-v2.ts");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("scenario: create, get, list, update, delete, undelete, errors, import", async () => {
  const run = Date.now().toString(36);

  // Create with an idempotency key; replaying it returns the same user.
  const key = `ts-http-${run}`;
  const body = { email: `ada-${run}@example.com`, displayName: "Ada Lovelace", labels: { client: "typescript" } };
  const created = await client.POST("/v2/users", { body, params: { header: { "Idempotency-Key": key } } });
  assert.equal(created.response.status, 201, JSON.stringify(created.error));
  assert.ok(created.data);
  const ada = created.data;
  assert.equal(ada.email, body.email);
  assert.equal(ada.state, "STATE_ACTIVE");
  assert.equal(ada.deleteTime, null);
  assert.equal(created.response.headers.get("Location"), `/v2/${ada.name}`);
  const replay = await client.POST("/v2/users", { body, params: { header: { "Idempotency-Key": key } } });
  assert.equal(replay.data?.name, ada.name, "a replayed create returns the first user");
  const id = idOf(ada);

  // Get.
  const got = await client.GET("/v2/tenants/{tenant}/users/{user}", { params: { path: { tenant: "default", user: id } } });
  assert.equal(got.response.status, 200);
  assert.deepEqual(got.data, ada);
  assert.equal(got.response.headers.get("ETag"), `"${ada.etag}"`);

  // List with a filter, two pages of two and one.
  const team = `Pager ${run}`;
  for (const n of [1, 2, 3]) {
    const r = await client.POST("/v2/users", { body: { email: `pager-${n}-${run}@example.com`, displayName: team } });
    assert.equal(r.response.status, 201, JSON.stringify(r.error));
  }
  const filter = `display_name = "${team}"`;
  const page1 = await client.GET("/v2/users", { params: { query: { filter, pageSize: 2 } } });
  assert.equal(page1.response.status, 200, JSON.stringify(page1.error));
  assert.equal(page1.data?.users?.length, 2);
  assert.ok(page1.data?.nextPageToken, "a first page of two of three has a next page");
  const page2 = await client.GET("/v2/users", {
    params: { query: { filter, pageSize: 2, pageToken: page1.data.nextPageToken } },
  });
  assert.equal(page2.data?.users?.length, 1);
  assert.equal(page2.data?.nextPageToken, "", "the last page has no next page");
  const emails = [...(page1.data.users ?? []), ...(page2.data?.users ?? [])].map((u) => u.email).sort();
  assert.deepEqual(emails, [1, 2, 3].map((n) => `pager-${n}-${run}@example.com`));

  // Update with the etag; the old etag is then stale: 409.
  const updated = await client.PATCH("/v2/tenants/{tenant}/users/{user}", {
    params: { path: { tenant: "default", user: id }, header: { "If-Match": `"${ada.etag}"` } },
    body: { displayName: "Ada, Countess of Lovelace" },
  });
  assert.equal(updated.response.status, 200, JSON.stringify(updated.error));
  assert.equal(updated.data?.displayName, "Ada, Countess of Lovelace");
  assert.notEqual(updated.data?.etag, ada.etag);
  const stale = await client.PATCH("/v2/tenants/{tenant}/users/{user}", {
    params: { path: { tenant: "default", user: id } },
    body: { displayName: "Stale", etag: ada.etag },
  });
  assert.equal(stale.response.status, 409);
  assert.equal(stale.error?.code, 10, "ABORTED");

  // Delete with the current etag, then undelete.
  const deleted = await client.DELETE("/v2/tenants/{tenant}/users/{user}", {
    params: { path: { tenant: "default", user: id }, query: { etag: updated.data?.etag } },
  });
  assert.equal(deleted.response.status, 200, JSON.stringify(deleted.error));
  assert.equal(deleted.data?.state, "STATE_DELETED");
  assert.ok(deleted.data?.deleteTime);
  const undeleted = await client.POST("/v2/tenants/{tenant}/users/{user}:undelete", { params: { path: { tenant: "default", user: id } }, body: {} });
  assert.equal(undeleted.response.status, 200, JSON.stringify(undeleted.error));
  assert.equal(undeleted.data?.state, "STATE_ACTIVE");
  assert.equal(undeleted.data?.deleteTime, null);

  // An error names its field.
  const bad = await client.POST("/v2/users", { body: { email: "not-an-address", displayName: "X" } });
  assert.equal(bad.response.status, 400);
  assert.equal(bad.error?.code, 3, "INVALID_ARGUMENT");
  const detail = bad.error?.details?.find((d) => d["@type"] === "type.googleapis.com/google.rpc.BadRequest");
  const violations = (detail as { fieldViolations?: { field: string }[] } | undefined)?.fieldViolations ?? [];
  assert.deepEqual(
    violations.map((v) => v.field),
    ["user.email"],
  );
  const missing = await client.GET("/v2/tenants/{tenant}/users/{user}", { params: { path: { tenant: "default", user: "0190a5b4-0000-7000-8000-000000000000" } } });
  assert.equal(missing.response.status, 404);
  assert.equal(missing.error?.code, 5, "NOT_FOUND");

  // An import, polled until done.
  const started = await client.POST("/v2/users:import", {
    body: {
      requestId: `ts-import-${run}`,
      users: [
        { email: `lin-${run}@example.com`, displayName: "Lin Wei" },
        { email: "not-an-address", displayName: "X" },
        { email: `grace-${run}@example.com`, displayName: "Grace Hopper" },
      ],
    },
  });
  assert.equal(started.response.status, 202, JSON.stringify(started.error));
  const operation = started.data?.name?.split("/").at(-1);
  assert.ok(operation);
  assert.equal(started.response.headers.get("Location"), `/v2/tenants/default/operations/${operation}`);
  const poll = () => client.GET("/v2/tenants/{tenant}/operations/{operation}", { params: { path: { tenant: "default", operation } } });
  let op = started.data;
  const deadline = Date.now() + 30_000;
  while (!op?.done) {
    assert.ok(Date.now() < deadline, `import not done within 30 s: ${JSON.stringify(op)}`);
    await new Promise((r) => setTimeout(r, 100));
    const polled = await poll();
    assert.equal(polled.response.status, 200, JSON.stringify(polled.error));
    op = polled.data;
  }
  assert.equal(op.metadata?.total, 3);
  assert.equal(op.metadata?.imported, 2);
  assert.equal(op.metadata?.failed, 1);
  assert.deepEqual(
    op.response?.failures?.map((f) => f.index),
    [1],
  );
});

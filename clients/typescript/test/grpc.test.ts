// The gRPC API through a client that protoc-gen-es made from the protos
// (src/gen/proto; make generate-clients), calling with @connectrpc/connect-node
// over the gRPC protocol on usersd's gRPC port.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { BadRequestSchema } from "../src/gen/proto/google/rpc/error_details_pb.js";
import { User_State, UserService, type Operation, type UserEvent } from "../src/gen/proto/users/v2/users_pb.js";
import { startUsersd, type Usersd } from "./usersd.js";

let usersd: Usersd;
let client: Client<typeof UserService>;

before(async () => {
  usersd = await startUsersd();
  client = createClient(UserService, createGrpcTransport({ baseUrl: usersd.grpc }));
});

after(async () => {
  await usersd?.stop();
});

/** Runs fn and returns the ConnectError it threw. */
async function failure(fn: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await fn();
  } catch (e) {
    return ConnectError.from(e);
  }
  assert.fail("the call succeeded");
}

test("scenario over gRPC, with error details and the event stream", async () => {
  const run = Date.now().toString(36);

  // Watch the feed from its start while the scenario runs.
  const watching = new AbortController();
  const seen: UserEvent[] = [];
  let wanted: (events: UserEvent[]) => boolean = () => false;
  const watch = (async () => {
    try {
      for await (const ev of client.watchUserEvents({ after: "" }, { signal: watching.signal })) {
        seen.push(ev);
        if (wanted(seen)) return;
      }
    } catch (e) {
      if (ConnectError.from(e).code !== Code.Canceled) throw e;
    }
  })();

  // Create with an idempotency key (request_id); replaying it returns the same user.
  const requestId = `ts-grpc-${run}`;
  const email = `ada-${run}@example.com`;
  const ada = await client.createUser({ user: { email, displayName: "Ada Lovelace" }, requestId });
  assert.match(ada.name, /^tenants\/default\/users\/[0-9a-f-]{36}$/);
  assert.equal(ada.state, User_State.ACTIVE);
  assert.ok(ada.createTime && timestampDate(ada.createTime).getTime() > 0);
  assert.equal(ada.deleteTime, undefined);
  const replay = await client.createUser({ user: { email, displayName: "Ada Lovelace" }, requestId });
  assert.equal(replay.name, ada.name);

  // Get.
  const got = await client.getUser({ name: ada.name });
  assert.equal(got.email, email);
  assert.equal(got.etag, ada.etag);

  // List with a filter, two pages.
  const team = `Pager ${run}`;
  for (const n of [1, 2, 3]) {
    await client.createUser({ user: { email: `pager-${n}-${run}@example.com`, displayName: team } });
  }
  const filter = `display_name = "${team}"`;
  const page1 = await client.listUsers({ filter, pageSize: 2 });
  assert.equal(page1.users.length, 2);
  assert.notEqual(page1.nextPageToken, "");
  const page2 = await client.listUsers({ filter, pageSize: 2, pageToken: page1.nextPageToken });
  assert.equal(page2.users.length, 1);
  assert.equal(page2.nextPageToken, "");

  // Update with the etag; the old one is then stale: ABORTED.
  const updated = await client.updateUser({
    user: { name: ada.name, displayName: "Ada, Countess of Lovelace", etag: ada.etag },
    updateMask: { paths: ["display_name"] },
  });
  assert.equal(updated.displayName, "Ada, Countess of Lovelace");
  const stale = await failure(() =>
    client.updateUser({ user: { name: ada.name, displayName: "Stale", etag: ada.etag }, updateMask: { paths: ["display_name"] } }),
  );
  assert.equal(stale.code, Code.Aborted);

  // Delete with the etag, then undelete.
  const deleted = await client.deleteUser({ name: ada.name, etag: updated.etag });
  assert.equal(deleted.state, User_State.DELETED);
  assert.ok(deleted.deleteTime);
  const undeleted = await client.undeleteUser({ name: ada.name });
  assert.equal(undeleted.state, User_State.ACTIVE);

  // An error names its field in a google.rpc.BadRequest detail.
  const bad = await failure(() => client.createUser({ user: { email: "not-an-address", displayName: "X" } }));
  assert.equal(bad.code, Code.InvalidArgument);
  const violations = bad.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
  assert.deepEqual(
    violations.map((v) => v.field),
    ["user.email"],
  );
  const missing = await failure(() => client.getUser({ name: "users/0190a5b4-0000-7000-8000-000000000000" }));
  assert.equal(missing.code, Code.NotFound);

  // An import, polled until done.
  let op: Operation = await client.importUsers({
    requestId: `ts-grpc-import-${run}`,
    users: [
      { email: `lin-${run}@example.com`, displayName: "Lin Wei" },
      { email: "not-an-address", displayName: "X" },
    ],
  });
  const deadline = Date.now() + 30_000;
  while (!op.done) {
    assert.ok(Date.now() < deadline, "import not done within 30 s");
    await new Promise((r) => setTimeout(r, 100));
    op = await client.getOperation({ name: op.name });
  }
  assert.equal(op.metadata?.imported, 1);
  assert.equal(op.metadata?.failed, 1);
  assert.deepEqual(
    op.response?.failures.map((f) => f.index),
    [1],
  );

  // The stream delivers the scenario's events on Ada, in order.
  const adaEvents = ["user.created", "user.updated", "user.deleted", "user.undeleted"];
  const ofAda = (events: UserEvent[]) => events.filter((e) => e.user === ada.name).map((e) => e.type);
  const done = new Promise<void>((resolve) => {
    wanted = (events) => {
      const enough = ofAda(events).length >= adaEvents.length && events.some((e) => e.snapshot?.email === `lin-${run}@example.com`);
      if (enough) resolve();
      return enough;
    };
    if (wanted(seen)) resolve();
  });
  const timeout = setTimeout(() => watching.abort(), 30_000);
  await Promise.race([done, watch]);
  clearTimeout(timeout);
  watching.abort();
  await watch;
  assert.deepEqual(ofAda(seen), adaEvents, `events seen: ${seen.map((e) => `${e.type} ${e.user}`).join(", ")}`);
  const cursors = seen.map((e) => e.cursor);
  assert.equal(new Set(cursors).size, cursors.length, "no event twice");
});

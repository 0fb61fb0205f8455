// Starts a usersd for a test: the binary at $USERSD_BIN (make clients-test
// builds it), on free loopback ports, with an embedded database in a
// temporary directory. stop() ends it by its pid and removes the directory.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Usersd {
  /** Base URL of the HTTP/JSON API, http://127.0.0.1:port. */
  http: string;
  /** Base URL of the gRPC API, http://127.0.0.1:port. */
  grpc: string;
  /** Everything the server wrote, for a failing test's message. */
  output(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      s.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export async function startUsersd(extraArgs: string[] = []): Promise<Usersd> {
  const bin = process.env.USERSD_BIN;
  if (!bin) {
    throw new Error("USERSD_BIN is not set: run these tests with make clients-test");
  }
  const dir = mkdtempSync(join(tmpdir(), "usersd-ts-"));
  const [httpPort, grpcPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const args = [
    "serve",
    `--http-addr=127.0.0.1:${httpPort}`,
    `--grpc-addr=127.0.0.1:${grpcPort}`,
    `--admin-addr=127.0.0.1:${adminPort}`,
    `--database-url=sqlite:${join(dir, "usersd.db")}`,
    "--event-relay-interval=100ms",
    "--job-poll-interval=100ms",
    "--shutdown-delay=0s",
    ...extraArgs,
  ];
  let out = "";
  const child: ChildProcess = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr?.on("data", (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`usersd exited with ${child.exitCode}:\n${out}`);
    }
    try {
      const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`usersd was not ready within 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    http: `http://127.0.0.1:${httpPort}`,
    grpc: `http://127.0.0.1:${grpcPort}`,
    output: () => out,
    stop,
  };
}

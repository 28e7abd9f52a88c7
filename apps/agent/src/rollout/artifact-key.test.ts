import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeSigner } from "../../test/helpers/rollout.js";
import { deviceAuthorization, fetchArtifactKey } from "./artifact-key.js";

const AUTH = deviceAuthorization("pi-01", "pw");
let answer: (auth: string | undefined) => [number, unknown];
let server: ReturnType<typeof createServer>;
let base: string;
const paths: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    paths.push(req.url ?? "");
    const [status, body] = answer(req.headers.authorization);
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

describe("fetching the server's artifact key", () => {
  it("asks GET /api/device/artifact-key with the device's credentials and checks the key id", async () => {
    const signer = makeSigner();
    answer = (auth) => (auth === AUTH ? [200, { artifactPublicKey: signer.publicKey, keyId: signer.keyId }] : [401, {}]);
    expect(deviceAuthorization("pi-01", "pw")).toBe(`Basic ${Buffer.from("pi-01:pw").toString("base64")}`);
    expect(await fetchArtifactKey({ serverUrl: `${base}/`, authorization: AUTH })).toBe(signer.publicKey);
    expect(paths.at(-1)).toBe("/api/device/artifact-key");

    answer = () => [200, { artifactPublicKey: signer.publicKey, keyId: "not-its-id" }];
    await expect(fetchArtifactKey({ serverUrl: base, authorization: AUTH })).rejects.toThrow(
      /named key not-its-id, but the key it sent has the id/,
    );
    answer = () => [200, { artifactPublicKey: "bm90IGEga2V5", keyId: "x" }];
    await expect(fetchArtifactKey({ serverUrl: base, authorization: AUTH })).rejects.toThrow(/not a valid SPKI key/);
    answer = () => [401, { error: { code: "unauthorized", message: "unknown device or wrong password" } }];
    await expect(fetchArtifactKey({ serverUrl: base, authorization: AUTH })).rejects.toThrow(
      /answered HTTP 401: unknown device or wrong password \(unauthorized\)/,
    );
    answer = () => [404, "nope"];
    await expect(fetchArtifactKey({ serverUrl: base, authorization: AUTH })).rejects.toThrow(/answered HTTP 404$/);
  });
});

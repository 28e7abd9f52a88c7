/**
 * The by-URL download check: the address classifier (no network), and the fetcher against an HTTP server
 * on 127.0.0.1 only. Where a test needs a "public" address it marks 127.0.0.1 public (isPublic) and maps
 * made-up names to it (resolve): nothing outside loopback is contacted.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MAX_REDIRECTS, RemoteFetch, UrlRefusedError, classifyAddress, type ResolvedAddress } from "./remote-fetch.ts";

describe("classifyAddress", () => {
  it("calls public only global unicast addresses", () => {
    for (const a of [
      "8.8.8.8",
      "1.1.1.1",
      "93.184.216.34",
      "172.32.0.1",
      "100.128.0.1",
      "2606:4700:4700::1111",
      "2a00:1450:4001::200e",
      "::ffff:8.8.8.8",
      "2002:0808:0808::1",
    ]) {
      expect(classifyAddress(a), a).toBe("public");
    }
  });

  it("names what the others are", () => {
    const expected: Record<string, string> = {
      "127.0.0.1": "loopback",
      "127.255.255.254": "loopback",
      "::1": "loopback",
      "0:0:0:0:0:0:0:1": "loopback",
      "10.0.0.1": "private",
      "172.16.0.1": "private",
      "172.31.255.255": "private",
      "192.168.1.1": "private",
      "100.64.0.1": "private",
      "169.254.169.254": "link-local",
      "fe80::1": "link-local",
      "fe80::1%eth0": "link-local",
      "fc00::1": "unique-local",
      "fd12:3456:789a::1": "unique-local",
      "fec0::1": "private",
      "0.0.0.0": "unspecified",
      "::": "unspecified",
      "224.0.0.1": "multicast",
      "ff02::1": "multicast",
      "255.255.255.255": "reserved",
      "240.0.0.1": "reserved",
      "192.0.2.1": "reserved",
      "198.18.0.1": "reserved",
      "2001:db8::1": "reserved",
      "2001::1": "reserved", // Teredo
      "100::1": "reserved",
      "::ffff:127.0.0.1": "loopback", // IPv4-mapped
      "::ffff:7f00:1": "loopback",
      "::ffff:10.1.2.3": "private",
      "64:ff9b::a9fe:a9fe": "link-local", // NAT64 of 169.254.169.254
      "2002:c0a8:0101::1": "private", // 6to4 of 192.168.1.1
      "::127.0.0.1": "reserved", // IPv4-compatible (deprecated)
      "not-an-address": "reserved",
    };
    for (const [address, kind] of Object.entries(expected)) expect(classifyAddress(address), address).toBe(kind);
  });
});

describe("RemoteFetch", () => {
  let server: http.Server;
  let port: number;
  const seen: { url: string; host: string | undefined }[] = [];
  const routes = new Map<string, (res: http.ServerResponse) => void>();

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push({ url: req.url!, host: req.headers.host });
      const route = routes.get(req.url!);
      if (route) route(res);
      else res.writeHead(404).end("nothing here");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    seen.length = 0;
    routes.clear();
  });

  const at = (address: string): ResolvedAddress[] => [{ address, family: 4 }];
  /** 127.0.0.1 stands in for a public address; the names map to what the test says. */
  const standIn = (names: Record<string, ResolvedAddress[] | (() => ResolvedAddress[])>) =>
    new RemoteFetch({
      allowPrivate: false,
      isPublic: (a) => a === "127.0.0.1",
      resolve: async (name) => {
        const entry = names[name];
        if (!entry) throw Object.assign(new Error(`no such name ${name}`), { code: "ENOTFOUND" });
        return typeof entry === "function" ? entry() : entry;
      },
    });

  it("refuses other schemes, credentials in the URL, private literals and names with any private address", async () => {
    const strict = new RemoteFetch({ allowPrivate: false, resolve: async () => [...at("93.184.216.34"), ...at("10.0.0.7")] });
    for (const url of ["file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/", "not a url"]) {
      await expect(strict.check(url), url).rejects.toBeInstanceOf(UrlRefusedError);
    }
    await expect(strict.check("http://user:pw@example.com/x")).rejects.toThrow("must not contain a user name or password");
    for (const url of ["http://127.0.0.1/x", "http://[::1]/x", "http://10.0.0.1/x", "http://[fd00::1]/x", "http://169.254.169.254/x"]) {
      await expect(strict.check(url), url).rejects.toThrow(/^sourceUrl names a loopback, private or link-local address/);
    }
    // One public and one private address: refused (the connection could go to either).
    await expect(strict.check("https://models.example/x")).rejects.toThrow(
      /^sourceUrl's host models\.example resolves to a loopback, private or link-local address; .* ORCHARD_ALLOW_PRIVATE_MODEL_URLS=1\.$/,
    );
    // Only public addresses: passes (nothing is fetched by a check).
    await new RemoteFetch({ allowPrivate: false, resolve: async () => at("93.184.216.34") }).check("https://models.example/x");
    await new RemoteFetch({ allowPrivate: true }).check("http://127.0.0.1/x");
  });

  it("connects to the address it checked, not to what the name resolves to later (DNS rebinding)", async () => {
    routes.set("/model.bin", (res) => res.writeHead(200, { "content-type": "application/octet-stream" }).end("model bytes"));
    const fetcher = standIn({ "models.example": at("127.0.0.1") });
    const res = await fetcher.fetch(`http://models.example:${port}/model.bin`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("model bytes");
    expect(seen).toEqual([{ url: "/model.bin", host: `models.example:${port}` }]);

    // Public when checked, private when connecting: the connection is refused, nothing reaches the server.
    let calls = 0;
    const rebinding = standIn({ "rebind.example": () => (calls++ === 0 ? at("127.0.0.1") : at("127.0.0.2")) });
    await rebinding.check(`http://rebind.example:${port}/model.bin`);
    await expect(rebinding.fetch(`http://rebind.example:${port}/model.bin`)).rejects.toThrow(
      /^sourceUrl's host rebind\.example resolves to a loopback, private or link-local address/,
    );
    expect(seen).toHaveLength(1);
  });

  it("checks every redirect hop, and stops after a few", async () => {
    routes.set("/to-private", (res) => res.writeHead(302, { location: `http://127.0.0.2:${port}/model.bin` }).end());
    routes.set("/to-private-name", (res) => res.writeHead(301, { location: `http://inside.example:${port}/model.bin` }).end());
    routes.set("/to-file", (res) => res.writeHead(302, { location: "file:///etc/passwd" }).end());
    routes.set("/loop", (res) => res.writeHead(307, { location: "/loop" }).end());
    routes.set("/to-public", (res) => res.writeHead(308, { location: `http://models.example:${port}/model.bin` }).end());
    routes.set("/model.bin", (res) => res.writeHead(200).end("model bytes"));
    const fetcher = standIn({ "models.example": at("127.0.0.1"), "inside.example": at("192.168.0.10") });
    const base = `http://127.0.0.1:${port}`;
    await expect(fetcher.fetch(`${base}/to-private`)).rejects.toThrow(/^The URL redirected to a loopback, private or link-local address/);
    await expect(fetcher.fetch(`${base}/to-private-name`)).rejects.toThrow(
      /^The URL redirected to a loopback, private or link-local address/,
    );
    await expect(fetcher.fetch(`${base}/to-file`)).rejects.toThrow("sourceUrl must be an http:// or https:// URL.");
    await expect(fetcher.fetch(`${base}/loop`)).rejects.toThrow(`The URL redirected more than ${MAX_REDIRECTS} times.`);
    expect(seen.filter((s) => s.url === "/model.bin")).toEqual([]); // no refused hop was contacted
    const res = await fetcher.fetch(`${base}/to-public`);
    expect(await res.text()).toBe("model bytes");
  });

  it("with allowPrivate fetches loopback, and hands back status and headers as a fetch Response", async () => {
    routes.set("/partial", (res) => res.writeHead(206, { "content-range": "bytes 2-4/5", "content-length": "3" }).end("llo"));
    const res = await new RemoteFetch({ allowPrivate: true }).fetch(`http://127.0.0.1:${port}/partial`, { headers: { range: "bytes=2-" } });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe("bytes 2-4/5");
    expect(await res.text()).toBe("llo");
    const missing = await new RemoteFetch({ allowPrivate: true }).fetch(`http://127.0.0.1:${port}/nothing`);
    expect(missing.status).toBe(404);
    await missing.body?.cancel();
  });
});

/**
 * Fetching a model file from a URL an operator gave, without letting the server be used to
 * reach what only it can reach (SSRF): http and https only; unless ORCHARD_ALLOW_PRIVATE_MODEL_URLS
 * is set, every address the host resolves to must be public (not loopback, private, link-local,
 * unique-local, multicast or otherwise reserved: classifyAddress), and the connection is made to the
 * address that was checked (the check runs in the socket's own DNS lookup, so a name that resolves
 * differently the second time — DNS rebinding — cannot switch it). Redirects are followed by hand,
 * at most MAX_REDIRECTS, each hop checked the same way.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import net, { type LookupFunction } from "node:net";
import { Readable } from "node:stream";
import { AppError } from "../errors.ts";

export const MAX_REDIRECTS = 5;
/** A remote server that sends nothing for this long is given up on (the attempt is retried by the caller). */
const IDLE_TIMEOUT_MS = 120_000;

export type AddressKind = "public" | "loopback" | "private" | "link-local" | "unique-local" | "unspecified" | "multicast" | "reserved";

/** A URL (or a hop it redirected to) the server will not fetch. */
export class UrlRefusedError extends AppError {
  constructor(message: string) {
    super("bad_request", message);
  }
}

const privateRefusal = (what: string) =>
  new UrlRefusedError(
    `${what} a loopback, private or link-local address; the server downloads models only from public addresses ` +
      `unless an admin sets ORCHARD_ALLOW_PRIVATE_MODEL_URLS=1.`,
  );

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export interface RemoteFetchOptions {
  /** ORCHARD_ALLOW_PRIVATE_MODEL_URLS: any address may be fetched. */
  allowPrivate: boolean;
  /** Every address of a host name (the system resolver by default; tests map names to 127.0.0.1). */
  resolve?: (hostname: string) => Promise<ResolvedAddress[]>;
  /** Which addresses are public (classifyAddress by default; tests mark a loopback address "public" to stand in for one). */
  isPublic?: (address: string) => boolean;
}

export interface RemoteFetchInit {
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

const systemResolve = async (hostname: string): Promise<ResolvedAddress[]> =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

export class RemoteFetch {
  private readonly resolveName: (hostname: string) => Promise<ResolvedAddress[]>;
  private readonly isPublic: (address: string) => boolean;

  constructor(private readonly opts: RemoteFetchOptions) {
    this.resolveName = opts.resolve ?? systemResolve;
    this.isPublic = opts.isPublic ?? ((a) => classifyAddress(a) === "public");
  }

  /**
   * Refuses (UrlRefusedError, 400) a URL the server would not fetch: not http(s), with credentials in it,
   * or (without allowPrivate) naming or resolving to a non-public address. A name that does not resolve
   * now passes: the download's own attempts (and checks) decide.
   */
  async check(url: string): Promise<void> {
    const target = parseTarget(url);
    if (this.opts.allowPrivate) return;
    if (target.literal) {
      if (!this.isPublic(target.host)) throw privateRefusal("sourceUrl names");
      return;
    }
    const addresses = await this.resolveName(target.host).catch(() => null);
    if (addresses && addresses.some((a) => !this.isPublic(a.address))) throw privateRefusal(`sourceUrl's host ${target.host} resolves to`);
  }

  /**
   * GET `url` (with `init.headers`), following redirects that pass the same checks; the final answer as a
   * fetch Response. Throws UrlRefusedError for a refused hop, Error (with `code`) when no connection was made.
   */
  async fetch(url: string, init: RemoteFetchInit = {}): Promise<Response> {
    let current = url;
    for (let hop = 0; ; hop++) {
      const res = await this.request(current, init, hop > 0);
      const location = res.headers.location;
      if (res.statusCode !== undefined && [301, 302, 303, 307, 308].includes(res.statusCode) && location) {
        res.destroy();
        if (hop >= MAX_REDIRECTS) throw new UrlRefusedError(`The URL redirected more than ${MAX_REDIRECTS} times.`);
        current = new URL(location, current).toString();
        continue;
      }
      return toResponse(res);
    }
  }

  private request(url: string, init: RemoteFetchInit, redirected: boolean): Promise<IncomingMessage> {
    const target = parseTarget(url);
    const refusal = () =>
      privateRefusal(
        redirected ? "The URL redirected to" : target.literal ? "sourceUrl names" : `sourceUrl's host ${target.host} resolves to`,
      );
    if (!this.opts.allowPrivate && target.literal && !this.isPublic(target.host)) return Promise.reject(refusal());
    // Node calls this for host names (not for literal addresses): what it connects to is what was checked here.
    const lookup: LookupFunction = (hostname, options, callback) => {
      this.resolveName(hostname).then(
        (all) => {
          const wanted = options.family === 4 || options.family === 6 ? all.filter((a) => a.family === options.family) : all;
          if (wanted.length === 0) {
            callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }), "", 4);
            return;
          }
          if (!this.opts.allowPrivate && all.some((a) => !this.isPublic(a.address))) {
            callback(refusal() as NodeJS.ErrnoException, "", 4);
            return;
          }
          if (options.all) callback(null, wanted);
          else callback(null, wanted[0]!.address, wanted[0]!.family);
        },
        (err: NodeJS.ErrnoException) => callback(err, "", 4),
      );
    };
    const client = target.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const req = client.request(url, { method: "GET", headers: init.headers, signal: init.signal, lookup, agent: false });
      req.setTimeout(IDLE_TIMEOUT_MS, () =>
        req.destroy(Object.assign(new Error("the remote server stopped answering"), { code: "ETIMEDOUT" })),
      );
      req.once("response", (res) => {
        // The idle timeout keeps guarding the body while it streams.
        res.once("end", () => req.setTimeout(0));
        resolve(res);
      });
      req.once("error", reject);
      req.end();
    });
  }
}

function parseTarget(url: string): { protocol: string; host: string; literal: boolean } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UrlRefusedError("sourceUrl must be a URL.");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UrlRefusedError("sourceUrl must be an http:// or https:// URL.");
  }
  if (parsed.username || parsed.password) throw new UrlRefusedError("sourceUrl must not contain a user name or password.");
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  return { protocol: parsed.protocol, host, literal: net.isIP(host) !== 0 };
}

function toResponse(res: IncomingMessage): Response {
  const status = res.statusCode ?? 502;
  const headers = new Headers();
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  if (status < 200 || status > 599) {
    res.destroy();
    return new Response(null, { status: 502, statusText: "Bad Gateway", headers });
  }
  const noBody = status === 204 || status === 205 || status === 304;
  if (noBody) res.resume();
  return new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
    status,
    statusText: res.statusMessage ?? "",
    headers,
  });
}

/**
 * What an IP address is, for the download check: only "public" may be fetched without
 * ORCHARD_ALLOW_PRIVATE_MODEL_URLS. IPv4 inside IPv6 (::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16)
 * is judged by the IPv4 address; IPv6 outside 2000::/3 (global unicast) is never public.
 */
export function classifyAddress(address: string): AddressKind {
  const bare = address.replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, "");
  const v = net.isIP(bare);
  if (v === 4) return classifyV4(bare.split(".").map(Number));
  if (v === 6) return classifyV6(ipv6Groups(bare));
  return "reserved"; // not an address at all: never fetched
}

function classifyV4([a, b, c]: number[]): AddressKind {
  if (a === undefined || b === undefined || c === undefined) return "reserved";
  if (a === 0) return "unspecified"; // 0.0.0.0/8 "this network" (0.0.0.0 reaches the local host)
  if (a === 127) return "loopback";
  if (a === 10) return "private";
  if (a === 172 && b >= 16 && b <= 31) return "private";
  if (a === 192 && b === 168) return "private";
  if (a === 100 && b >= 64 && b <= 127) return "private"; // carrier-grade NAT 100.64.0.0/10
  if (a === 169 && b === 254) return "link-local"; // includes cloud metadata 169.254.169.254
  if (a === 192 && b === 0 && (c === 0 || c === 2)) return "reserved"; // IETF assignments, TEST-NET-1
  if (a === 192 && b === 88 && c === 99) return "reserved"; // 6to4 relay anycast
  if (a === 198 && (b === 18 || b === 19)) return "reserved"; // benchmarking
  if (a === 198 && b === 51 && c === 100) return "reserved"; // TEST-NET-2
  if (a === 203 && b === 0 && c === 113) return "reserved"; // TEST-NET-3
  if (a >= 224 && a <= 239) return "multicast";
  if (a >= 240) return "reserved"; // includes 255.255.255.255
  return "public";
}

function classifyV6(g: number[]): AddressKind {
  const zeroUpTo = (n: number) => g.slice(0, n).every((x) => x === 0);
  const v4 = (hi: number, lo: number) => [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff];
  if (zeroUpTo(8)) return "unspecified";
  if (zeroUpTo(7) && g[7] === 1) return "loopback";
  if (zeroUpTo(5) && g[5] === 0xffff) return classifyV4(v4(g[6]!, g[7]!)); // IPv4-mapped
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return classifyV4(v4(g[6]!, g[7]!)); // NAT64
  if (g[0] === 0x2002) return classifyV4(v4(g[1]!, g[2]!)); // 6to4
  if ((g[0]! & 0xfe00) === 0xfc00) return "unique-local"; // fc00::/7
  if ((g[0]! & 0xffc0) === 0xfe80) return "link-local"; // fe80::/10
  if ((g[0]! & 0xffc0) === 0xfec0) return "private"; // fec0::/10, deprecated site-local
  if ((g[0]! & 0xff00) === 0xff00) return "multicast";
  if ((g[0]! & 0xe000) !== 0x2000) return "reserved"; // outside global unicast 2000::/3 (::/96 compatible, 64:ff9b:1::/48, 100::/64 ...)
  if (g[0] === 0x2001 && g[1]! < 0x0200) return "reserved"; // 2001::/23 IETF assignments: Teredo, benchmarking, ORCHID
  if (g[0] === 0x2001 && g[1] === 0x0db8) return "reserved"; // documentation
  return "public";
}

/** The eight 16-bit groups of a valid IPv6 address (with "::" expanded and a trailing dotted IPv4 converted). */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(2).map(Number) as [number, number, number, number];
    text = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? (text.split("::") as [string, string]) : [text, null];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const fill = tail === null ? [] : new Array<string>(8 - left.length - right.length).fill("0");
  return [...left, ...fill, ...right].map((x) => parseInt(x, 16));
}

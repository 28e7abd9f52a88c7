/**
 * `orchard chat DEVICE PROMPT`: one answer from the model on a device, streamed to
 * the terminal through the server's OpenAI-compatible API (server-sent events).
 * DEVICE is a device id or name. Stats go to stderr so stdout is only the answer.
 */
import type { DeviceSummary } from "@orchard/contracts";
import { TerminalText } from "./terminal-text.ts";

export interface ChatOptions {
  url: string;
  apiKey: string;
  deviceId: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
}

export function resolveDevice(devices: DeviceSummary[], nameOrId: string): DeviceSummary {
  const byId = devices.find((d) => d.id === nameOrId);
  if (byId) return byId;
  const byName = devices.filter((d) => d.name === nameOrId);
  if (byName.length === 1) return byName[0]!;
  if (byName.length > 1)
    throw new Error(`${byName.length} devices are named "${nameOrId}"; use the device id (${byName.map((d) => d.id).join(", ")})`);
  throw new Error(`no device "${nameOrId}" (orchard devices lists them)`);
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

/** Streams one completion; resolves with the full text. */
export async function chat(o: ChatOptions): Promise<string> {
  const started = Date.now();
  const res = await fetch(`${o.url.replace(/\/$/, "")}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${o.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: `device:${o.deviceId}`,
      messages: [{ role: "user", content: o.prompt }],
      max_tokens: o.maxTokens,
      temperature: o.temperature,
      stream: !o.json,
    }),
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new Error(body?.error?.message ?? `the server answered ${res.status}`);
  }
  if (o.json) {
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    o.out(`${JSON.stringify(body, null, 2)}\n`);
    return body.choices[0]?.message.content ?? "";
  }

  let text = "";
  let firstTokenAt: number | null = null;
  let usage: Usage | null = null;
  let buffer = "";
  // Bytes become text once, here, with a streaming decoder (a character split across network chunks stays whole);
  // TerminalText holds a piece's trailing half surrogate pair and writes control characters as U+FFFD.
  const decoder = new TextDecoder();
  const terminal = new TerminalText();
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let sep: number;
    while ((sep = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, sep);
      buffer = buffer.slice(sep + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") continue;
        const msg = JSON.parse(data) as { error?: { message: string }; choices?: { delta?: { content?: string } }[]; usage?: Usage };
        if (msg.error) throw new Error(msg.error.message);
        const piece = msg.choices?.[0]?.delta?.content;
        if (piece) {
          firstTokenAt ??= Date.now();
          text += piece;
          const shown = terminal.push(piece);
          if (shown) o.out(shown);
        }
        if (msg.usage) usage = msg.usage;
      }
    }
  }
  o.out(`${terminal.end()}\n`);
  if (usage) {
    const decodeS = firstTokenAt ? (Date.now() - firstTokenAt) / 1000 : 0;
    const rate = decodeS > 0 && usage.completion_tokens > 1 ? ((usage.completion_tokens - 1) / decodeS).toFixed(1) : "—";
    o.err(
      `— ${usage.completion_tokens} tokens · ${rate} tok/s · first token after ${(((firstTokenAt ?? Date.now()) - started) / 1000).toFixed(1)} s · prompt ${usage.prompt_tokens} tokens (${usage.prompt_tokens_details?.cached_tokens ?? 0} reused)\n`,
    );
  }
  return text;
}

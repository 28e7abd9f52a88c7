/** Parsing of request lines with the contracts' zod schemas, into a request or a bad_request answer. */
import { RunnerRequest } from "@orchard/contracts";
import { z } from "zod";

export type ParsedRequest = z.output<typeof RunnerRequest>;

export type ParseResult = { ok: true; request: ParsedRequest } | { ok: false; id?: string; message: string };

const MaybeId = z.object({ id: z.string().min(1).max(64) });

export function parseRequestLine(line: string): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { ok: false, message: `request is not JSON: ${line.slice(0, 100)}` };
  }
  const result = RunnerRequest.safeParse(json);
  if (result.success) return { ok: true, request: result.data };
  const id = MaybeId.safeParse(json);
  return { ok: false, ...(id.success ? { id: id.data.id } : {}), message: `bad request: ${explain(json)}` };
}

/** Names the field at fault, using the schema of the request's own type. */
function explain(json: unknown): string {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return "a request must be a JSON object";
  const type = (json as Record<string, unknown>).type;
  const schema = RunnerRequest.options.find((option) => option.shape.type.value === type);
  if (!schema) return `unknown request type ${JSON.stringify(type ?? null)}`;
  const issue = schema.safeParse(json).error?.issues[0];
  if (!issue) return "invalid request";
  return issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message;
}

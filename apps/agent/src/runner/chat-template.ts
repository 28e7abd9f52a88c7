/**
 * The model's own chat template. A Hugging Face model folder carries its prompt
 * format as Jinja: `chat_template.jinja`, or the `chat_template` of
 * `tokenizer_config.json` (a string, or a list of named templates of which
 * "default" is used). The agent renders a conversation with it (Hugging Face's
 * `@huggingface/jinja`, the engine transformers.js uses) and sends the runner the
 * rendered text (`rendered` in the runner protocol), which the runner encodes as is.
 * A folder without a template leaves the runner's built-in Gemma template in charge.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";
import { z } from "zod";
import type { ChatMessage } from "@orchard/contracts";

/** A token in tokenizer_config.json: "<bos>" or {"content": "<bos>", …}. */
const ConfigToken = z.union([z.string(), z.object({ content: z.string() })]).nullish();

const TokenizerConfig = z.object({
  bos_token: ConfigToken,
  eos_token: ConfigToken,
  chat_template: z.union([z.string(), z.array(z.object({ name: z.string(), template: z.string() }))]).nullish(),
});

export class ChatTemplateError extends Error {}

export interface ChatTemplate {
  /** Where the template came from (a file name in the folder), for messages. */
  readonly origin: string;
  /** The conversation as the model expects it, with the generation prompt for the model's turn. */
  render(messages: readonly ChatMessage[]): string;
}

function tokenText(token: z.infer<typeof ConfigToken>): string {
  if (token === null || token === undefined) return "";
  return typeof token === "string" ? token : token.content;
}

function readOptional(file: string): string | null {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new ChatTemplateError(`cannot read ${path.basename(file)}: ${(error as Error).message}`);
  }
}

/**
 * The chat template of the model folder `dir`, or null when it has none. Throws a
 * ChatTemplateError naming the file when one is there but cannot be read or parsed.
 */
export function loadChatTemplate(dir: string): ChatTemplate | null {
  const configText = readOptional(path.join(dir, "tokenizer_config.json"));
  let config: z.infer<typeof TokenizerConfig> = {};
  if (configText !== null) {
    let json: unknown;
    try {
      json = JSON.parse(configText);
    } catch (error) {
      throw new ChatTemplateError(`tokenizer_config.json is not JSON: ${(error as Error).message}`);
    }
    const parsed = TokenizerConfig.safeParse(json);
    if (!parsed.success) throw new ChatTemplateError(`tokenizer_config.json: ${parsed.error.issues[0]!.message}`);
    config = parsed.data;
  }

  let origin = "chat_template.jinja";
  let source = readOptional(path.join(dir, origin));
  if (source === null && config.chat_template) {
    origin = "tokenizer_config.json";
    source =
      typeof config.chat_template === "string"
        ? config.chat_template
        : (config.chat_template.find((t) => t.name === "default")?.template ?? null);
  }
  if (source === null) return null;

  let template: Template;
  try {
    template = new Template(source);
  } catch (error) {
    throw new ChatTemplateError(`the chat template in ${origin} does not parse: ${(error as Error).message}`);
  }
  const bos = tokenText(config.bos_token);
  const eos = tokenText(config.eos_token);
  return {
    origin,
    render(messages) {
      try {
        return template.render({
          messages: messages.map((m) => ({ role: m.role, content: m.content })),
          add_generation_prompt: true,
          bos_token: bos,
          eos_token: eos,
        });
      } catch (error) {
        throw new ChatTemplateError(`the model's chat template (${origin}) refused the conversation: ${(error as Error).message}`);
      }
    },
  };
}

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ChatTemplateError, loadChatTemplate } from "./chat-template.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "orchard-template-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

// Gemma 4's turn format, with a real system turn.
const GEMMA4 =
  "{{ bos_token }}{%- for m in messages -%}{%- set role = 'model' if m['role'] == 'assistant' else m['role'] -%}" +
  "{{ '<|turn>' + role + '\\n' + (m['content'] | trim) + '<turn|>\\n' }}{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{ '<|turn>model\\n' }}{%- endif -%}";

describe("loadChatTemplate", () => {
  it("renders chat_template.jinja with the bos token of tokenizer_config.json and the generation prompt", () => {
    const dir = folder({ "chat_template.jinja": GEMMA4, "tokenizer_config.json": JSON.stringify({ bos_token: "<bos>" }) });
    const template = loadChatTemplate(dir);
    expect(template?.origin).toBe("chat_template.jinja");
    expect(
      template!.render([
        { role: "system", content: "Be brief." },
        { role: "user", content: " The capital of France is " },
      ]),
    ).toBe("<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nThe capital of France is<turn|>\n<|turn>model\n");
  });

  it("falls back to tokenizer_config.json's chat_template, a string or the named default", () => {
    const llama = "{% for m in messages %}{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}";
    const plain = folder({ "tokenizer_config.json": JSON.stringify({ bos_token: { content: "<s>" }, chat_template: llama }) });
    expect(loadChatTemplate(plain)!.render([{ role: "user", content: "hi" }])).toBe("<s>[INST] hi [/INST]");
    expect(loadChatTemplate(plain)!.origin).toBe("tokenizer_config.json");

    const named = folder({
      "tokenizer_config.json": JSON.stringify({
        eos_token: "</s>",
        chat_template: [
          { name: "tool_use", template: "tools" },
          { name: "default", template: "{{ messages[0]['content'] }}{{ eos_token }}" },
        ],
      }),
    });
    expect(loadChatTemplate(named)!.render([{ role: "user", content: "x" }])).toBe("x</s>");
  });

  it("is null for a folder without a template", () => {
    expect(loadChatTemplate(folder({ "tokenizer.json": "{}" }))).toBeNull();
    expect(loadChatTemplate(folder({ "tokenizer_config.json": JSON.stringify({ bos_token: "<s>" }) }))).toBeNull();
  });

  it("names the file when the template or the config is broken", () => {
    expect(() => loadChatTemplate(folder({ "chat_template.jinja": "{% for m in messages %}" }))).toThrow(
      /the chat template in chat_template.jinja does not parse/,
    );
    expect(() => loadChatTemplate(folder({ "tokenizer_config.json": "{not json" }))).toThrow(ChatTemplateError);
    expect(() => loadChatTemplate(folder({ "tokenizer_config.json": JSON.stringify({ bos_token: 3 }) }))).toThrow(/tokenizer_config.json:/);
  });

  it("turns the template's own refusal into a ChatTemplateError", () => {
    const strict = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with a user turn') }}{% endif %}ok";
    const template = loadChatTemplate(folder({ "chat_template.jinja": strict }))!;
    expect(template.render([{ role: "user", content: "a" }])).toBe("ok");
    expect(() => template.render([{ role: "assistant", content: "a" }])).toThrow(
      /chat template \(chat_template.jinja\) refused the conversation: .*must start with a user turn/,
    );
  });
});

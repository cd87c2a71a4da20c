// Chat-template rendering: the only module that imports `@huggingface/jinja`.
//
// Renders a Hugging Face chat template the way `transformers` does: the template sees `messages`,
// `add_generation_prompt` and the named special tokens (`bos_token`, `eos_token`, `pad_token`,
// `unk_token`), plus any extra kwargs (`opts.kwargs`, e.g. Qwen3's `enable_thinking`), as
// transformers passes `apply_chat_template(**kwargs)` to the template. Left out: tools and documents.

import { Template } from "@huggingface/jinja";
import type { ChatMessage, ChatTemplateOptions } from "./types.ts";

/** The named special tokens a template may reference; null when the tokenizer has none. */
export interface TemplateTokens {
  bos_token: string | null;
  eos_token: string | null;
  pad_token: string | null;
  unk_token: string | null;
}

/** A parsed template bound to its tokens; `source` names where it came from, for errors. */
export class ChatTemplate {
  private readonly template: Template;

  constructor(
    text: string,
    private readonly tokens: TemplateTokens,
    private readonly source: string,
  ) {
    try {
      this.template = new Template(text);
    } catch (err) {
      throw new Error(`chat template in ${source} does not parse: ${(err as Error).message}`);
    }
  }

  render(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    try {
      return this.template.render({
        ...opts.kwargs,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: opts.addGenerationPrompt ?? false,
        ...this.tokens,
      });
    } catch (err) {
      throw new Error(`chat template in ${this.source} failed: ${(err as Error).message}`);
    }
  }
}

/** The error every tokenizer throws when asked for a chat template it does not have. */
export function noChatTemplateError(source: string): Error {
  return new Error(
    `no chat template for the tokenizer in ${source}: tokenizer_config.json has no "chat_template" ` +
      `and there is no chat_template.jinja; use a chat/instruct model or format prompts as plain text`,
  );
}

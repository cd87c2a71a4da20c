// Reading the tokenizer files of a Hugging Face model directory, with errors that name the file.
//
// Reads `tokenizer.json` (required), `tokenizer_config.json`, `generation_config.json`, and a chat
// template from `tokenizer_config.json` "chat_template", `chat_template.jinja` or `chat_template.json`
// (newer transformers versions save it in its own file). Left out: slow-tokenizer files (vocab.json +
// merges.txt, SentencePiece tokenizer.model) — convert those with transformers' `save_pretrained`.

import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";

type Json = Record<string, unknown>;

/** The raw files, parsed but not yet interpreted. */
export interface TokenizerFiles {
  dir: string;
  tokenizerJson: Json;
  /** tokenizer_config.json, or {} when the directory has none. */
  config: Json;
  /** generation_config.json, or null. */
  generationConfig: Json | null;
  chatTemplate: string | null;
}

export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const tokenizerJson = await readJson(dir, "tokenizer.json");
  if (tokenizerJson === null) throw missingTokenizerJson(dir);
  if (!isObject(tokenizerJson.model)) {
    throw new Error(`${join(dir, "tokenizer.json")}: no "model" object; is this a Hugging Face tokenizer.json?`);
  }
  const config = (await readJson(dir, "tokenizer_config.json")) ?? {};
  const generationConfig = await readJson(dir, "generation_config.json");
  const chatTemplate = await readChatTemplate(dir, config);
  return { dir, tokenizerJson, config, generationConfig, chatTemplate };
}

function missingTokenizerJson(dir: string): Error {
  const hints = ["tokenizer.model", "vocab.json"].filter((f) => existsSync(join(dir, f)));
  const hint = hints.length
    ? ` (found ${hints.join(", ")}: a slow tokenizer; re-save it with transformers' save_pretrained to get tokenizer.json)`
    : "";
  return new Error(`${dir}: tokenizer.json not found; a Hugging Face model directory needs it${hint}`);
}

/** Parsed JSON object, or null when the file does not exist. */
async function readJson(dir: string, name: string): Promise<Json | null> {
  const path = join(dir, name);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`${path}: cannot read: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: invalid JSON: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw new Error(`${path}: expected a JSON object`);
  return value;
}

// transformers looks at tokenizer_config.json first, then the standalone files it writes since v4.43+.
async function readChatTemplate(dir: string, config: Json): Promise<string | null> {
  const fromConfig = pickTemplate(config.chat_template, join(dir, "tokenizer_config.json"));
  if (fromConfig !== null) return fromConfig;
  try {
    return await readFile(join(dir, "chat_template.jinja"), "utf8");
  } catch {
    // not there; try the JSON form
  }
  const json = await readJson(dir, "chat_template.json");
  return json ? pickTemplate(json.chat_template, join(dir, "chat_template.json")) : null;
}

/** A template is a string, or a list of {name, template} of which "default" is the chat one. */
function pickTemplate(value: unknown, path: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const entry = value.find((t) => isObject(t) && t.name === "default");
    if (entry && typeof entry.template === "string") return entry.template;
    throw new Error(`${path}: "chat_template" is a list without a {"name": "default"} entry`);
  }
  throw new Error(`${path}: "chat_template" must be a string or a list of {name, template}`);
}

/** A token named in tokenizer_config.json: a string, an AddedToken-like {content}, or null. */
export function tokenName(files: TokenizerFiles, key: string): string | null {
  const value = files.config[key];
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (isObject(value) && typeof value.content === "string") return value.content;
  const path = join(files.dir, "tokenizer_config.json");
  throw new Error(`${path}: "${key}" must be a string, {"content": ...} or null`);
}

/** generation_config.json's `<key>` as a list of ids (it may be a number or a list). */
export function generationIds(files: TokenizerFiles, key: string): number[] {
  const value = files.generationConfig?.[key];
  if (value === undefined || value === null) return [];
  const ids = Array.isArray(value) ? value : [value];
  if (!ids.every((id) => Number.isInteger(id) && id >= 0)) {
    throw new Error(`${join(files.dir, "generation_config.json")}: "${key}" must be a token id or a list of ids`);
  }
  return ids as number[];
}

export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

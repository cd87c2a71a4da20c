// Typed access to parsed command-line values, with errors that name the flag.

import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError, type Values } from './command.ts';
import { CHAT_TEMPLATE_MODES, type ChatTemplateMode, type PromptRenderOptions } from '../../data/chat.ts';

export function str(v: Values, name: string): string;
export function str(v: Values, name: string, dflt: string | null): string | null;
export function str(v: Values, name: string, dflt?: string | null): string | null {
  const x = v[name];
  if (x === undefined) {
    if (dflt === undefined) throw new UsageError(`--${name} is required`);
    return dflt;
  }
  return String(x);
}

/** A required file flag (--data F.jsonl): its value, after checking the file exists (the error names flag and file). */
export function inputFile(v: Values, name: string): string {
  const file = str(v, name);
  if (!existsSync(file)) throw new Error(`--${name} ${file}: no such file (resolved to ${resolve(file)})`);
  if (statSync(file).isDirectory()) throw new Error(`--${name} ${file}: is a directory, not a file`);
  return file;
}

export function num(v: Values, name: string, dflt: number, check: { int?: boolean; min?: number; max?: number } = {}): number {
  const x = v[name];
  if (x === undefined) return dflt;
  const n = Number(x);
  const bad =
    !Number.isFinite(n) ||
    (check.int && !Number.isInteger(n)) ||
    (check.min !== undefined && n < check.min) ||
    (check.max !== undefined && n > check.max);
  if (bad) {
    const range = [check.int ? 'an integer' : 'a number', check.min !== undefined ? `>= ${check.min}` : '', check.max !== undefined ? `<= ${check.max}` : ''].filter(Boolean).join(' ');
    throw new UsageError(`--${name} must be ${range}, got "${String(x)}"`);
  }
  return n;
}

export function flag(v: Values, name: string): boolean {
  return v[name] === true;
}

/** Runtime options shared by every command that runs a model. */
export const runtimeOptions = {
  device: { type: 'string' },
  threads: { type: 'string' },
} as const;

export function runtimeFrom(v: Values): { device: 'cpu' | 'cuda' | 'webgpu'; threads?: number } {
  const device = str(v, 'device', 'cpu')!;
  if (!['cpu', 'cuda', 'webgpu'].includes(device)) throw new UsageError(`--device must be cpu, cuda or webgpu, got "${device}"`);
  const threads = v.threads === undefined ? undefined : num(v, 'threads', 0, { int: true, min: 1 });
  return { device: device as 'cpu' | 'cuda' | 'webgpu', threads };
}

/** --chat-template auto|none|always and --chat-template-kwargs JSON: how prompts are rendered (data/chat.ts), as data.chatTemplate / data.chatTemplateKwargs. */
export const chatOptions = {
  'chat-template': { type: 'string' },
  'chat-template-kwargs': { type: 'string' },
} as const;

/** The flags' PromptRenderOptions; unset flags fall back to `dflt` (e.g. a run config's data section). */
export function chatFrom(v: Values, dflt: PromptRenderOptions = {}): PromptRenderOptions {
  const mode = str(v, 'chat-template', null) ?? dflt.chatTemplate ?? 'auto';
  if (!(CHAT_TEMPLATE_MODES as readonly string[]).includes(mode)) throw new UsageError(`--chat-template must be one of ${CHAT_TEMPLATE_MODES.join(', ')}, got "${mode}"`);
  const text = str(v, 'chat-template-kwargs', null);
  if (text === null) return { chatTemplate: mode as ChatTemplateMode, chatTemplateKwargs: dflt.chatTemplateKwargs };
  let kwargs: unknown;
  try {
    kwargs = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--chat-template-kwargs must be a JSON object, e.g. '{"enable_thinking": false}' (${(e as Error).message})`);
  }
  if (kwargs === null || typeof kwargs !== 'object' || Array.isArray(kwargs)) throw new UsageError(`--chat-template-kwargs must be a JSON object, e.g. '{"enable_thinking": false}', got ${text}`);
  return { chatTemplate: mode as ChatTemplateMode, chatTemplateKwargs: kwargs as Record<string, unknown> };
}

// Run-config sections for what a run is and what it reads: `run`, `student`, `teachers`, `routing`,
// `data`, `rewards`. Field names follow the code they feed (TeacherRoutes, SourceOptions,
// RewardTerm, HttpTeacherOptions); every field has a one-line doc with its unit. Strict objects:
// an unknown key is an error, never a silently ignored typo. Cross-field rules live in rules.ts.

import { z } from 'zod';
import { DEFAULT_FIELDS } from '../../data/sources/record.ts';
import { rewardTypes } from '../../data/rewards/combine.ts';
import { taskNames } from '../../data/tasks/registry.ts';
import { LORA_TARGETS } from '../../student/model/lora.ts';
import { FLAVORS, WIRE_FORMATS } from '../../teacher/wire-formats.ts';

const nonEmpty = () => z.string().min(1);
const count = (min: number) => z.int().min(min);

// ---- run -------------------------------------------------------------------------------------------

export const RunSection = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/)
      .optional()
      .describe('Run directory name under outDir (letters, digits, . _ -); default: a timestamp'),
    notes: z.string().optional().describe('Free text about the run, saved with it; the job ignores it'),
    outDir: nonEmpty().default('runs').describe('Directory holding run directories (path)'),
    seed: count(0).default(0).describe('Seed of every RNG in the run: prompt order, sampling, init (unitless integer)'),
    steps: count(1).default(100).describe('Training steps: each samples promptsPerStep × G rollouts and trains on them (steps)'),
    evalEvery: count(0).default(25).describe('Steps between held-out evaluations (steps; 0 = only after the last step)'),
    evalPrompts: count(1).default(200).describe('Held-out prompts per evaluation (count, greedy decoding); a prompt file evaluates the first this many of data.test'),
    accuracyThreshold: z
      .number()
      .default(1)
      .describe('Prompt-file data: a completion counts as correct when its reward ≥ this (reward units); built-in tasks count exact answers'),
    checkpointEvery: count(1).default(50).describe('Steps between checkpoints (steps; the last step always checkpoints)'),
    keepCheckpoints: count(1).default(3).describe('Checkpoints kept on disk, newest first (count)'),
    maxConsecutiveSkips: count(1)
      .default(3)
      .describe('Stop the job after this many skipped steps in a row (non-finite rewards/scores/gradients, R7; count)'),
  })
  .describe('The job: name, output directory, seed, length and cadences');

// ---- models ----------------------------------------------------------------------------------------

/** Models the project can build itself for the demo (no download). */
export const BUILTIN_MODELS = ['tiny'] as const;

export const LoraSection = z
  .strictObject({
    rank: count(1).default(16).describe('r: the adapters\' inner dimension (count)'),
    alpha: z.number().gt(0).default(32).describe('α: the adapter update is scaled by α / r (unitless)'),
    targets: z
      .array(z.enum(LORA_TARGETS))
      .min(1)
      .default([...LORA_TARGETS])
      .describe('Projections that get adapters, in every layer: any of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj'),
  })
  .describe('LoRA: train adapters W + (α/r)·B·A on a frozen base (PEFT layout); the base stays bit-identical');

export const StudentSection = z
  .union([
    nonEmpty().describe('Hugging Face model directory (config.json, *.safetensors, tokenizer.json; path)'),
    z
      .strictObject({
        path: nonEmpty().describe('Hugging Face model directory (path)'),
        lora: LoraSection.optional(),
      })
      .describe('A model directory, optionally trained through LoRA adapters'),
    z
      .strictObject({
        builtin: z
          .enum(BUILTIN_MODELS)
          .describe('Demo model built in memory: tiny = the ~91k-parameter byte-level Qwen2 of student/model/init.ts, initialised from run.seed'),
        lora: LoraSection.optional(),
      })
      .describe('A built-in demo model'),
  ])
  .describe('The student π_θ: an HF model directory (path), {path, lora} or {builtin: name}');

type Student = z.infer<typeof StudentSection>;

/** The student's model directory as configured, or null for a built-in model. */
export function studentPath(s: Student): string | null {
  return typeof s === 'string' ? s : 'path' in s ? s.path : null;
}

/** The student's LoRA settings, or null for full fine-tuning. */
export function studentLora(s: Student): z.infer<typeof LoraSection> | null {
  return typeof s === 'string' ? null : (s.lora ?? null);
}

const teacherCommon = {
  id: nonEmpty().default('teacher').describe('Name used by routing, the score cache and metrics'),
  tokenizer: nonEmpty().optional().describe("Tokenizer directory (path); default: the model's own (local) or the student's (http). One other than the student's is scored on the aligned path (its own tokens and chat template, mapped back by byte offsets; the preflight log says which path)"),
  temperature: z.number().gt(0).default(1).describe('τ the teacher scores at: log-probs of softmax(logits/τ) (unitless; keep 1 unless you mean it)'),
};

const LocalTeacher = z
  .strictObject({
    ...teacherCommon,
    kind: z.literal('local').describe('A model on this machine, scored in a worker thread'),
    path: nonEmpty().describe('HF model directory, or an ONNX causal-LM file (.onnx; then set tokenizer) (path)'),
  })
  .describe('Local teacher');

const HttpTeacher = z
  .strictObject({
    ...teacherCommon,
    kind: z.literal('http').describe('An OpenAI-compatible server returning prompt log-probs (vLLM, SGLang, opd teacher serve)'),
    url: z.string().regex(/^https?:\/\/\S+$/).describe('Server base URL, e.g. http://gpu-01:8000 (a trailing /v1 is ignored)'),
    servedModel: nonEmpty().describe('Model name sent to the server and looked up in /v1/models'),
    flavor: z
      .enum(['auto', ...FLAVORS])
      .default('auto')
      .describe(`Wire format; auto probes ${FLAVORS.map((f) => WIRE_FORMATS[f].path).join(', then ')}`),
    apiKeyEnv: nonEmpty().optional().describe('Environment variable holding the bearer token (the token itself never goes in a config)'),
    concurrency: count(1).default(8).describe('Most HTTP requests in flight at once (count)'),
    timeoutMs: count(1).default(60_000).describe('Timeout of one attempt, headers and body (ms)'),
    retries: count(0).default(4).describe('Retries after the first attempt, with exponential backoff and jitter (count)'),
  })
  .describe('HTTP teacher');

export const TeachersSection = z
  .array(z.discriminatedUnion('kind', [LocalTeacher, HttpTeacher]).describe('One teacher π_T'))
  .default([])
  .describe('Teachers π_T, each {id, kind: local | http, ...}; may be empty only with algo.blend.mode grpo');

export const RoutingSection = z
  .strictObject({
    byTag: z.record(z.string(), nonEmpty()).default({}).describe('Prompt tag → teacher id (multi-teacher OPD)'),
    defaultTeacher: nonEmpty().optional().describe('Teacher id for prompts without a tag; default: the only teacher, when there is one'),
  })
  .describe('Which teacher scores each prompt (by its tag)');

// ---- data ------------------------------------------------------------------------------------------

const sourceCommon = {
  maxPromptTokens: count(1).optional().describe('Longest allowed prompt (tokens, BOS included; a conversation counts its rendered chat template); default: no limit'),
  onTooLong: z.enum(['reject', 'filter']).default('reject').describe('A prompt over maxPromptTokens: reject (counts toward maxRejectFraction) or filter (dropped, counted); never cut'),
  maxRejectFraction: z.number().min(0).max(1).default(0.01).describe('Loading fails when rejected / read records exceeds this (fraction)'),
  chatTemplate: z
    .enum(['auto', 'none', 'always'])
    .default('auto')
    .describe("Render prompts with the student's chat template (+ generation prompt): auto = conversational records only, always = every record (a plain prompt is one user turn), none = never (a conversation is reduced to its last user turn)"),
  chatTemplateKwargs: z
    .record(z.string(), z.unknown())
    .default({})
    .describe('Extra variables passed to the chat template, e.g. {"enable_thinking": false} for Qwen3'),
};

const TaskData = z
  .strictObject({
    task: z.enum(taskNames() as [string, ...string[]]).describe('Built-in task generating prompts and their reward'),
    taskConfig: z.record(z.string(), z.unknown()).default({}).describe("The task's own knobs (validated by the task; e.g. arithmetic {digits, ops})"),
    trainSize: count(1).optional().describe('Distinct train prompts to generate (count); default: promptsPerStep × steps'),
    testSize: count(1).default(500).describe('Held-out test prompts to generate for evaluation (count)'),
    ...sourceCommon,
  })
  .describe('Prompts from a built-in task');

const FileData = z
  .strictObject({
    path: nonEmpty().describe('Prompt file: JSONL, Parquet or Arrow IPC (path)'),
    format: z.enum(['jsonl', 'parquet', 'arrow']).optional().describe('File format; default: from the extension'),
    fields: z
      .strictObject({
        prompt: nonEmpty().default(DEFAULT_FIELDS.prompt).describe('Column/key holding the prompt text'),
        answer: nonEmpty().default(DEFAULT_FIELDS.answer).describe('Column/key holding the expected answer'),
        tag: nonEmpty().default(DEFAULT_FIELDS.tag).describe('Column/key holding the routing/metrics tag (optional per record)'),
        id: nonEmpty().default(DEFAULT_FIELDS.id).describe('Column/key holding the record id (optional per record)'),
        messages: nonEmpty().default(DEFAULT_FIELDS.messages).describe('Column/key holding a conversation (list of {role, content}), read when the prompt column is absent'),
      })
      .prefault({})
      .describe('Which column/key holds each record field'),
    requireAnswer: z.boolean().default(true).describe('A record without an answer is a reject (false: its answer is "")'),
    test: z
      .union([z.number().gt(0).lt(1), nonEmpty()])
      .optional()
      .describe('Held-out split, never trained on: a prompt file read like path (path), or the fraction of path held out by run.seed (fraction in (0, 1)); default: none, no held-out evaluation'),
    ...sourceCommon,
  })
  .describe('Prompts from a file');

export const DataSection = z.union([TaskData, FileData]).describe('Prompt source: {task, ...} (built-in task) or {path, ...} (prompt file)');

// ---- rewards ---------------------------------------------------------------------------------------

export const RewardTermSchema = z
  .looseObject({
    type: z.enum(rewardTypes() as [string, ...string[]]).describe('Reward registry entry; its other keys are its params'),
    weight: z.number().default(1).describe('Multiplies this term (unitless; may be negative)'),
  })
  .describe('One weighted reward term {type, weight, ...params}');

export const RewardsSection = z
  .array(RewardTermSchema)
  .default([])
  .describe("Reward terms, summed with their weights; empty = the task's own reward (a prompt file needs at least one)");

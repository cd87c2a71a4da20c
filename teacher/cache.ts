// The score cache: teacher scores stored as Arrow shards (data/schemas.ts teacherScoreSchema),
// keyed by a hash of (teacher identity, top-k, start, token ids), so a re-run or an ablation never
// asks the teacher twice for the same sequence. `CachedTeacher` wraps any Teacher: hits come from
// the cache, misses go to the teacher, are validated, stored, then returned.
//
// Scores are stored as float32 and every returned score is rounded to float32, fresh or cached, so
// a run that hits the cache computes exactly what a run that scored afresh did.

import { createHash } from 'node:crypto';
import { type TeacherScoreRow, tableToTeacherScores, teacherScoreSchema, teacherScoresToTable } from '../data/schemas.ts';
import { renameSync } from 'node:fs';
import { CorruptArtifactError, type ShardEntry, listShards, readShard, writeShard } from '../data/store/shards.ts';
import { type Teacher, type TeacherIdentity, type TeacherRequest, type TeacherScore, validateScore } from './types.ts';

export function scoreKey(id: TeacherIdentity, topK: number, req: TeacherRequest): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([id.modelId, id.tokenizerFingerprint, id.vocabSize, topK, req.start]));
  h.update(Int32Array.from(req.ids));
  return h.digest('hex');
}

export class ScoreCache {
  private rows = new Map<string, TeacherScoreRow>();
  private seq = 0;

  private constructor(readonly dir: string) {}

  /** Rows kept from a damaged cache, written with the next put (a rebuilt cache starts empty on disk). */
  private unsaved: TeacherScoreRow[] = [];

  /**
   * Open (or create) a cache directory, verifying every committed shard. A damaged cache (a shard or
   * the manifest cut or changed) is rebuilt rather than stopping the run: it only holds what the
   * teacher can score again. The damaged directory is moved aside to `<dir>.damaged-<time>`, the rows
   * of the shards that verify are kept, `warn` says so, and lost scores are asked again.
   */
  static open(dir: string, warn: (message: string) => void = () => {}): ScoreCache {
    const c = new ScoreCache(dir);
    const damaged: string[] = [];
    let shards: ShardEntry[] = [];
    try {
      shards = listShards(dir);
    } catch (e) {
      if (!(e instanceof CorruptArtifactError)) throw e;
      damaged.push(`${e.file} (${e.reason})`);
    }
    for (const s of shards) {
      let rows: TeacherScoreRow[];
      try {
        rows = tableToTeacherScores(readShard(dir, s.file, teacherScoreSchema));
      } catch (e) {
        if (!(e instanceof CorruptArtifactError)) throw e;
        damaged.push(`${e.file} (${e.reason})`);
        continue;
      }
      for (const r of rows) c.rows.set(r.key, r);
      c.seq++;
    }
    if (damaged.length) {
      const aside = `${dir}.damaged-${new Date().toISOString().replace(/[-:.]/g, '')}-${process.pid}`;
      renameSync(dir, aside);
      c.unsaved = [...c.rows.values()];
      c.seq = 0;
      warn(`the score cache ${dir} is damaged: ${damaged.join('; ')}. Rebuilding it: ${c.unsaved.length} scores kept from the shards that verify, ` +
        `the rest are asked from the teacher again; the damaged copy is in ${aside} (delete it once this run is fine)`);
    }
    return c;
  }

  get size(): number {
    return this.rows.size;
  }

  get(key: string): TeacherScore | undefined {
    const r = this.rows.get(key);
    if (!r) return undefined;
    const s: TeacherScore = { logprobs: [...r.logprobs] };
    if (r.topK) {
      const n = r.logprobs.length;
      s.topIds = Array.from({ length: n }, (_, t) => r.topIds.slice(t * r.topK, (t + 1) * r.topK));
      s.topLogprobs = Array.from({ length: n }, (_, t) => r.topLogprobs.slice(t * r.topK, (t + 1) * r.topK));
    }
    return s;
  }

  /** The puts in flight, one after another (see put). */
  private writing: Promise<void> = Promise.resolve();

  /**
   * Commit new rows as one shard. Puts run one at a time: a step scores its sampling slices
   * concurrently, and two shard writes at once would both read the manifest before either wrote it
   * (one entry lost) and could pick the same shard name (one file's bytes under the other's entry).
   */
  put(rows: readonly TeacherScoreRow[]): Promise<void> {
    const next = this.writing.then(() => this.commit(rows));
    this.writing = next.catch(() => {}); // a failed put fails its caller; the next one still runs
    return next;
  }

  private async commit(rows: readonly TeacherScoreRow[]): Promise<void> {
    const fresh = [...this.unsaved, ...rows.filter((r) => !this.rows.has(r.key))];
    if (!fresh.length) return;
    await writeShard(this.dir, `scores-${String(this.seq).padStart(6, '0')}-${process.pid}-${Date.now()}`, teacherScoresToTable(fresh));
    this.seq++;
    this.unsaved = [];
    for (const r of fresh) this.rows.set(r.key, r);
  }
}

const f32 = (xs: readonly number[]) => xs.map((x) => Math.fround(x));

export class CachedTeacher implements Teacher {
  /** Teacher calls made (sequences actually sent), for tests and metrics. */
  scored = 0;
  hits = 0;

  constructor(
    private readonly inner: Teacher,
    private readonly cache: ScoreCache,
  ) {}

  get identity(): TeacherIdentity {
    return this.inner.identity;
  }

  async score(reqs: readonly TeacherRequest[], opts: { topK?: number } = {}): Promise<TeacherScore[]> {
    const k = opts.topK ?? 0;
    const keys = reqs.map((r) => scoreKey(this.identity, k, r));
    const out: (TeacherScore | undefined)[] = keys.map((key) => this.cache.get(key));
    const missing = out.flatMap((s, i) => (s ? [] : [i]));
    this.hits += reqs.length - missing.length;
    if (missing.length) {
      const fresh = await this.inner.score(missing.map((i) => reqs[i]!), opts);
      fresh.forEach((s, j) => validateScore(reqs[missing[j]!]!, s, missing[j]!, k));
      const rows = fresh.map((s, j) => toRow(keys[missing[j]!]!, this.identity.modelId, reqs[missing[j]!]!, s, k));
      await this.cache.put(rows);
      this.scored += missing.length;
      missing.forEach((i) => (out[i] = this.cache.get(keys[i]!)));
    }
    return out as TeacherScore[];
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

function toRow(key: string, teacherId: string, req: TeacherRequest, s: TeacherScore, k: number): TeacherScoreRow {
  return {
    key,
    teacherId,
    start: req.start,
    ids: req.ids,
    logprobs: f32(s.logprobs),
    topK: k,
    topIds: k ? s.topIds!.flat() : [],
    topLogprobs: k ? f32(s.topLogprobs!.flat()) : [],
  };
}

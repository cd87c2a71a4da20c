// Non-finite rewards and teacher scores become a skipped step, not a stopped job (docs/reliability.md R7).
//
// A reward that comes out NaN/±Inf raises NonFiniteRewardError (data/rewards), and a teacher whose
// log-probs are NaN/±Inf raises a TeacherScoreError with `nonFinite` (teacher/types.ts validateScore,
// the HTTP teacher's checks): a backend never returns such a value as data. The loop wraps its reward
// and teachers with `guardNonFinite`: those two errors turn into NaN in the rollout record (the
// reward, or every teacher log-prob of the requests of the failed call), and the message is noted.
// The advantages stage then finds the NaN and the loop skips the step and counts it; K in a row stop
// the job. Every other error (a reward that throws or returns a non-number, a token mismatch, a dead
// teacher) still stops the job.
//
// What the rollout shard stores for such a step: the rows as sampled, with NaN where the reward or
// the teacher log-probs are missing. NaN is no score (the advantages stage refuses it; the teacher's
// score cache never sees it), so a resume that replays the shard skips the step again, without
// calling the reward or the teacher: the same weights as the run that wrote it (exact resume, R6).
// The metrics line of a replayed skip names the non-finite value it finds in the shard; the live
// one names the reward term or teacher request and record.

import { NonFiniteRewardError, type RewardFn } from '../../data/rewards/index.ts';
import { type Teacher, type TeacherRequest, TeacherScoreError } from '../../teacher/types.ts';
import type { TeacherSet } from './rollout-step.ts';

/** What a guarded reward or teacher noted while one step was prepared. */
export class SkipNotes {
  private notes: string[] = [];

  add(message: string): void {
    this.notes.push(message);
  }

  /**
   * The step's skip reason given what the advantages stage found (`found`, undefined when nothing):
   * the first noted message in sorted order (notes arrive in completion order, which varies), or
   * `found` itself when nothing was noted (a replayed step). Clears the notes.
   */
  take(found: string | undefined): string | undefined {
    const notes = [...this.notes].sort();
    this.notes = [];
    if (!found) return undefined;
    return notes.length ? `${notes[0]}${notes.length > 1 ? ` (and ${notes.length - 1} more)` : ''}` : found;
  }
}

/** `reward`, with a NaN/±Inf result returned as NaN (and noted) instead of thrown. */
export function guardReward(reward: RewardFn, notes: SkipNotes): RewardFn {
  return (prompt, completion, record) =>
    reward(prompt, completion, record).catch((e: unknown) => {
      if (!(e instanceof NonFiniteRewardError)) throw e;
      notes.add(e.message);
      return NaN;
    });
}

/** `teacher`, with a non-finite score answered as NaN log-probs for every request of the call (and noted). */
export function guardTeacher(teacher: Teacher, name: string, notes: SkipNotes): Teacher {
  const nan = (r: TeacherRequest) => new Array<number>(Math.max(0, r.ids.length - r.start)).fill(NaN);
  return {
    get identity() {
      return teacher.identity;
    },
    score: (reqs, opts) =>
      teacher.score(reqs, opts).catch((e: unknown) => {
        if (!(e instanceof TeacherScoreError && e.nonFinite)) throw e;
        notes.add(`teacher ${name}: ${e.message}`);
        const k = opts?.topK ?? 0;
        // with top-k asked, k entries per position as the rollout record expects: id 0 with a NaN log-prob
        return reqs.map((r) => (k ? { logprobs: nan(r), topIds: nan(r).map(() => new Array<number>(k).fill(0)), topLogprobs: nan(r).map(() => new Array<number>(k).fill(NaN)) } : { logprobs: nan(r) }));
      }),
    close: () => teacher.close(),
  };
}

/** The job's reward and teachers, guarded; the same `notes` collect what all of them saw. */
export function guardNonFinite<J extends { reward: RewardFn; teacher: Teacher | null; teachers?: TeacherSet }>(job: J, notes: SkipNotes): J {
  return {
    ...job,
    reward: guardReward(job.reward, notes),
    teacher: job.teacher && guardTeacher(job.teacher, job.teacher.identity.modelId, notes),
    ...(job.teachers ? { teachers: { ...job.teachers, byId: new Map([...job.teachers.byId].map(([id, t]) => [id, guardTeacher(t, id, notes)])) } } : {}),
  };
}

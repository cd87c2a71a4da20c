// Multi-teacher routing (docs/algorithms.md §3, routing): each prompt may carry a tag that picks the teacher
// scoring all of its rollouts, as in NeMo-RL's multi-teacher OPD (MOPD). The gap d of a rollout then uses
// that teacher's log-probs.
//
// Contract: an untagged prompt (tag undefined) goes to `defaultTeacher`, and is an error when there is
// none. A tag that is not in `byTag` is always an error listing the known tags, even when a default
// exists: a misspelt tag must not quietly fall back to the wrong teacher.

export interface TeacherRoutes {
  /** tag → teacher id. */
  byTag: Readonly<Record<string, string>>;
  /** Teacher for prompts without a tag. */
  defaultTeacher?: string;
}

/**
 * Which teacher scores each rollout: result[k][i] is the teacher id for rollout i of prompt k.
 * tags_P[k] is prompt k's tag, groupSizes_P[k] its number of rollouts.
 */
export function routeTeachers(
  tags_P: readonly (string | undefined)[],
  groupSizes_P: readonly number[],
  routes: TeacherRoutes,
): string[][] {
  if (tags_P.length !== groupSizes_P.length) {
    throw new RangeError(`${tags_P.length} prompt tags but ${groupSizes_P.length} group sizes`);
  }
  const known = Object.keys(routes.byTag).sort();
  return tags_P.map((tag, k) => {
    const size = groupSizes_P[k];
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`groupSizes_P[${k}] = ${size} must be an integer ≥ 0`);
    return new Array<string>(size).fill(teacherFor(tag, k, routes, known));
  });
}

function teacherFor(tag: string | undefined, k: number, routes: TeacherRoutes, known: readonly string[]): string {
  if (tag === undefined) {
    if (routes.defaultTeacher === undefined) {
      throw new RangeError(`prompt ${k} has no tag and no default teacher is configured; known tags: ${known.join(', ') || '(none)'}`);
    }
    return routes.defaultTeacher;
  }
  if (!Object.hasOwn(routes.byTag, tag)) {
    throw new RangeError(`prompt ${k} has tag '${tag}', which routes to no teacher; known tags: ${known.join(', ') || '(none)'}`);
  }
  return routes.byTag[tag];
}

// The run config's shape: every section, before the cross-field rules (rules.ts) are attached in
// pipeline/config.ts. The compile-time checks at the bottom keep the config's vocabulary equal to the
// code's: renaming a mode in pipeline/algo or student/train without renaming it here fails typecheck.

import { z } from 'zod';
import type { Device } from '../../engine/runtime/device.ts';
import type { SourceFormat, SourceOptions } from '../../data/sources/types.ts';
import type { ChatTemplateMode } from '../../data/chat.ts';
import type { GroupMode } from '../algo/advantages.ts';
import type { BlendMode } from '../algo/blend.ts';
import type { KlEstimator } from '../algo/estimators.ts';
import type { LambdaScheduleKind } from '../algo/teacher.ts';
import type { Aggregation } from '../../student/train/aggregate.ts';
import type { PolicyLossType } from '../../student/train/policy.ts';
import { DataSection, RewardsSection, RoutingSection, RunSection, StudentSection, TeachersSection } from './sources.ts';
import { AlgoSection, LossSection, RolloutSection, RuntimeSection, TrainSection } from './training.ts';

export const RunConfigShape = z
  .strictObject({
    run: RunSection.prefault({}),
    student: StudentSection,
    teachers: TeachersSection,
    routing: RoutingSection.prefault({}),
    data: DataSection,
    rewards: RewardsSection,
    rollout: RolloutSection.prefault({}),
    algo: AlgoSection.prefault({}),
    loss: LossSection.prefault({}),
    train: TrainSection.prefault({}),
    runtime: RuntimeSection.prefault({}),
  })
  .describe('A whole opd run');

/** The validated run config, every default filled in. */
export type RunConfig = z.output<typeof RunConfigShape>;
/** What a config file may hold (defaults may be left out). */
export type RunConfigInput = z.input<typeof RunConfigShape>;

// ---- the vocabulary matches the code --------------------------------------------------------------

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
type TaskData = Extract<RunConfig['data'], { task: string }>;
type FileData = Extract<RunConfig['data'], { path: string }>;

export type VocabularyChecks = [
  Assert<Same<RunConfig['algo']['advantage']['mode'], GroupMode>>,
  Assert<Same<RunConfig['algo']['blend']['mode'], BlendMode>>,
  Assert<Same<RunConfig['algo']['blend']['distillEstimator'], KlEstimator>>,
  Assert<Same<RunConfig['algo']['lambdaSchedule']['kind'], LambdaScheduleKind>>,
  Assert<Same<RunConfig['loss']['type'], PolicyLossType>>,
  Assert<Same<RunConfig['loss']['aggregation'], Aggregation>>,
  Assert<Same<RunConfig['runtime']['device'], Device>>,
  Assert<Same<NonNullable<FileData['format']>, SourceFormat>>,
  Assert<Same<TaskData['onTooLong'], NonNullable<SourceOptions['onTooLong']>>>,
  Assert<Same<RunConfig['data']['chatTemplate'], ChatTemplateMode>>,
];

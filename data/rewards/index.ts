// Public surface of data/rewards: build a combined reward from terms, or load one user module.

export { combine, REWARDS, rewardTypes } from './combine.ts';
export { BUILTIN_REWARDS, firstNumber } from './builtin.ts';
export { loadUserReward, type LoadUserRewardOptions } from './user.ts';
export { NonFiniteRewardError } from './types.ts';
export type { RewardContext, RewardFactory, RewardFn, RewardTerm, UserRewardFn } from './types.ts';

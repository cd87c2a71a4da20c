#!/usr/bin/env node
// The `opd` command. opd ships TypeScript sources and runs them through tsx's loader, so there is
// no build step between a checkout and a run.
import { register } from 'tsx/esm/api';

register();
await import('../pipeline/cli/main.ts');

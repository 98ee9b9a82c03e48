#!/bin/bash
cd /work/main
for round in 1 2; do for v in 32k 128k; do
  echo "=== $(date -u +%H:%M:%S) round $round $v"
  target/release/bench latency --scenarios /work/runs/s5/lat-recv.toml --scenario lat-$v --max-rate 4346902 --points 40,80 --duration 10 --out /work/runs/s5/latab-$v-$round 2>&1 | grep -E "at (40|80)%"
  grep "^| ringest | [48]0 " /work/runs/s5/latab-$v-$round/latency.md | cut -c1-260
done; done
echo "=== end $(date -u +%H:%M:%S)"

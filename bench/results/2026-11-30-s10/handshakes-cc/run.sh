#!/bin/bash
# A/B: bench handshakes with loadgen on the system's congestion control (bbr; the bench binary before
# handshakes passed --tcp-congestion) and on cubic (the current bench). Same ringest and loadgen.
cd /work/main
OUT=bench/results/2026-11-30-s10/handshakes-cc
for round in 1 2; do
  timeout 900 /work/runs/s10/bench-hs-system handshakes --bin-dir /work/main/target/release --duration 5 --repeat 3 --out $OUT/system-$round > /work/runs/s10/hs/system-$round.log 2>&1
  timeout 900 target/release/bench handshakes --duration 5 --repeat 3 --out $OUT/cubic-$round > /work/runs/s10/hs/cubic-$round.log 2>&1
done

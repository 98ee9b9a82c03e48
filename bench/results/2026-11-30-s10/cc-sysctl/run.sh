#!/bin/bash
# A/B: system default congestion control bbr (this VM's) vs cubic; ringest and syslog-ng, mtls-large-8
cd /work/main
for round in 1 2; do
  for cc in bbr cubic; do
    sysctl -w net.ipv4.tcp_congestion_control=$cc >/dev/null
    timeout 900 target/release/bench compare --only ringest,syslog-ng --pick mtls-large-8 --duration 8 --repeat 2 --aes-seconds 0 --out /work/runs/s10/cc/$cc-$round > /work/runs/s10/cc/$cc-$round.log 2>&1
  done
done
sysctl -w net.ipv4.tcp_congestion_control=bbr

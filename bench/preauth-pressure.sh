#!/usr/bin/env bash
# preauth-pressure.sh [SECONDS] - hotline's memory (release build) while 24 sources, each in a
# /48 of its own and under every default flood limit, send 20 unauthenticated INVITEs of 12 kB a
# second for SECONDS (default 30, at most 120), and an authenticated call is placed meanwhile.
#
# Runs the test an_authenticated_call_completes_under_preauth_invites_from_many_sources of
# tests/strangers.rs (which asserts the call and one 407 per INVITE) with the longer duration,
# and prints its memory line: VmRSS before and after, VmHWM (peak). Needs root (a network
# namespace), like the test.
set -euo pipefail
cd "$(dirname "$0")/.."
HOTLINE_PRESSURE_SECONDS=${1:-30} nice cargo test --release --test strangers \
    an_authenticated_call_completes_under_preauth_invites_from_many_sources -- --nocapture 2>&1 |
    grep -E '^memory:|^test result|panicked'

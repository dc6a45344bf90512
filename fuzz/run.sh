#!/bin/bash
# run.sh -- runs every libFuzzer target of $FUZZERS (set by make check) for
# FUZZ_SECONDS each (default 20) from a scratch corpus; any crash, leak or
# sanitizer report fails the test. Runs in the build tree.
set -eo pipefail
secs=${FUZZ_SECONDS:-20}
for target in ${FUZZERS:?set by make check}; do
	corpus="$target-corpus"
	mkdir -p "$corpus"
	echo "fuzzing $target for ${secs}s"
	"./$target" -max_total_time="$secs" -max_len=65536 -timeout=10 \
		-artifact_prefix="./$target-" "$corpus" 2>&1 | tail -n 3
done

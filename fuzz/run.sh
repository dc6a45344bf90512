#!/bin/bash
# run.sh -- runs every libFuzzer target of $FUZZERS (set by make check and
# make fuzz-long) for FUZZ_SECONDS each (default 20), starting from the seed
# corpus in fuzz/corpus/TARGET of the source tree; what a run discovers is
# kept in TARGET-corpus of the build tree for the next run. Any crash, leak
# or sanitizer report fails the test. Runs in the build tree.
set -eo pipefail
secs=${FUZZ_SECONDS:-20}
seeds=${SRCDIR:-$(dirname "$0")/..}/fuzz/corpus
for target in ${FUZZERS:?set by make check}; do
	corpus="$target-corpus"
	mkdir -p "$corpus"
	name=$(basename "$target")
	echo "fuzzing $target for ${secs}s"
	"./$target" -max_total_time="$secs" -max_len=65536 -timeout=10 \
		-artifact_prefix="./$target-" "$corpus" "$seeds/$name" 2>&1 | tail -n 3
done

#!/bin/bash
# run.sh -- runs every libFuzzer target of $FUZZERS (set by make check and
# make fuzz-long) for FUZZ_SECONDS each (default 20), starting from the seed
# corpus in fuzz/corpus/TARGET of the source tree; what a run discovers is
# kept in TARGET-corpus of the build tree for the next run. Any crash, leak
# or sanitizer report fails the test (libFuzzer's own exit status, 77, would
# read as a skip) and shows the end of the report. Runs in the build tree.
set -o pipefail
secs=${FUZZ_SECONDS:-20}
seeds=${SRCDIR:-$(dirname "$0")/..}/fuzz/corpus
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
for target in ${FUZZERS:?set by make check}; do
	corpus="$target-corpus"
	mkdir -p "$corpus"
	name=$(basename "$target")
	echo "fuzzing $target for ${secs}s"
	if "./$target" -max_total_time="$secs" -max_len=65536 -timeout=10 \
		-artifact_prefix="./$target-" "$corpus" "$seeds/$name" > "$report" 2>&1; then
		tail -n 3 "$report"
	else
		tail -n 80 "$report"
		echo "FAIL: $target"
		status=1
	fi
done
exit $status

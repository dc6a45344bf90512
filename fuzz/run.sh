#!/bin/bash
# run.sh -- runs every libFuzzer target briefly (FUZZ_SECONDS each, default 20)
# from a scratch corpus; any crash, leak or sanitizer report fails the test.
set -eo pipefail
cd "$(dirname "$0")"
secs=${FUZZ_SECONDS:-20}
for target in fuzz_http fuzz_ws fuzz_ipc fuzz_jwt; do
	corpus="corpus-$target"
	mkdir -p "$corpus"
	echo "fuzzing $target for ${secs}s"
	"./$target" -max_total_time="$secs" -max_len=65536 -timeout=10 \
		-artifact_prefix="./$target-" "$corpus" 2>&1 | tail -n 3
done

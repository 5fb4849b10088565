#!/usr/bin/env bash
# timed.sh "what" command...: runs a long build step and reports it, with the
# time taken so far every 30 seconds, instead of minutes of silence.
set -euo pipefail
what=$1
shift
start=$SECONDS
echo ">> $what"
"$@" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT INT TERM
while kill -0 "$pid" 2>/dev/null; do
	for _ in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "   ... $what: $((SECONDS - start))s so far"
	fi
done
trap - EXIT INT TERM
status=0
wait "$pid" || status=$?
if [ "$status" -ne 0 ]; then
	echo "!! $what failed after $((SECONDS - start))s" >&2
	exit "$status"
fi
echo "   $what: done in $((SECONDS - start))s"

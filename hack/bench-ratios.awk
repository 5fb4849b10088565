# bench-ratios.awk: reads `go test -bench` output and prints the webhook
# handlers' time per request as ratios to the baselines measured in the same
# run (BenchmarkHandlers/baseline=...), so results compare across machines.
/^cpu:/ { cpu = substr($0, 6) }
/^BenchmarkHandlers\// {
	name = $1
	sub(/^BenchmarkHandlers\//, "", name)
	sub(/-[0-9]+$/, "", name)
	for (i = 2; i <= NF; i++) if ($(i + 1) == "ns/op") ns[name] = $i
	order[++n] = name
}
END {
	validate = ns["baseline=decode-only-validator"]
	mutate = ns["baseline=naive-mutator"]
	if (!validate || !mutate) { print "no baselines in the benchmark output" > "/dev/stderr"; exit 1 }
	printf "\nhandler cost per request (%s), relative to baselines of the same run\n", cpu
	printf "%-34s %10s %8s\n", "benchmark", "µs/req", "ratio"
	for (i = 1; i <= n; i++) {
		name = order[i]
		base = (name ~ /^mutate/ || name ~ /naive/) ? mutate : validate
		printf "%-34s %10.0f %7.2fx\n", name, ns[name] / 1000, ns[name] / base
	}
}

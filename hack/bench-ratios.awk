# bench-ratios.awk: reads `go test -bench BenchmarkHandlers -benchmem -count N`
# output and prints each handler's time per request, as the median of the N
# runs, with its ratio to the baseline of the same run
# (BenchmarkHandlers/baseline=...), so that results compare across machines.
# With -v rows=FILE it also appends the results as markdown table rows.
/^cpu:/ { cpu = substr($0, 6) }
/^BenchmarkHandlers\// {
	name = $1
	sub(/^BenchmarkHandlers\//, "", name)
	sub(/-[0-9]+$/, "", name)
	if (!(name in runs)) order[++n] = name
	k = ++runs[name]
	for (i = 2; i < NF; i++) {
		if ($(i + 1) == "ns/op") ns[name, k] = $i
		if ($(i + 1) == "B/op") bytes[name, k] = $i
		if ($(i + 1) == "allocs/op") allocs[name, k] = $i
	}
}

END {
	validate = "baseline=decode-only-validator"
	mutate = "baseline=naive-mutator"
	if (!(validate in runs) || !(mutate in runs)) { print "no baselines in the benchmark output" > "/dev/stderr"; exit 1 }
	printf "\nhandler cost per request (%s), median of %d runs, relative to the baselines of the same run\n", cpu, runs[validate]
	printf "%-34s %10s %8s %10s %10s\n", "benchmark", "µs/req", "ratio", "B/req", "allocs/req"
	for (i = 1; i <= n; i++) {
		name = order[i]
		base = (name ~ /^mutate/ || name == mutate) ? mutate : validate
		t = median(ns, name)
		ratio = t / median(ns, base)
		printf "%-34s %10.0f %7.2fx %10d %10d\n", name, t / 1000, ratio, median(bytes, name), median(allocs, name)
		if (rows != "" && name !~ /^baseline/) {
			printf "| Handler CPU, %s (%s) | %.0f µs, %d allocs | %.0f µs, %d allocs | %.2fx |\n",
				name, (base == mutate ? "vs naive PatchResponseFromRaw mutator; goal ≤ 0.5x" : "vs decode-only validator; goal ≤ 1.0x"),
				t / 1000, median(allocs, name), median(ns, base) / 1000, median(allocs, base), ratio >> rows
		}
	}
}

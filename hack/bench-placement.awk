# bench-placement.awk: reads `go test -bench 'BenchmarkCoverage|BenchmarkLargeAffinity' -count N`
# output and appends (-v rows=FILE) the two placement cost cases as markdown
# table rows, medians of the N runs: coverage on a fleet where every node has
# unique labels against a pooled fleet of the same size, and what placement
# adds to a validation whose template has 10,000 required terms (node rules
# on against off, same request).
/^Benchmark(Coverage|LargeAffinity)\// {
	name = $1
	sub(/-[0-9]+$/, "", name)
	k = ++runs[name]
	for (i = 2; i < NF; i++) if ($(i + 1) == "ns/op") ns[name, k] = $i
}

END {
	unique = "BenchmarkCoverage/nodes=10000/fleet=unique/by-class"
	pooled = "BenchmarkCoverage/nodes=10000/fleet=pooled/by-class"
	if (!(unique in runs) || !(pooled in runs)) { print "no coverage benchmarks in the output" > "/dev/stderr"; exit 1 }
	printf "| Placement question, 10,000 nodes, every node with unique labels vs a pooled fleet | %.1f µs | %.1f µs | %.2fx |\n",
		median(ns, unique) / 1000, median(ns, pooled) / 1000, median(ns, unique) / median(ns, pooled) >> rows
	for (listed = 1; listed <= 2; listed++) {
		what = listed == 1 ? "zones" : "hostnames"
		on = "BenchmarkLargeAffinity/terms=10000/" what "/node-rules=on"
		off = "BenchmarkLargeAffinity/terms=10000/" what "/node-rules=off"
		if (!(on in runs) || !(off in runs)) { print "no large-affinity benchmarks in the output" > "/dev/stderr"; exit 1 }
		printf "| Validate, 10,000 required terms listing %s, 5,000 nodes, node rules on vs off (%s) | %.1f ms | %.1f ms | %+.1f ms |\n",
			what, (what == "zones" ? "evaluated" : "refused before the work"), median(ns, on) / 1e6, median(ns, off) / 1e6, (median(ns, on) - median(ns, off)) / 1e6 >> rows
	}
}

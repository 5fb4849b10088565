# bench-median.awk: the median of a benchmark's runs, shared by the awk
# programs of hack/bench.sh (awk -f bench-median.awk -f ...). values[name, k]
# holds the k-th of runs[name] runs.
function median(values, name,    i, j, m, v, tmp) {
	m = runs[name]
	for (i = 1; i <= m; i++) v[i] = values[name, i] + 0
	for (i = 2; i <= m; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { tmp = v[j]; v[j] = v[j - 1]; v[j - 1] = tmp }
	return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}

# Latency percentile spectra.  Called by report.py:
#   gnuplot -e "dat1='F'; titles1='...'; dat2='F'; titles2='...';
#               out='F.png'; ttl='...'" latency.gp
# Each data file holds one block per series (blocks end with two blank
# lines): x = 100 / (100 - percentile), so 2 = p50, 100 = p99 and
# 100000 stands for the maximum; y = microseconds.
set terminal pngcairo size 1300,560 font "sans,10" noenhanced
set output out
set datafile missing "NaN"
set logscale xy
set format y "%g"
set xrange [1:200000]
set xtics ("p10" 1.111, "p50" 2, "p90" 10, "p99" 100, "p99.9" 1000, \
	"p99.99" 10000, "max" 100000)
set ylabel "microseconds (log scale)"
set xlabel "percentile"
set grid xtics ytics
set key top left
set multiplot layout 1,2 title ttl
# A workload subset (BENCH_WORKLOADS) may leave one panel without data:
# it then says so instead of failing the whole report.
set title "write() latency: one 200 B record per write (append-1rec)"
if (words(titles1) > 0) {
	plot for [i=1:words(titles1)] dat1 index (i-1) using 1:2 \
		with linespoints title word(titles1, i) linecolor i \
		pointtype 7 pointsize 0.6
} else {
	set label 1 "not measured in this run" at graph 0.5, 0.5 center
	plot [1:200000] [1:1000] 1e9 notitle	# off the scale: an empty panel
	unset label 1
}
set title "append-to-read latency from the write() call: 1 follower solid, 100 dashed"
n2 = words(titles2)
half = n2 / 2
if (n2 > 0) {
	plot for [i=1:n2] dat2 index (i-1) using 1:2 with linespoints \
		title word(titles2, i) linecolor ((i-1) % half + 1) \
		dashtype 1 + (i > half) pointtype 7 pointsize 0.6
} else {
	set label 1 "not measured in this run" at graph 0.5, 0.5 center
	plot [1:200000] [1:1000] 1e9 notitle	# off the scale: an empty panel
	unset label 1
}
unset multiplot

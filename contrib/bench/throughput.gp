# Throughput per system and workload, as grouped bars with min-max error
# bars.  Called by report.py:
#   gnuplot -e "dat='F'; out='F.png'; ttl='...'; titles='a b c d'; nsys=4;
#               ylo=...; yhi=..." throughput.gp
# dat: one row per workload: "name" then, per system, median low high in
# MB/s (NaN where a system did not run).  Records are 200 bytes, so the
# right axis is the same bars in records per second.
set terminal pngcairo size 1100,620 font "sans,10" noenhanced
set output out
set title ttl
set datafile missing "NaN"
set style data histogram
set style histogram errorbars gap 1.5 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set logscale y2
set yrange [ylo:yhi]
set y2range [ylo * 5000:yhi * 5000]
set format y "%g"
set format y2 "%.0s%c"
set ylabel "MB/s (10^6 bytes per second, log scale)"
set y2label "records/s (200-byte records)"
set ytics nomirror
set y2tics
set grid ytics
set xtics nomirror
set key outside bottom center horizontal
set bmargin 6
plot for [i=1:nsys] dat using (column(3*i-1)):(column(3*i)):(column(3*i+1)):xtic(1) \
	title word(titles, i) linecolor i

/* Test harness for the C PPG detector: `ppg_tool RATE_HZ < samples.f32 > peaks.i32`.
 *
 * Reads little-endian float32 samples on stdin (at most MAX_SAMPLES), band-passes them and
 * writes the peak sample indices as int32 on stdout. Build:
 * gcc -std=c99 -O2 -I../dsp ppg_tool.c ../dsp/iomt_ppg.c -lm -o ppg_tool
 */
#include <stdio.h>
#include <stdlib.h>

#include "iomt_ppg.h"

#define MAX_SAMPLES (1 << 20)

static float samples[MAX_SAMPLES];
static float work[MAX_SAMPLES + 2 * IOMT_PPG_PAD];
static int32_t peaks[MAX_SAMPLES / 8];

int main(int argc, char **argv) {
    iomt_ppg_filter_t filter;
    float rate;
    size_t n, count;
    if (argc != 2) {
        fprintf(stderr, "usage: ppg_tool RATE_HZ < samples.f32 > peaks.i32\n");
        return 2;
    }
    rate = (float)atof(argv[1]);
    n = fread(samples, sizeof(float), MAX_SAMPLES, stdin);
    if (iomt_ppg_design(rate, &filter) != 0 || iomt_ppg_band_pass(&filter, samples, n, work, samples) != 0) {
        fprintf(stderr, "ppg_tool: bad rate or too few samples (%lu)\n", (unsigned long)n);
        return 1;
    }
    count = iomt_ppg_find_peaks(samples, n, rate, peaks, sizeof peaks / sizeof peaks[0]);
    fwrite(peaks, sizeof(int32_t), count, stdout);
    return 0;
}

/* Test harness for the C PPG pipeline: `ppg_tool RATE_HZ < samples.f32 > answer.i32`.
 *
 * Reads little-endian float32 samples on stdin (at most MAX_SAMPLES), band-passes them, finds
 * the beats and judges each quality window. Writes int32 values on stdout:
 *   num_peaks, peaks[num_peaks], num_windows, verdicts[num_windows]
 * (the quality index sees the peaks strictly inside the buffer, as the Python pipeline does).
 * Build: gcc -std=c99 -O2 -I../dsp ppg_tool.c ../dsp/iomt_ppg*.c -lm -o ppg_tool
 */
#include <stdio.h>
#include <stdlib.h>

#include "iomt_ppg.h"
#include "iomt_ppg_quality.h"

#define MAX_SAMPLES (1 << 20)
#define MAX_PEAKS (MAX_SAMPLES / 8)
#define MAX_WINDOWS (MAX_SAMPLES / 16)

static float samples[MAX_SAMPLES];
static float filtered[MAX_SAMPLES];
static float work[MAX_SAMPLES + 2 * IOMT_PPG_PAD];
static int32_t peaks[MAX_PEAKS];
static int32_t inner[MAX_PEAKS];
static uint8_t verdicts[MAX_WINDOWS];

static void write_int(int32_t value) { fwrite(&value, sizeof value, 1, stdout); }

int main(int argc, char **argv) {
    iomt_ppg_filter_t filter;
    float rate;
    size_t n, count, num_inner = 0, windows, i;
    if (argc != 2) {
        fprintf(stderr, "usage: ppg_tool RATE_HZ < samples.f32 > answer.i32\n");
        return 2;
    }
    rate = (float)atof(argv[1]);
    n = fread(samples, sizeof(float), MAX_SAMPLES, stdin);
    if (iomt_ppg_design(rate, &filter) != 0
        || iomt_ppg_band_pass(&filter, samples, n, work, filtered) != 0) {
        fprintf(stderr, "ppg_tool: bad rate or too few samples (%lu)\n", (unsigned long)n);
        return 1;
    }
    count = iomt_ppg_find_peaks(filtered, n, rate, peaks, MAX_PEAKS);
    for (i = 0; i < count; ++i)
        if (peaks[i] > 0 && (size_t)peaks[i] < n - 1) inner[num_inner++] = peaks[i];
    windows = iomt_ppg_quality(samples, filtered, n, rate, inner, num_inner, work, verdicts,
                               MAX_WINDOWS);
    write_int((int32_t)count);
    fwrite(peaks, sizeof(int32_t), count, stdout);
    write_int((int32_t)windows);
    for (i = 0; i < windows; ++i) write_int(verdicts[i]);
    return 0;
}

/* PPG signal-quality index: see iomt_ppg_quality.h. Mirrors hardware/sensors/ppg_quality.py. */
#include "iomt_ppg_quality.h"

#include <math.h>

#define WINDOW_S 10.0
#define MIN_HR_BPM 40.0
#define MAX_HR_BPM 180.0
#define MAX_GAP_S 3.0
#define MAX_INTERVAL_RATIO 2.2
#define MIN_TEMPLATE_CORRELATION 0.86
#define MAX_REPEATED_SHARE 0.5
#define MIN_AMPLITUDE_RATIO 0.02
#define MAX_AMPLITUDE_RATIO 3.0
#define MAX_CLIPPED_SHARE 0.1
#define MAX_WINDOW_BEATS 64 /* 10 s at the detector's 0.3 s minimum spacing is 34 */

typedef struct {
    float raw_min, raw_max;
    double median_amplitude, fs;
} context_t;

size_t iomt_ppg_quality_window(float sample_rate_hz) {
    long window = lrint(WINDOW_S * (double)sample_rate_hz);
    return window < 1 ? 1 : (size_t)window;
}

size_t iomt_ppg_quality_windows(size_t n, float sample_rate_hz) {
    size_t window = iomt_ppg_quality_window(sample_rate_hz);
    return (n + window - 1) / window;
}

static double std_dev(const float *x, size_t n) {
    double sum = 0.0, squares = 0.0, mean;
    size_t i;
    for (i = 0; i < n; ++i) sum += x[i];
    mean = sum / (double)n;
    for (i = 0; i < n; ++i) squares += ((double)x[i] - mean) * ((double)x[i] - mean);
    return sqrt(squares / (double)n);
}

static void sort_floats(float *x, size_t n) {
    size_t i, j;
    for (i = 1; i < n; ++i) {
        float v = x[i];
        for (j = i; j > 0 && x[j - 1] > v; --j) x[j] = x[j - 1];
        x[j] = v;
    }
}

static void sort_longs(long *x, size_t n) {
    size_t i, j;
    for (i = 1; i < n; ++i) {
        long v = x[i];
        for (j = i; j > 0 && x[j - 1] > v; --j) x[j] = x[j - 1];
        x[j] = v;
    }
}

/* Median as numpy computes it: the mean of the two middle values of an even count. */
static double median_floats(float *sorted, size_t n) {
    return n % 2 ? sorted[n / 2] : ((double)sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
}

static double repeated_share(const float *raw, size_t n) {
    size_t i, same = 0;
    if (n <= 1) return 1.0;
    for (i = 1; i < n; ++i) same += raw[i] == raw[i - 1];
    return (double)same / (double)(n - 1);
}

/* Share of samples in runs of 3+ equal samples at the buffer's min or max (the ADC rail). */
static double clipped_share(const float *raw, size_t n, const context_t *ctx) {
    size_t start = 0, end, clipped = 0;
    while (start < n) {
        for (end = start + 1; end < n && raw[end] == raw[start]; ++end) {
        }
        if (end - start >= 3 && (raw[start] == ctx->raw_min || raw[start] == ctx->raw_max))
            clipped += end - start;
        start = end;
    }
    return (double)clipped / (double)n;
}

static int feasible_rhythm(const long *peaks, size_t count, size_t n, double fs) {
    double total = 0.0, longest = 0.0, shortest = 1e30, rate, edge;
    size_t i;
    if (count < 2) return 0;
    for (i = 1; i < count; ++i) {
        double interval = (double)(peaks[i] - peaks[i - 1]) / fs;
        total += interval;
        if (interval > longest) longest = interval;
        if (interval < shortest) shortest = interval;
    }
    rate = 60.0 / (total / (double)(count - 1));
    edge = (double)peaks[0] / fs;
    if ((double)((long)n - 1 - peaks[count - 1]) / fs > edge)
        edge = (double)((long)n - 1 - peaks[count - 1]) / fs;
    return rate >= MIN_HR_BPM && rate <= MAX_HR_BPM && (longest > edge ? longest : edge) <= MAX_GAP_S
           && longest / shortest <= MAX_INTERVAL_RATIO;
}

static double correlation(const float *a, const float *b, long len) {
    double mean_a = 0.0, mean_b = 0.0, ab = 0.0, aa = 0.0, bb = 0.0;
    long i;
    for (i = 0; i < len; ++i) {
        mean_a += a[i];
        mean_b += b[i];
    }
    mean_a /= (double)len;
    mean_b /= (double)len;
    for (i = 0; i < len; ++i) {
        double da = a[i] - mean_a, db = b[i] - mean_b;
        ab += da * db;
        aa += da * da;
        bb += db * db;
    }
    return ab / sqrt(aa * bb);
}

/* Mean correlation of each beat (median interval wide, centred on its peak) with their mean. */
static double template_correlation(const float *x, size_t n, const long *peaks, size_t count,
                                   float *template_) {
    long intervals[MAX_WINDOW_BEATS], half, i, k, used = 0;
    double middle, total = 0.0;
    for (k = 1; k < (long)count; ++k) intervals[k - 1] = peaks[k] - peaks[k - 1];
    sort_longs(intervals, count - 1);
    middle = (count - 1) % 2 ? (double)intervals[(count - 1) / 2]
                             : (intervals[(count - 1) / 2 - 1] + intervals[(count - 1) / 2]) / 2.0;
    half = (long)middle / 2;
    for (i = 0; i <= 2 * half; ++i) template_[i] = 0.0f;
    for (k = 0; k < (long)count; ++k) {
        if (peaks[k] - half < 0 || peaks[k] + half >= (long)n) continue;
        for (i = -half; i <= half; ++i) template_[i + half] += x[peaks[k] + i];
        ++used;
    }
    if (used < 2 || half < 2) return 0.0;
    for (i = 0; i <= 2 * half; ++i) template_[i] /= (float)used;
    for (k = 0; k < (long)count; ++k) {
        if (peaks[k] - half < 0 || peaks[k] + half >= (long)n) continue;
        total += correlation(x + peaks[k] - half, template_, 2 * half + 1);
    }
    return total / (double)used;
}

static uint8_t window_verdict(const float *raw, const float *filtered, size_t n,
                              const long *peaks, size_t count, double amplitude,
                              const context_t *ctx, float *template_) {
    if (clipped_share(raw, n, ctx) >= MAX_CLIPPED_SHARE) return IOMT_PPG_CLIPPED;
    if (repeated_share(raw, n) > MAX_REPEATED_SHARE
        || amplitude < MIN_AMPLITUDE_RATIO * ctx->median_amplitude)
        return IOMT_PPG_FLAT;
    if (amplitude > MAX_AMPLITUDE_RATIO * ctx->median_amplitude) return IOMT_PPG_MOTION;
    if (!feasible_rhythm(peaks, count, n, ctx->fs)) return IOMT_PPG_RHYTHM;
    if (template_correlation(filtered, n, peaks, count, template_) < MIN_TEMPLATE_CORRELATION)
        return IOMT_PPG_MORPHOLOGY;
    return IOMT_PPG_OK;
}

size_t iomt_ppg_quality(const float *raw, const float *filtered, size_t n, float sample_rate_hz,
                        const int32_t *peaks, size_t num_peaks, float *work, uint8_t *verdicts,
                        size_t max_windows) {
    size_t window = iomt_ppg_quality_window(sample_rate_hz);
    size_t windows = iomt_ppg_quality_windows(n, sample_rate_hz), w, i, next = 0;
    float *amplitudes = work, *sorted = work + windows, *template_ = work + 2 * windows;
    context_t ctx;
    if (n == 0 || windows > max_windows) return 0;
    ctx.raw_min = ctx.raw_max = raw[0];
    for (i = 1; i < n; ++i) {
        if (raw[i] < ctx.raw_min) ctx.raw_min = raw[i];
        if (raw[i] > ctx.raw_max) ctx.raw_max = raw[i];
    }
    for (w = 0; w < windows; ++w) {
        size_t start = w * window, len = start + window > n ? n - start : window;
        amplitudes[w] = sorted[w] = (float)std_dev(filtered + start, len);
    }
    sort_floats(sorted, windows);
    ctx.median_amplitude = median_floats(sorted, windows);
    ctx.fs = (double)sample_rate_hz;
    for (w = 0; w < windows; ++w) {
        size_t start = w * window, len = start + window > n ? n - start : window, count = 0;
        long inside[MAX_WINDOW_BEATS];
        while (next < num_peaks && (size_t)peaks[next] < start) ++next;
        for (i = next; i < num_peaks && (size_t)peaks[i] < start + len; ++i)
            if (count < MAX_WINDOW_BEATS) inside[count++] = (long)peaks[i] - (long)start;
        verdicts[w] = window_verdict(raw + start, filtered + start, len, inside, count,
                                     amplitudes[w], &ctx, template_);
    }
    return windows;
}

/* PPG beat detector: see iomt_ppg.h. Mirrors hardware/sensors/ppg_filter.py and ppg_beats.py. */
#include "iomt_ppg.h"

#include <math.h>

#define PPG_LOW_HZ 0.5
#define PPG_HIGH_HZ 8.0
#define PEAK_WINDOW_S 0.111 /* Elgendi et al. 2013: one systolic peak */
#define BEAT_WINDOW_S 0.667 /* one beat */
#define BEAT_OFFSET 0.02    /* x mean of the squared signal */
#define MIN_DELAY_S 0.3
#define PI_D 3.14159265358979323846

typedef struct {
    double re, im;
} cplx;

static cplx c_make(double re, double im) {
    cplx c;
    c.re = re;
    c.im = im;
    return c;
}
static cplx c_add(cplx a, cplx b) { return c_make(a.re + b.re, a.im + b.im); }
static cplx c_sub(cplx a, cplx b) { return c_make(a.re - b.re, a.im - b.im); }
static cplx c_mul(cplx a, cplx b) {
    return c_make(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re);
}
static cplx c_div(cplx a, cplx b) {
    double d = b.re * b.re + b.im * b.im;
    return c_make((a.re * b.re + a.im * b.im) / d, (a.im * b.re - a.re * b.im) / d);
}
static cplx c_sqrt(cplx a) {
    double m = sqrt(a.re * a.re + a.im * a.im);
    double im = sqrt((m - a.re) / 2.0);
    return c_make(sqrt((m + a.re) / 2.0), a.im < 0.0 ? -im : im);
}

/* Upper-half-plane z poles of the band-pass: prototype -> band-pass -> bilinear transform. */
static int band_pass_poles(double fs, cplx upper[IOMT_PPG_SECTIONS]) {
    double two_fs = 2.0 * fs;
    double wl = two_fs * tan(PI_D * PPG_LOW_HZ / fs), wh = two_fs * tan(PI_D * PPG_HIGH_HZ / fs);
    double half_bw = (wh - wl) / 2.0;
    cplx centre2 = c_make(wl * wh, 0.0), two = c_make(two_fs, 0.0);
    int k, sign, count = 0;
    for (k = 0; k < IOMT_PPG_ORDER; ++k) {
        double angle = PI_D * (2.0 * k + IOMT_PPG_ORDER + 1) / (2.0 * IOMT_PPG_ORDER);
        cplx h = c_make(cos(angle) * half_bw, sin(angle) * half_bw);
        cplx root = c_sqrt(c_sub(c_mul(h, h), centre2));
        for (sign = -1; sign <= 1; sign += 2) {
            cplx s = c_add(h, c_make(sign * root.re, sign * root.im));
            cplx z = c_div(c_add(two, s), c_sub(two, s));
            if (z.im > 1e-12) {
                if (count == IOMT_PPG_SECTIONS) return -1;
                upper[count++] = z;
            }
        }
    }
    return count == IOMT_PPG_SECTIONS ? 0 : -1;
}

/* 1 / |H| at the bilinear image of the analogue centre frequency, where a Butterworth is 1. */
static double unit_peak_gain(double fs, double a[IOMT_PPG_SECTIONS][2]) {
    double centre = sqrt(tan(PI_D * PPG_LOW_HZ / fs) * tan(PI_D * PPG_HIGH_HZ / fs));
    double w = 2.0 * atan(centre);
    cplx z1 = c_make(cos(w), -sin(w)), z2 = c_mul(z1, z1), one = c_make(1.0, 0.0);
    cplx response = one;
    int i;
    for (i = 0; i < IOMT_PPG_SECTIONS; ++i) {
        cplx num = c_sub(one, z2);
        cplx den = c_add(one, c_add(c_mul(c_make(a[i][0], 0.0), z1), c_mul(c_make(a[i][1], 0.0), z2)));
        response = c_mul(response, c_div(num, den));
    }
    return 1.0 / sqrt(response.re * response.re + response.im * response.im);
}

int iomt_ppg_design(float sample_rate_hz, iomt_ppg_filter_t *filter) {
    double fs = (double)sample_rate_hz, a[IOMT_PPG_SECTIONS][2], gain;
    cplx upper[IOMT_PPG_SECTIONS];
    int i;
    if (!(fs > 2.0 * PPG_HIGH_HZ) || band_pass_poles(fs, upper) != 0) return -1;
    for (i = 0; i < IOMT_PPG_SECTIONS; ++i) {
        a[i][0] = -2.0 * upper[i].re;
        a[i][1] = upper[i].re * upper[i].re + upper[i].im * upper[i].im;
    }
    gain = unit_peak_gain(fs, a);
    for (i = 0; i < IOMT_PPG_SECTIONS; ++i) {
        double scale = i == 0 ? gain : 1.0; /* zeros at z = +1 and -1 in every section */
        filter->b[i][0] = (float)scale;
        filter->b[i][1] = 0.0f;
        filter->b[i][2] = (float)-scale;
        filter->a[i][0] = (float)a[i][0];
        filter->a[i][1] = (float)a[i][1];
    }
    return 0;
}

size_t iomt_ppg_work_len(size_t n) { return n + 2 * IOMT_PPG_PAD; }

/* One section in place, transposed direct form II, from the steady state of input x[0]. */
static void biquad(const float b[3], const float a[2], float *x, size_t n) {
    float dc = (b[0] + b[1] + b[2]) / (1.0f + a[0] + a[1]);
    float z1 = (b[2] - a[1] * dc) * x[0];
    float z0 = (b[1] - a[0] * dc) * x[0] + z1;
    size_t i;
    for (i = 0; i < n; ++i) {
        float in = x[i], y = b[0] * in + z0;
        z0 = b[1] * in - a[0] * y + z1;
        z1 = b[2] * in - a[1] * y;
        x[i] = y;
    }
}

static void reverse(float *x, size_t n) {
    size_t i;
    for (i = 0; i < n / 2; ++i) {
        float t = x[i];
        x[i] = x[n - 1 - i];
        x[n - 1 - i] = t;
    }
}

int iomt_ppg_band_pass(const iomt_ppg_filter_t *filter, const float *x, size_t n, float *work,
                       float *out) {
    size_t i, pad = IOMT_PPG_PAD, total = n + 2 * pad;
    int s, pass;
    if (n <= pad) return -1;
    for (i = 0; i < pad; ++i) {
        work[i] = 2.0f * x[0] - x[pad - i];
        work[pad + n + i] = 2.0f * x[n - 1] - x[n - 2 - i];
    }
    for (i = 0; i < n; ++i) work[pad + i] = x[i];
    for (pass = 0; pass < 2; ++pass) {
        for (s = 0; s < IOMT_PPG_SECTIONS; ++s) biquad(filter->b[s], filter->a[s], work, total);
        reverse(work, total);
    }
    for (i = 0; i < n; ++i) out[i] = work[pad + i];
    return 0;
}

static double squared_at(const float *x, size_t n, long i) {
    double v = x[i < 0 ? 0 : (i >= (long)n ? (long)n - 1 : i)];
    return v > 0.0 ? v * v : 0.0;
}

/* Running mean of the squared, zero-clipped signal over [i - size/2, i + (size-1)/2], edges held. */
typedef struct {
    long size;
    double sum;
} moving_sum;

static void moving_sum_start(moving_sum *m, const float *x, size_t n, long size) {
    long k;
    m->size = size;
    m->sum = 0.0;
    for (k = -(size / 2); k <= (size - 1) / 2; ++k) m->sum += squared_at(x, n, k);
}

static void moving_sum_step(moving_sum *m, const float *x, size_t n, long i) {
    m->sum += squared_at(x, n, i + (m->size - 1) / 2) - squared_at(x, n, i - 1 - m->size / 2);
}

/* Offset in [0, len) of the local maximum with the largest prominence, -1 if none. */
static long most_prominent(const float *x, long len) {
    long j, i, best = -1;
    float best_prominence = 0.0f;
    for (j = 1; j + 1 < len; ++j) {
        float left_min = x[j], right_min = x[j], prominence;
        if (!(x[j] > x[j - 1] && x[j] > x[j + 1])) continue;
        for (i = j; i >= 0 && x[i] <= x[j]; --i)
            if (x[i] < left_min) left_min = x[i];
        for (i = j; i < len && x[i] <= x[j]; ++i)
            if (x[i] < right_min) right_min = x[i];
        prominence = x[j] - (left_min > right_min ? left_min : right_min);
        if (best < 0 || prominence > best_prominence) {
            best = j;
            best_prominence = prominence;
        }
    }
    return best;
}

size_t iomt_ppg_find_peaks(const float *filtered, size_t n, float sample_rate_hz, int32_t *peaks,
                           size_t max_peaks) {
    double fs = (double)sample_rate_hz, total = 0.0, offset;
    long peak_size = lrint(PEAK_WINDOW_S * fs), beat_size = lrint(BEAT_WINDOW_S * fs);
    long min_delay = lrint(MIN_DELAY_S * fs), i, begin = -1, last = 0;
    int was_above = 0;
    size_t count = 0;
    moving_sum peak_sum, beat_sum;
    if (n < 2 || peak_size < 1 || beat_size > (long)n) return 0;
    for (i = 0; i < (long)n; ++i) total += squared_at(filtered, n, i);
    offset = BEAT_OFFSET * total / (double)n;
    moving_sum_start(&peak_sum, filtered, n, peak_size);
    moving_sum_start(&beat_sum, filtered, n, beat_size);
    for (i = 0; i < (long)n; ++i) {
        int above;
        if (i > 0) {
            moving_sum_step(&peak_sum, filtered, n, i);
            moving_sum_step(&beat_sum, filtered, n, i);
        }
        above = peak_sum.sum / peak_size > beat_sum.sum / beat_size + offset;
        if (i > 0 && above && !was_above) begin = i - 1; /* last sample below before the rise */
        if (i > 0 && !above && was_above && begin >= 0) {
            long end = i - 1, peak; /* last sample above before the fall */
            if (end - begin >= peak_size && (peak = most_prominent(filtered + begin, end - begin)) >= 0
                && begin + peak - last > min_delay && count < max_peaks) {
                last = begin + peak;
                peaks[count++] = (int32_t)last;
            }
            begin = -1;
        }
        was_above = above;
    }
    return count;
}

/* PPG beat detector for the firmware: the same steps as hardware/sensors/ppg_beats.py.
 *
 * 1. iomt_ppg_design: 2nd-order Butterworth band-pass 0.5-8 Hz for the sensor's sample rate,
 *    designed once at start-up (double precision, closed form; no table per rate).
 * 2. iomt_ppg_band_pass: zero-phase (forward-backward) filtering of a buffer, odd-reflection
 *    padding and steady-state starts, float32 (scipy's sosfiltfilt does the same).
 * 3. iomt_ppg_find_peaks: Elgendi et al. 2013 two-moving-average systolic peak detector.
 *
 * Portable C99, no malloc: the caller owns every buffer. tests/firmware_bridge/test_ppg_c.py
 * builds this with the host gcc and checks beat indices against the Python detector.
 */
#ifndef IOMT_PPG_H
#define IOMT_PPG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOMT_PPG_ORDER 2
#define IOMT_PPG_SECTIONS IOMT_PPG_ORDER /* one biquad per band-pass pole pair */
#define IOMT_PPG_PAD (3 * (2 * IOMT_PPG_SECTIONS + 1))

typedef struct {
    float b[IOMT_PPG_SECTIONS][3]; /* numerator b0 b1 b2 */
    float a[IOMT_PPG_SECTIONS][2]; /* denominator a1 a2 (a0 = 1) */
} iomt_ppg_filter_t;

/* Band-pass for `sample_rate_hz`; returns 0, or -1 if 8 Hz is not below Nyquist. */
int iomt_ppg_design(float sample_rate_hz, iomt_ppg_filter_t *filter);

/* Floats of work space iomt_ppg_band_pass needs for `n` samples. */
size_t iomt_ppg_work_len(size_t n);

/* out[0..n) = zero-phase band-passed x; `work` holds iomt_ppg_work_len(n) floats.
 * Returns 0, or -1 if n <= IOMT_PPG_PAD (too short to pad). `out` may equal `x`. */
int iomt_ppg_band_pass(const iomt_ppg_filter_t *filter, const float *x, size_t n, float *work,
                       float *out);

/* Systolic peak sample indices of band-passed `filtered` into peaks[0..max_peaks);
 * returns how many were found (at most max_peaks). */
size_t iomt_ppg_find_peaks(const float *filtered, size_t n, float sample_rate_hz, int32_t *peaks,
                           size_t max_peaks);

#ifdef __cplusplus
}
#endif

#endif

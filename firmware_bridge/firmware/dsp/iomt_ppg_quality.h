/* PPG signal-quality index for the firmware: hardware/sensors/ppg_quality.py in C99.
 *
 * One verdict per 10 s window of a buffer (the last window may be shorter), judged against the
 * buffer's extremes and median window amplitude; the first failing check wins:
 * clipped, flat, motion, then Orphanidou et al. 2015 rhythm rules and beat-template match.
 * A window whose verdict is not IOMT_PPG_OK gives no heart rate. float32, no malloc.
 */
#ifndef IOMT_PPG_QUALITY_H
#define IOMT_PPG_QUALITY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    IOMT_PPG_OK = 0,
    IOMT_PPG_CLIPPED = 1,
    IOMT_PPG_FLAT = 2,
    IOMT_PPG_MOTION = 3,
    IOMT_PPG_RHYTHM = 4,
    IOMT_PPG_MORPHOLOGY = 5
} iomt_ppg_verdict_t;

/* Samples per quality window at this rate, and how many windows `n` samples make. */
size_t iomt_ppg_quality_window(float sample_rate_hz);
size_t iomt_ppg_quality_windows(size_t n, float sample_rate_hz);

/* verdicts[0..windows) for raw and band-passed samples and their peaks (ascending sample
 * indices). `work` holds at least n + 30 floats (iomt_ppg_work_len(n): the band-pass work
 * buffer can be reused). Returns the number of windows written (0 if max_windows is short). */
size_t iomt_ppg_quality(const float *raw, const float *filtered, size_t n, float sample_rate_hz,
                        const int32_t *peaks, size_t num_peaks, float *work, uint8_t *verdicts,
                        size_t max_windows);

#ifdef __cplusplus
}
#endif

#endif

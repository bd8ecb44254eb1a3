/* Protocol error codes (docs/serial-protocol.md section 3) and the one-line message of the last one. */
#ifndef IOMT_ERRORS_H
#define IOMT_ERRORS_H

#include <stdint.h>

enum {
    IOMT_E_UNKNOWN_TYPE = 1,
    IOMT_E_BAD_PAYLOAD = 2,
    IOMT_E_NO_MODEL = 3,
    IOMT_E_NO_UPLOAD = 4,
    IOMT_E_BAD_OFFSET = 5,
    IOMT_E_HASH_MISMATCH = 6,
    IOMT_E_TOO_LARGE = 7,
    IOMT_E_SHAPE_MISMATCH = 8,
    IOMT_E_INVOKE_FAILED = 9,
};

/* Record `code` with a printf-style message; returns `code` so callers can `return iomt_fail(...)`. */
int iomt_fail(int code, const char *format, ...);
const char *iomt_error_message(void);

#endif

#include "iomt_errors.h"

#include <stdarg.h>
#include <stdio.h>

static char message[200];

int iomt_fail(int code, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof(message), format, args);
    va_end(args);
    return code;
}

const char *iomt_error_message(void) { return message; }

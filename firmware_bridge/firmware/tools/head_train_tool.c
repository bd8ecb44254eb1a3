/* Host harness of the head trainer (tests/firmware_bridge/test_head_train_c.py): the ring,
 * the trainer and the int8 codec of core/, built with the host gcc, no QEMU, the ring spilling
 * to a RAM flash (flash_ram.c). A request on stdin, its reply on stdout (layouts in
 * train_request.h); exit status 0, or 2-4 when the request is malformed. */
#include <stdio.h>

#include "train_request.h"

static void put(const void *data, size_t len) { fwrite(data, 1, len, stdout); }

int main(void) {
    static uint8_t input[1u << 22];
    size_t len = fread(input, 1, sizeof(input), stdin);
    iomt_train_request request;
    int status = iomt_train_request_load(input, len, &request);
    if (status != 0) return status;
    iomt_train_result result = {0, 0, 0.0f};
    int32_t trained = iomt_train_run(&request.head, &request.fit, &result);
    iomt_train_request_reply(&request, trained, &result, put);
    return 0;
}

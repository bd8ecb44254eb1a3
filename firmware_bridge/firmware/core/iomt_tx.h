/* Sending frames: the payload is built in place in one buffer, framed, COBS-encoded and
 * written to the UART block by block (no second frame-sized buffer). While a reply is being
 * recorded, the bytes sent are also kept so a retransmitted request gets them again. */
#ifndef IOMT_TX_H
#define IOMT_TX_H

#include <stdint.h>

#define IOMT_REPLY_CACHE_BYTES 1024

/* Where to build the next payload (IOMT_MAX_PAYLOAD bytes). */
uint8_t *iomt_tx_payload(void);
/* Frame and send the payload built in iomt_tx_payload(). */
void iomt_tx_send(uint8_t type, uint8_t seq, uint16_t length);
/* Send an event (SENSOR_FRAME, LABEL_EVENT, LOG) with the device's own sequence counter. */
void iomt_tx_event(uint8_t type, uint16_t length);

/* Reply cache: remember the request (seq, type, payload CRC) and everything sent until the next
 * begin. lookup() resends the recorded bytes of a repeated request and returns 1; 0 when the
 * request is new; -1 when it was seen but its replies were too long to keep (run it again). */
void iomt_tx_cache_begin(uint8_t seq, uint8_t type, uint16_t crc);
void iomt_tx_cache_end(void);
int iomt_tx_cache_lookup(uint8_t seq, uint8_t type, uint16_t crc);
void iomt_tx_cache_clear(void);

#endif

// IoMT bridge firmware skeleton (Arduino Nano 33 BLE Sense / ESP32-S3) using TensorFlow Lite
// Micro and the model array written by `iomt convert --board nano33ble` (model_data.h/.cc).
//
// Setup: copy ../framing/iomt_*.{c,h} and the bundle's model_data.h / model_data.cc into this
// sketch folder, install the "Arduino_TensorFlowLite" library, build and flash. The host side
// is `iomt bridge info --port /dev/ttyACM0`. Protocol: docs/serial-protocol.md.
//
// What is here: framing, HELLO/INFO, INFER_REQUEST/INFER_RESULT with an LSTM-safe reset before
// every window, streaming of IMU samples, LABEL_EVENT on the button, reply cache for
// retransmissions, ACK/ERROR. What is left as TODO: MODEL_* into a flash partition (the
// emulator implements the behaviour to copy), HEAD_SET applied to the model, RESET.

#include <Arduino.h>
#include <TensorFlowLite.h>
#include <tensorflow/lite/micro/micro_interpreter.h>
#include <tensorflow/lite/micro/micro_mutable_op_resolver.h>
#include <tensorflow/lite/schema/schema_generated.h>

#include "iomt_crc16.h"
#include "iomt_frame.h"
#include "model_data.h"  // from `iomt convert`: extern const unsigned char g_model[]; g_model_len

namespace {

// Message types (docs/serial-protocol.md).
enum : uint8_t {
  HELLO = 0x01, INFO = 0x02, ACK = 0x03, NACK = 0x04, ERROR_MSG = 0x05, LOG = 0x06, RESET = 0x07,
  SENSOR_FRAME = 0x10, STREAM_START = 0x11, STREAM_STOP = 0x12, LABEL_EVENT = 0x13,
  LABEL_REQUEST = 0x14, INFER_REQUEST = 0x20, INFER_RESULT = 0x21, HEAD_GET = 0x40,
};
enum : uint16_t { ERR_UNKNOWN_TYPE = 1, ERR_BAD_PAYLOAD = 2, ERR_SHAPE_MISMATCH = 8, ERR_INVOKE = 9 };

constexpr char kBoard[] = "nano33ble";
constexpr char kFirmwareVersion[] = "iomt-fw-0.1";
constexpr int kArenaBytes = 128 * 1024;  // measured by `iomt convert`, rounded up
constexpr int kButtonPin = 2;
constexpr float kSampleRateHz = 50.0f;

alignas(16) uint8_t tensor_arena[kArenaBytes];
tflite::MicroInterpreter *interpreter = nullptr;
iomt_decoder_t decoder;
uint8_t tx_buffer[IOMT_MAX_ENCODED + 1];
uint8_t reply[512];

// Reply cache: a retransmitted request (same seq, type, payload CRC) gets the same reply.
struct { bool valid; uint8_t seq, type; uint16_t crc; size_t length; uint8_t wire[600]; } cache;

bool streaming = false;
uint16_t samples_per_frame = 10;
uint8_t event_seq = 0;
uint32_t next_sample_us = 0;

void put_u16(uint8_t *p, uint16_t v) { p[0] = v & 0xFF; p[1] = v >> 8; }
void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (v >> (8 * i)) & 0xFF; }
void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (v >> (8 * i)) & 0xFF; }

void send(uint8_t type, uint8_t seq, const uint8_t *payload, uint16_t length, bool cacheable) {
  size_t n = iomt_frame_encode(type, seq, payload, length, tx_buffer, sizeof(tx_buffer));
  Serial.write(tx_buffer, n);
  if (cacheable && n <= sizeof(cache.wire)) { memcpy(cache.wire, tx_buffer, n); cache.length = n; }
}

void send_error(uint8_t seq, uint16_t code, const char *text) {
  size_t len = strlen(text) > 200 ? 200 : strlen(text);
  put_u16(reply, code); reply[2] = (uint8_t)len; memcpy(reply + 3, text, len);
  send(ERROR_MSG, seq, reply, (uint16_t)(3 + len), true);
}

void send_info(uint8_t seq) {
  // board, firmware (u8-prefixed), sha256[32] (computed at build time: TODO), arena u32,
  // model bytes u32, input dtype u8, window u16, channels u16, classes u16, rate f32
  size_t n = 0;
  reply[n++] = sizeof(kBoard) - 1; memcpy(reply + n, kBoard, sizeof(kBoard) - 1); n += sizeof(kBoard) - 1;
  reply[n++] = sizeof(kFirmwareVersion) - 1;
  memcpy(reply + n, kFirmwareVersion, sizeof(kFirmwareVersion) - 1); n += sizeof(kFirmwareVersion) - 1;
  memset(reply + n, 0, 32); n += 32;
  TfLiteTensor *input = interpreter->input(0);
  TfLiteTensor *output = interpreter->output(0);
  put_u32(reply + n, kArenaBytes); n += 4;
  put_u32(reply + n, g_model_len); n += 4;
  reply[n++] = 0;  // int8
  put_u16(reply + n, input->dims->data[1]); n += 2;
  put_u16(reply + n, input->dims->data[2]); n += 2;
  put_u16(reply + n, output->dims->data[1]); n += 2;
  memcpy(reply + n, &kSampleRateHz, 4); n += 4;
  send(INFO, seq, reply, (uint16_t)n, true);
}

void run_inference(const iomt_frame_t &frame) {
  TfLiteTensor *input = interpreter->input(0);
  if (frame.length < 5 || frame.payload[0] != 0 /* int8 */ ||
      frame.length - 5u != input->bytes) {
    send_error(frame.seq, ERR_SHAPE_MISMATCH, "window shape or dtype differs from the model");
    return;
  }
  interpreter->Reset();  // LSTM state must not leak from the previous window
  memcpy(input->data.int8, frame.payload + 5, input->bytes);
  uint32_t started = micros();
  if (interpreter->Invoke() != kTfLiteOk) { send_error(frame.seq, ERR_INVOKE, "invoke failed"); return; }
  TfLiteTensor *output = interpreter->output(0);
  int classes = output->dims->data[1], best = 0;
  for (int i = 1; i < classes; i++) if (output->data.int8[i] > output->data.int8[best]) best = i;
  put_u16(reply, best); put_u32(reply + 2, micros() - started); reply[6] = 0; put_u16(reply + 7, classes);
  memcpy(reply + 9, output->data.int8, classes);
  send(INFER_RESULT, frame.seq, reply, (uint16_t)(9 + classes), true);
}

void send_ack(uint8_t seq, uint32_t value) { put_u32(reply, value); send(ACK, seq, reply, 4, true); }

void handle(const iomt_frame_t &frame) {
  uint16_t crc = iomt_crc16(frame.payload, frame.length);
  if (frame.type == HELLO) cache.valid = false;
  if (cache.valid && cache.seq == frame.seq && cache.type == frame.type && cache.crc == crc) {
    Serial.write(cache.wire, cache.length);  // retransmission: replay, do not run twice
    return;
  }
  cache = {true, frame.seq, frame.type, crc, 0, {0}};
  switch (frame.type) {
    case HELLO: send_info(frame.seq); break;
    case INFER_REQUEST: run_inference(frame); break;
    case STREAM_START:
      if (frame.length >= 2) samples_per_frame = frame.payload[0] | (frame.payload[1] << 8);
      if (samples_per_frame == 0) samples_per_frame = 10;
      streaming = true; next_sample_us = micros(); send_ack(frame.seq, 0); break;
    case STREAM_STOP: streaming = false; send_ack(frame.seq, 0); break;
    case LABEL_REQUEST: send_ack(frame.seq, 0); break;  // the press itself comes from the button
    default: send_error(frame.seq, ERR_UNKNOWN_TYPE, "not implemented on this firmware");
  }
}

void read_imu(int16_t *sample) {
  // TODO: read the board's IMU (Arduino_LSM9DS1 / BMI270) and scale to int16.
  for (int c = 0; c < 6; c++) sample[c] = 0;
}

void stream_samples() {
  static int16_t samples[32 * 6];
  static uint16_t count = 0;
  static uint64_t first_us = 0;
  if (!streaming || (int32_t)(micros() - next_sample_us) < 0) return;
  if (count == 0) first_us = micros();
  read_imu(samples + 6 * count);
  next_sample_us += (uint32_t)(1e6f / kSampleRateHz);
  if (++count < samples_per_frame && count < 32) return;
  uint8_t *p = reply;
  put_u64(p, first_us); p[8] = 1 /* int16 */; put_u16(p + 9, count); p[11] = 6;
  memcpy(p + 12, samples, count * 6 * sizeof(int16_t));
  send(SENSOR_FRAME, event_seq++, p, (uint16_t)(12 + count * 12), false);
  count = 0;
}

void poll_button(uint16_t label) {
  static int last = HIGH;
  int now = digitalRead(kButtonPin);
  if (last == HIGH && now == LOW) {
    put_u16(reply, label); put_u64(reply + 2, micros());
    send(LABEL_EVENT, event_seq++, reply, 10, false);
  }
  last = now;
}

}  // namespace

void setup() {
  Serial.begin(921600);
  pinMode(kButtonPin, INPUT_PULLUP);
  iomt_decoder_init(&decoder);
  static tflite::MicroMutableOpResolver<16> resolver;
  resolver.AddConv2D(); resolver.AddDepthwiseConv2D(); resolver.AddFullyConnected();
  resolver.AddUnidirectionalSequenceLSTM(); resolver.AddReshape(); resolver.AddMean();
  resolver.AddSoftmax(); resolver.AddRelu(); resolver.AddAdd(); resolver.AddMul();
  resolver.AddExpandDims(); resolver.AddConcatenation(); resolver.AddQuantize(); resolver.AddDequantize();
  static tflite::MicroInterpreter static_interpreter(tflite::GetModel(g_model), resolver,
                                                     tensor_arena, kArenaBytes);
  interpreter = &static_interpreter;
  interpreter->AllocateTensors();
}

void loop() {
  iomt_frame_t frame;
  while (Serial.available()) {
    if (iomt_decoder_feed(&decoder, (uint8_t)Serial.read(), &frame)) handle(frame);
  }
  stream_samples();
  poll_button(0);
}

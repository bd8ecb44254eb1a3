/* Bounds-checked .tflite flatbuffer reading; see iomt_tflite_reader.h. */
#include "iomt_tflite_reader.h"

#include <string.h>

/* Field numbers of schema.fbs. */
enum { MODEL_OPERATOR_CODES = 1, MODEL_SUBGRAPHS = 2, MODEL_BUFFERS = 4 };
enum { SUBGRAPH_TENSORS = 0, SUBGRAPH_OPERATORS = 3 };
enum { TENSOR_SHAPE = 0, TENSOR_TYPE = 1, TENSOR_BUFFER = 2, TENSOR_QUANTIZATION = 4,
       TENSOR_IS_VARIABLE = 5 };
enum { QUANT_SCALE = 2, QUANT_ZERO_POINT = 3, QUANT_DIMENSION = 6 };
enum { OP_OPCODE_INDEX = 0, OP_INPUTS = 1, OP_OUTPUTS = 2, OP_OPTIONS_TYPE = 3, OP_OPTIONS = 4,
       OP_INTERMEDIATES = 8 };
enum { OPCODE_DEPRECATED_BUILTIN = 0, OPCODE_VERSION = 2, OPCODE_BUILTIN = 3 };
enum { BUFFER_DATA = 0 };

static int in_bounds(const iomt_tflite *m, uint32_t pos, uint32_t size) {
  return pos <= m->len && size <= m->len - pos;
}

static uint32_t read_u32(const iomt_tflite *m, uint32_t pos) {
  uint32_t v;
  memcpy(&v, m->base + pos, 4); /* flatbuffers are little-endian, as are both targets */
  return v;
}

static uint16_t read_u16(const iomt_tflite *m, uint32_t pos) {
  uint16_t v;
  memcpy(&v, m->base + pos, 2);
  return v;
}

/* Position of field `field` of the table at `table`, or 0 when absent or out of bounds. */
static uint32_t field_pos(const iomt_tflite *m, uint32_t table, uint32_t field) {
  if (table == 0 || !in_bounds(m, table, 4)) return 0;
  int32_t soffset = (int32_t)read_u32(m, table);
  int64_t vtable = (int64_t)table - soffset;
  if (vtable < 0 || !in_bounds(m, (uint32_t)vtable, 4)) return 0;
  uint16_t vtable_size = read_u16(m, (uint32_t)vtable);
  uint32_t entry = 4 + 2 * field;
  if (entry + 2 > vtable_size || !in_bounds(m, (uint32_t)vtable, vtable_size)) return 0;
  uint16_t offset = read_u16(m, (uint32_t)vtable + entry);
  return offset == 0 ? 0 : table + offset;
}

/* Follow the uoffset stored at `pos` (a sub-table or vector); 0 when out of bounds. */
static uint32_t follow(const iomt_tflite *m, uint32_t pos) {
  if (pos == 0 || !in_bounds(m, pos, 4)) return 0;
  uint64_t target = (uint64_t)pos + read_u32(m, pos);
  return target < m->len ? (uint32_t)target : 0;
}

/* Vector field: position of its length word, and its element count if elements fit. */
static uint32_t vector_field(const iomt_tflite *m, uint32_t table, uint32_t field,
                             uint32_t element_size, uint32_t *count) {
  uint32_t vector = follow(m, field_pos(m, table, field));
  *count = 0;
  if (vector == 0 || !in_bounds(m, vector, 4)) return 0;
  uint32_t n = read_u32(m, vector);
  if ((uint64_t)n * element_size > m->len - vector - 4) return 0;
  *count = n;
  return vector;
}

static int64_t scalar_field(const iomt_tflite *m, uint32_t table, uint32_t field,
                            uint32_t width, int64_t fallback) {
  uint32_t pos = field_pos(m, table, field);
  if (pos == 0 || !in_bounds(m, pos, width)) return fallback;
  if (width == 1) return (int8_t)m->base[pos];
  if (width == 2) return (int16_t)read_u16(m, pos);
  return (int32_t)read_u32(m, pos);
}

/* Element k of a vector of tables. */
static uint32_t table_at(const iomt_tflite *m, uint32_t vector, uint32_t count, uint32_t k) {
  return k < count ? follow(m, vector + 4 + 4 * k) : 0;
}

int iomt_tflite_open(iomt_tflite *m, const uint8_t *image, uint32_t len) {
  memset(m, 0, sizeof(*m));
  m->base = image;
  m->len = len;
  if (image == 0 || len < 8 || memcmp(image + 4, "TFL3", 4) != 0) return IOMT_TFLITE_BAD_IMAGE;
  uint32_t root = read_u32(m, 0); /* the root table's offset is the first word */
  if (root >= len) return IOMT_TFLITE_BAD_IMAGE;
  uint32_t subgraphs = vector_field(m, root, MODEL_SUBGRAPHS, 4, &m->subgraph_count);
  uint32_t subgraph = table_at(m, subgraphs, m->subgraph_count, 0);
  uint32_t unused;
  m->tensors = vector_field(m, subgraph, SUBGRAPH_TENSORS, 4, &unused);
  m->operators = vector_field(m, subgraph, SUBGRAPH_OPERATORS, 4, &unused);
  m->opcodes = vector_field(m, root, MODEL_OPERATOR_CODES, 4, &unused);
  m->buffers = vector_field(m, root, MODEL_BUFFERS, 4, &unused);
  if (subgraph == 0 || m->tensors == 0 || m->operators == 0 || m->opcodes == 0 ||
      m->buffers == 0) {
    return IOMT_TFLITE_BAD_IMAGE;
  }
  return IOMT_TFLITE_OK;
}

uint32_t iomt_tflite_tensor_count(const iomt_tflite *m) { return read_u32(m, m->tensors); }

uint32_t iomt_tflite_op_count(const iomt_tflite *m) { return read_u32(m, m->operators); }

static int read_quantization(const iomt_tflite *m, uint32_t table, iomt_tflite_tensor *t) {
  uint32_t quant = follow(m, field_pos(m, table, TENSOR_QUANTIZATION));
  if (quant == 0) return IOMT_TFLITE_OK;
  uint32_t scales = vector_field(m, quant, QUANT_SCALE, 4, &t->scale_count);
  uint32_t zeros = vector_field(m, quant, QUANT_ZERO_POINT, 8, &t->zero_point_count);
  t->scales = scales ? scales + 4 : 0;
  t->zero_points = zeros ? zeros + 4 : 0;
  t->quantized_dimension = (int32_t)scalar_field(m, quant, QUANT_DIMENSION, 4, 0);
  return IOMT_TFLITE_OK;
}

static int read_buffer(const iomt_tflite *m, iomt_tflite_tensor *t) {
  uint32_t buffer_count = read_u32(m, m->buffers);
  if (t->buffer >= buffer_count) return IOMT_TFLITE_BAD_INDEX;
  uint32_t buffer = table_at(m, m->buffers, buffer_count, t->buffer);
  if (buffer == 0) return IOMT_TFLITE_BAD_IMAGE;
  uint32_t size;
  uint32_t data = vector_field(m, buffer, BUFFER_DATA, 1, &size);
  t->data = (data != 0 && size > 0) ? m->base + data + 4 : 0;
  t->data_len = t->data ? size : 0;
  return IOMT_TFLITE_OK;
}

int iomt_tflite_read_tensor(const iomt_tflite *m, uint32_t index, iomt_tflite_tensor *t) {
  memset(t, 0, sizeof(*t));
  uint32_t table = table_at(m, m->tensors, iomt_tflite_tensor_count(m), index);
  if (table == 0) return IOMT_TFLITE_BAD_INDEX;
  uint32_t shape = vector_field(m, table, TENSOR_SHAPE, 4, &t->rank);
  if (t->rank > IOMT_TFLITE_MAX_RANK) return IOMT_TFLITE_BAD_IMAGE;
  for (uint32_t d = 0; d < t->rank; ++d) t->dims[d] = (int32_t)read_u32(m, shape + 4 + 4 * d);
  t->type = (int32_t)scalar_field(m, table, TENSOR_TYPE, 1, 0);
  t->buffer = (uint32_t)scalar_field(m, table, TENSOR_BUFFER, 4, 0);
  t->is_variable = (int32_t)scalar_field(m, table, TENSOR_IS_VARIABLE, 1, 0);
  int status = read_quantization(m, table, t);
  return status != IOMT_TFLITE_OK ? status : read_buffer(m, t);
}

int iomt_tflite_read_op(const iomt_tflite *m, uint32_t index, iomt_tflite_op *op) {
  memset(op, 0, sizeof(*op));
  uint32_t table = table_at(m, m->operators, iomt_tflite_op_count(m), index);
  if (table == 0) return IOMT_TFLITE_BAD_INDEX;
  uint32_t code_index = (uint32_t)scalar_field(m, table, OP_OPCODE_INDEX, 4, 0);
  uint32_t code = table_at(m, m->opcodes, read_u32(m, m->opcodes), code_index);
  if (code == 0) return IOMT_TFLITE_BAD_INDEX;
  int64_t deprecated = scalar_field(m, code, OPCODE_DEPRECATED_BUILTIN, 1, 0);
  int64_t builtin = scalar_field(m, code, OPCODE_BUILTIN, 4, 0);
  op->builtin = (int32_t)(builtin > deprecated ? builtin : deprecated);
  op->version = (int32_t)scalar_field(m, code, OPCODE_VERSION, 4, 1);
  op->inputs = vector_field(m, table, OP_INPUTS, 4, &op->input_count);
  op->outputs = vector_field(m, table, OP_OUTPUTS, 4, &op->output_count);
  op->intermediates = vector_field(m, table, OP_INTERMEDIATES, 4, &op->intermediate_count);
  op->options_type = (int32_t)(uint8_t)scalar_field(m, table, OP_OPTIONS_TYPE, 1, 0);
  op->options = follow(m, field_pos(m, table, OP_OPTIONS));
  return IOMT_TFLITE_OK;
}

int32_t iomt_tflite_index(const iomt_tflite *m, uint32_t vector, uint32_t k) {
  return (int32_t)read_u32(m, vector + 4 + 4 * k);
}

int64_t iomt_tflite_option(const iomt_tflite *m, const iomt_tflite_op *op, uint32_t field,
                           uint32_t width, int64_t fallback) {
  return scalar_field(m, op->options, field, width, fallback);
}

float iomt_tflite_scale(const iomt_tflite *m, const iomt_tflite_tensor *t, uint32_t k) {
  float v = 0.0f;
  if (t->scales != 0 && k < t->scale_count) memcpy(&v, m->base + t->scales + 4 * k, 4);
  return v;
}

int32_t iomt_tflite_zero_point(const iomt_tflite *m, const iomt_tflite_tensor *t, uint32_t k) {
  int64_t v = 0;
  if (t->zero_points != 0 && k < t->zero_point_count) {
    memcpy(&v, m->base + t->zero_points + 8 * k, 8);
  }
  return (int32_t)v;
}

/* Host build of the model runner, for tests: the same generated plan and kernels as the
 * firmware, compiled with the workstation's gcc.
 *
 *   iomt_model_host MODEL.tflite info           one JSON line: what bind reports
 *   iomt_model_host MODEL.tflite run < windows  raw int8 windows in, raw int8 outputs out
 *
 * Exit status: 0, 1 for a refused model (the bind error is printed), 2 for bad usage or I/O.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iomt_backbone.h"

static uint8_t *read_file(const char *path, uint32_t *len) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) return NULL;
  fseek(file, 0, SEEK_END);
  long size = ftell(file);
  fseek(file, 0, SEEK_SET);
  uint8_t *data = size > 0 ? malloc((size_t)size) : NULL;
  if (data != NULL && fread(data, 1, (size_t)size, file) != (size_t)size) {
    free(data);
    data = NULL;
  }
  fclose(file);
  *len = (uint32_t)size;
  return data;
}

static void print_info(const iomt_backbone_info *info) {
  printf("{\"input_len\": %u, \"time\": %u, \"channels\": %u, \"embedding_len\": %u, "
         "\"input_scale\": %.9g, \"input_zero_point\": %d, \"output_scale\": %.9g, "
         "\"output_zero_point\": %d, \"arena_bytes\": %u}\n",
         (unsigned)info->input_len, (unsigned)info->time, (unsigned)info->channels,
         (unsigned)info->embedding_len, (double)info->input_scale, (int)info->input_zero_point,
         (double)info->output_scale, (int)info->output_zero_point, (unsigned)info->arena_bytes);
}

static int run_windows(const iomt_backbone_info *info) {
  int8_t *window = malloc(info->input_len);
  int8_t *output = malloc(info->embedding_len);
  int status = 0;
  while (status == 0 && fread(window, 1, info->input_len, stdin) == info->input_len) {
    status = iomt_backbone_invoke(window, output);
    if (status == 0 && fwrite(output, 1, info->embedding_len, stdout) != info->embedding_len) {
      status = 2;
    }
  }
  free(window);
  free(output);
  return status == 0 ? 0 : 2;
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[2], "info") != 0 && strcmp(argv[2], "run") != 0)) {
    fprintf(stderr, "usage: %s MODEL.tflite info|run\n", argv[0]);
    return 2;
  }
  uint32_t len = 0;
  uint8_t *model = read_file(argv[1], &len);
  if (model == NULL) {
    fprintf(stderr, "error: cannot read %s\n", argv[1]);
    return 2;
  }
  iomt_backbone_info info;
  int status = iomt_backbone_bind(model, len, &info);
  if (status != 0) {
    fprintf(stderr, "error: iomt_backbone_bind refused %s: %d\n", argv[1], status);
    free(model);
    return 1;
  }
  status = strcmp(argv[2], "info") == 0 ? (print_info(&info), 0) : run_windows(&info);
  free(model);
  return status;
}

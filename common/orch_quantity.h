/* Quantities in specs and flags: CPU ("0.5", "2", "250m"), memory ("64Mi",
 * "1Gi", "512Ki", or a plain byte count), durations ("1s", "500ms", "2m", "1h"). */
#ifndef ORCH_QUANTITY_H
#define ORCH_QUANTITY_H

#include <stdint.h>

/* Each returns 0 and stores the value, or -EINVAL/-ERANGE when s is not a
 * valid quantity. Zero and negative values are accepted here; callers decide
 * whether zero is meaningful. */
int orch_parse_cpu_milli (const char *s, int64_t *out);
int orch_parse_memory_bytes (const char *s, int64_t *out);
int orch_parse_duration_ms (const char *s, int64_t *out);

/* Format for people: "250m", "1.5", "64Mi", "1.2Gi". buf >= 32 bytes. */
const char *orch_fmt_cpu (int64_t milli, char *buf, int len);
const char *orch_fmt_memory (int64_t bytes, char *buf, int len);

#endif

/* One line per event to stderr: "2026-11-23T01:02:03.456Z INFO  component: text".
 * Library code does not log errors; daemons log at their edges, once. */
#ifndef ORCH_LOG_H
#define ORCH_LOG_H

typedef enum
{
  ORCH_LOG_DEBUG = 0,
  ORCH_LOG_INFO,
  ORCH_LOG_WARN,
  ORCH_LOG_ERROR,
} orch_log_level_t;

/* Sets the component name printed on every line ("scheduler", "agent") and
 * the minimum level. Not thread-safe; call once at start. */
void orch_log_init (const char *component, orch_log_level_t min_level);
/* Parses "debug|info|warn|error"; returns -1 on unknown names. */
int orch_log_level_parse (const char *s, orch_log_level_t *out);
void orch_log (orch_log_level_t level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#define orch_debug(...) orch_log (ORCH_LOG_DEBUG, __VA_ARGS__)
#define orch_info(...) orch_log (ORCH_LOG_INFO, __VA_ARGS__)
#define orch_warn(...) orch_log (ORCH_LOG_WARN, __VA_ARGS__)
#define orch_error(...) orch_log (ORCH_LOG_ERROR, __VA_ARGS__)

#endif

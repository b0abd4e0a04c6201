/* One line per event on stderr (see orch_log.h). */
#define _GNU_SOURCE
#include "orch_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *orch__log_component = "orch";
static orch_log_level_t orch__log_min = ORCH_LOG_INFO;

static const char *const orch__log_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

void
orch_log_init (const char *component, orch_log_level_t min_level)
{
  if (component != NULL)
    orch__log_component = component;
  orch__log_min = min_level;
}

int
orch_log_level_parse (const char *s, orch_log_level_t *out)
{
  static const struct
  {
    const char *name;
    orch_log_level_t level;
  } names[] = {
    { "debug", ORCH_LOG_DEBUG }, { "info", ORCH_LOG_INFO },       { "warn", ORCH_LOG_WARN },
    { "warning", ORCH_LOG_WARN }, { "error", ORCH_LOG_ERROR },
  };
  size_t i;

  if (s == NULL)
    return -1;
  for (i = 0; i < sizeof (names) / sizeof (names[0]); i++)
    if (strcasecmp (s, names[i].name) == 0)
      {
        *out = names[i].level;
        return 0;
      }
  return -1;
}

void
orch_log (orch_log_level_t level, const char *fmt, ...)
{
  char line[4096];
  struct timespec ts;
  struct tm tm;
  va_list ap;
  int n, m;

  if (level < orch__log_min)
    return;
  if ((unsigned) level > ORCH_LOG_ERROR)
    level = ORCH_LOG_ERROR;
  clock_gettime (CLOCK_REALTIME, &ts);
  gmtime_r (&ts.tv_sec, &tm);
  n = snprintf (line, sizeof (line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000000, orch__log_names[level], orch__log_component);
  if (n < 0)
    return;
  if ((size_t) n >= sizeof (line) - 2)
    n = sizeof (line) - 2;
  va_start (ap, fmt);
  m = vsnprintf (line + n, sizeof (line) - 1 - n, fmt, ap);
  va_end (ap);
  if (m < 0)
    m = 0;
  n += m;
  if ((size_t) n > sizeof (line) - 2)
    n = sizeof (line) - 2;
  /* One event must stay one line, whatever the message holds. */
  for (int i = 0; i < n; i++)
    if (line[i] == '\n' || line[i] == '\r')
      line[i] = ' ';
  line[n++] = '\n';
  /* A single write keeps lines from concurrent writers whole. */
  fwrite (line, 1, n, stderr);
  fflush (stderr);
}

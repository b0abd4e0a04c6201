/* The node's totals and its allocatable capacity (DESIGN.md §4). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_internal.h"
#include "orch_util.h"

int
agent_node_parse_meminfo (const char *text, int64_t *bytes)
{
  const char *p = text;

  while (p && *p)
    {
      if (strncmp (p, "MemTotal:", 9) == 0)
        {
          char *end;
          long long kb;

          p += 9;
          while (*p == ' ' || *p == '\t')
            p++;
          errno = 0;
          kb = strtoll (p, &end, 10);
          if (end == p || errno != 0 || kb <= 0 || kb > INT64_MAX / 1024)
            return -EINVAL;
          while (*end == ' ' || *end == '\t')
            end++;
          /* The kernel has always written "kB"; anything else is not meminfo. */
          if (strncmp (end, "kB", 2) != 0)
            return -EINVAL;
          *bytes = (int64_t) kb * 1024;
          return 0;
        }
      p = strchr (p, '\n');
      if (p)
        p++;
    }
  return -EINVAL;
}

int
agent_node_host_cpus (void)
{
  cpu_set_t set;
  long n;

  CPU_ZERO (&set);
  if (sched_getaffinity (0, sizeof (set), &set) == 0)
    {
      int c = CPU_COUNT (&set);
      if (c > 0)
        return c;
    }
  n = sysconf (_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int) n : 1;
}

int
agent_node_host_memory (int64_t *bytes)
{
  cleanup_free char *text = NULL;
  size_t len;
  int r;

  r = orch_read_file ("/proc/meminfo", 1024 * 1024, &text, &len);
  if (r < 0)
    return r;
  return agent_node_parse_meminfo (text, bytes);
}

void
agent_node_capacity (const cg_limits_t *parent, int host_cpus, int64_t host_memory,
                     int64_t reserve_cpu_milli, int64_t reserve_memory_bytes, int64_t *cpu_milli,
                     int64_t *memory_bytes)
{
  int64_t host_cpu = (int64_t) host_cpus * 1000;
  int64_t cpu = host_cpu - reserve_cpu_milli;
  int64_t mem = host_memory - reserve_memory_bytes;

  /* A parent limit is used as it is (whoever set it already decided what the
   * system keeps), unless it is above the host's total: v1 reads "no limit"
   * as a huge number, and a quota beyond the CPUs present is no limit. */
  if (parent != NULL && parent->cpu_milli > 0 && (host_cpu <= 0 || parent->cpu_milli <= host_cpu))
    cpu = parent->cpu_milli;
  if (parent != NULL && parent->memory_bytes > 0
      && (host_memory <= 0 || parent->memory_bytes <= host_memory))
    mem = parent->memory_bytes;
  *cpu_milli = cpu > 0 ? cpu : 0;
  *memory_bytes = mem > 0 ? mem : 0;
}
